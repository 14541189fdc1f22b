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
