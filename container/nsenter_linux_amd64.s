// The pre-runtime entry point of crier-shim (linked with
// -E .../container.preRuntimeEntry, see the Makefile and nsenter_linux.go).
// It runs before the Go runtime has started any thread, which is the only
// moment a Go program is single-threaded, and joins the namespaces that
// setns(2) refuses to a multi-threaded caller (user and time). Then it
// hands the untouched initial stack to the runtime's own entry point.
//
// It acts only on   argv[1] == "init"  and  argv[2] == "--setns=FD[,FD...]"
// (decimal descriptors, joined in order). Every other invocation goes
// straight to the runtime. It writes its outcome to preRuntimeJoin.

#include "textflag.h"

#define SYS_setns 308

// func preRuntimeEntry()
TEXT ·preRuntimeEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), AX			// argc
	CMPQ	AX, $3
	JLT	runtime
	MOVQ	16(SP), R12			// argv[1]
	CMPL	0(R12), $0x74696e69		// "init"
	JNE	runtime
	CMPB	4(R12), $0
	JNE	runtime
	MOVQ	24(SP), R12			// argv[2]
	MOVQ	$0x3d736e7465732d2d, AX		// "--setns="
	CMPQ	0(R12), AX
	JNE	runtime
	ADDQ	$8, R12
	MOVL	$1, ·preRuntimeJoin+0(SB)	// ran = 1
	XORQ	R13, R13			// index of the descriptor

nextfd:
	XORQ	DI, DI				// the descriptor being parsed
digit:
	MOVBQZX	0(R12), BX
	INCQ	R12
	CMPQ	BX, $'0'
	JLT	join
	CMPQ	BX, $'9'
	JGT	join
	IMULQ	$10, DI
	SUBQ	$'0', BX
	ADDQ	BX, DI
	JMP	digit

join:
	// setns(DI, 0): the parent checked each descriptor's type already.
	MOVQ	$SYS_setns, AX
	XORQ	SI, SI
	SYSCALL
	CMPQ	AX, $-4095			// unsigned: below is success
	JCS	joined
	NEGQ	AX
	MOVL	R13, ·preRuntimeJoin+4(SB)	// index
	MOVL	AX, ·preRuntimeJoin+8(SB)	// errno
	JMP	runtime

joined:
	INCQ	R13
	CMPQ	BX, $','
	JEQ	nextfd

runtime:
	JMP	_rt0_amd64_linux(SB)
