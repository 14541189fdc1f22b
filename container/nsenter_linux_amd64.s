// The pre-runtime entry point of crier-shim (linked with
// -E .../container.preRuntimeEntry, see the Makefile and nsenter_linux.go).
// It runs before the Go runtime has started any thread, which is the only
// moment a Go program is single-threaded, and joins the namespaces that
// setns(2) refuses to a multi-threaded caller (user and time). Then it
// hands the untouched initial stack to the runtime's own entry point.
//
// It acts only on   argv[1] == "init"  (the init stage), which it makes
// non-dumpable first and whose data and bss it populates last (see
// populate), and then on  argv[2] == "--setns=FD[,FD...]"
// (decimal descriptors, joined in order), and on  argv[1] == "--detach"
// (the shim, see detach_linux.go), which it forks: the parent exits at once
// and the child, an orphan, goes on into the runtime. Every other
// invocation goes straight to the runtime. It writes its outcome to
// preRuntimeJoin and preRuntimeDetach.
//
// Non-dumpable before the setns calls: once stage one is in a joined user
// namespace, whatever holds CAP_SYS_PTRACE there could otherwise attach
// to it while it still runs in the host's mount namespace (the class of
// CVE-2016-9962). A non-dumpable process answers ptrace only to
// CAP_SYS_PTRACE in the namespace it was exec'd in, the host's.

#include "textflag.h"

#define SYS_getpid 39
#define SYS_fork 57
#define SYS_prctl 157
#define SYS_exit_group 231
#define SYS_setns 308
#define PR_SET_DUMPABLE 4
#define SYS_madvise 28
#define MADV_POPULATE_WRITE 23

// func preRuntimeEntry()
TEXT ·preRuntimeEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), AX			// argc
	CMPQ	AX, $2
	JLT	runtime
	MOVQ	16(SP), R12			// argv[1]
	MOVQ	$0x6863617465642d2d, AX		// "--detach"
	CMPQ	0(R12), AX
	JEQ	detach
	CMPL	0(R12), $0x74696e69		// "init"
	JNE	runtime
	CMPB	4(R12), $0
	JNE	runtime
	// prctl(PR_SET_DUMPABLE, 0): it cannot fail with these arguments.
	MOVQ	$SYS_prctl, AX
	MOVQ	$PR_SET_DUMPABLE, DI
	XORQ	SI, SI
	SYSCALL
	CMPQ	0(SP), $3			// argc
	JLT	populate
	MOVQ	24(SP), R12			// argv[2]
	MOVQ	$0x3d736e7465732d2d, AX		// "--setns="
	CMPQ	0(R12), AX
	JNE	populate
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
	JMP	populate

joined:
	INCQ	R13
	CMPQ	BX, $','
	JEQ	nextfd

populate:
	// The init stage only (it is on create's path, and its memory goes
	// at its exec): the data and bss segments populated with one
	// madvise, as crier's entry does (internal/prefork). Kernels before
	// 5.14 refuse the advice; nothing else changes then.
	MOVQ	$runtime·noptrdata(SB), DI
	ANDQ	$~4095, DI
	MOVQ	$runtime·end(SB), SI
	SUBQ	DI, SI
	MOVQ	$MADV_POPULATE_WRITE, DX
	MOVQ	$SYS_madvise, AX
	SYSCALL

runtime:
	JMP	_rt0_amd64_linux(SB)

detach:
	// "--detach" and nothing more: an argument that merely starts so
	// goes to the runtime.
	CMPB	8(R12), $0
	JNE	runtime
	// The pid the child will be reparented from, written before the fork
	// so that the child has it in its copy of memory.
	MOVQ	$SYS_getpid, AX
	SYSCALL
	MOVL	AX, ·preRuntimeDetach+0(SB)	// parent
	MOVQ	$SYS_fork, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	runtime				// the child: on to the runtime
	JGT	exit
	// fork failed: no child, so this process goes on undetached.
	NEGQ	AX
	MOVL	AX, ·preRuntimeDetach+4(SB)	// errno
	JMP	runtime

exit:
	// The parent: gone at once, so that the child is an orphan.
	MOVQ	$SYS_exit_group, AX
	XORQ	DI, DI
	SYSCALL
