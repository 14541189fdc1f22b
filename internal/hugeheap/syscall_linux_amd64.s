#include "textflag.h"

// func syscall3(trap, a1, a2, a3 uintptr) uintptr
// A raw system call, as the runtime makes its own: this package imports
// nothing, so that its init runs before the other packages' (doc.go). It
// returns what the kernel does: the result, or -errno.
TEXT ·syscall3(SB),NOSPLIT,$0-40
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	XORQ	R10, R10			// prctl wants its unused arguments 0
	XORQ	R8, R8
	SYSCALL
	MOVQ	AX, ret+32(FP)
	RET

// func syscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) uintptr
TEXT ·syscall6(SB),NOSPLIT,$0-64
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	MOVQ	a4+32(FP), R10
	MOVQ	a5+40(FP), R8
	MOVQ	a6+48(FP), R9
	SYSCALL
	MOVQ	AX, ret+56(FP)
	RET

// func touch(addr uintptr)
TEXT ·touch(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	MOVB	$1, (AX)
	RET
