// W of a run, in assembly (see doc.go): it waits for C, forwards signals
// to the container C runs alone, and exits with the container's status,
// or goes on into the Go runtime as run's CLI when C asks for it or C
// died before it said anything.

#include "textflag.h"

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_poll 7
#define SYS_ioctl 16
#define SYS_rt_sigprocmask 14
#define SYS_exit_group 231
#define SYS_signalfd4 289
#define SYS_pidfd_send_signal 424
#define SYS_pidfd_open 434
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define POLLIN 1
#define O_CLOEXEC 0x80000
// PIDFD_GET_INFO, _IOWR(0xFF, 11, struct pidfd_info) with the first
// version of the struct (64 bytes), and its PIDFD_INFO_PID, which asks for
// the pids (ppid at byte 24).
#define PIDFD_GET_INFO 0xC040FF0B
#define PIDFD_INFO_PID 1
#define EINTR 4

// func runWait(): with state's fd (W's end of the socket pair) and parent
// (M, reaped by entry) set. It returns only for W to go on into the
// runtime as run's CLI, with M's message read (state's child and waited),
// and the signal mask as it was; otherwise it exits. It uses every
// register but SP and BP.
TEXT ·runWait(SB),NOSPLIT|NOFRAME,$0
	// The signals run forwards are held from here on: C may run the
	// container alone, and then W forwards them once it is created.
	MOVQ	$SYS_rt_sigprocmask, AX
	MOVQ	$SIG_BLOCK, DI
	LEAQ	·runForwarded(SB), SI
	LEAQ	·runOldMask(SB), DX
	MOVQ	$8, R10
	SYSCALL
	MOVL	·state+4(SB), BX		// the socket
	// M's message, C's pid; without it M could not fork C, which the
	// CLI reports.
	CALL	·runRead(SB)
	CMPQ	AX, $4
	JNE	cli
	MOVL	·runBuf+0(SB), R12		// C
	MOVL	R12, ·state+44(SB)		// child
	MOVL	$1, ·state+48(SB)		// waited
	// C's first word: 'G' (the CLI is needed), or the report of a run it
	// runs alone (report in prefork.go: a kind, the exit code, C's pid
	// and the container's): 'C' created, 'X' failed. Nothing at all: C
	// died first, and the CLI removes what it left (waited 2).
	CALL	·runRead(SB)
	CMPQ	AX, $1
	JEQ	cli
	CMPQ	AX, $10
	JEQ	report
	MOVL	$2, ·state+48(SB)		// waited, and C is gone
	JMP	cli
report:
	MOVBQZX	·runBuf+1(SB), R13		// the exit code
	CMPB	·runBuf+0(SB), $'C'
	JNE	done

	// Created: once C has started it ('S'), the signals held so far, and
	// any to come, go to the container's process, as run's CLI forwards
	// them once the container runs (before, they would end its init
	// stage); through a pidfd, taken now: C reaps the process only in its
	// loop, after this message, so the pid is still the container's
	// process or its zombie, unless this process was held off for longer
	// than the container takes to run and be reaped, and the kernel then
	// handed the pid out again (going round all of pid_max's pids, 32768
	// on these machines: over a second of forks). A pid reaped and not
	// reused gives no pidfd; one handed out again is found out below.
	MOVQ	$SYS_pidfd_open, AX
	MOVL	·runBuf+6(SB), DI
	XORQ	SI, SI
	SYSCALL
	MOVQ	AX, R14				// negative: nothing to forward to
	TESTQ	R14, R14
	JS	forward
	// And the process must be C's child (R12, C's pid): if it is not,
	// the container's was reaped and its pid handed out again first,
	// and nothing is forwarded. A kernel without PIDFD_GET_INFO (before
	// 6.13) leaves it as it was.
	MOVQ	$PIDFD_INFO_PID, ·runInfo+0(SB)
	MOVQ	$SYS_ioctl, AX
	MOVQ	R14, DI
	MOVQ	$PIDFD_GET_INFO, SI
	LEAQ	·runInfo(SB), DX
	SYSCALL
	TESTQ	AX, AX
	JNZ	forward
	MOVL	·runInfo+24(SB), AX		// ppid
	CMPL	AX, R12
	JEQ	forward
	MOVQ	$SYS_close, AX
	MOVQ	R14, DI
	SYSCALL
	MOVQ	$-1, R14
forward:
	MOVQ	$SYS_signalfd4, AX
	MOVQ	$-1, DI
	LEAQ	·runForwarded(SB), SI
	MOVQ	$8, DX
	MOVQ	$O_CLOEXEC, R10
	SYSCALL
	MOVQ	AX, R15
	MOVL	BX, ·runPoll+0(SB)
	MOVW	$POLLIN, ·runPoll+4(SB)
	MOVL	$-1, ·runPoll+8(SB)		// poll ignores it until 'S'
	MOVW	$POLLIN, ·runPoll+12(SB)
wait:
	MOVW	$0, ·runPoll+6(SB)		// revents
	MOVW	$0, ·runPoll+14(SB)
	MOVQ	$SYS_poll, AX
	LEAQ	·runPoll(SB), DI
	MOVQ	$2, SI
	MOVQ	$-1, DX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	wait
	CMPQ	AX, $0
	JLE	gone
	MOVWQZX	·runPoll+14(SB), AX
	TESTQ	AX, AX
	JZ	message
	MOVQ	$SYS_read, AX			// one struct signalfd_siginfo
	MOVQ	R15, DI
	LEAQ	·runSignal(SB), SI
	MOVQ	$128, DX
	SYSCALL
	CMPQ	AX, $128
	JNE	message
	MOVQ	$SYS_pidfd_send_signal, AX
	MOVQ	R14, DI
	MOVL	·runSignal+0(SB), SI		// ssi_signo
	XORQ	DX, DX
	XORQ	R10, R10
	SYSCALL
	JMP	wait
message:
	MOVWQZX	·runPoll+6(SB), AX
	TESTQ	AX, AX
	JZ	wait
	// RunStarted's 'S', or RunDone's: 'X', the container's status (C
	// exits once it has deleted the container), or 'L' (detached: C
	// lives on as its shim).
	CALL	·runRead(SB)
	CMPQ	AX, $10
	JNE	gone
	MOVBQZX	·runBuf+1(SB), R13
	CMPB	·runBuf+0(SB), $'S'
	JNE	done
	MOVL	R15, ·runPoll+8(SB)		// from now on, forward
	JMP	wait

done:
	CMPB	·runBuf+0(SB), $'L'
	JEQ	exit
	// C is exiting: wait until it has, so that nothing of the run is
	// seen alive once run has returned.
	JMP	·exitAfter(SB)
exit:
	MOVQ	R13, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL

gone:
	// C died after the container was created, before it stopped.
	MOVQ	$SYS_write, AX
	MOVQ	$2, DI
	MOVQ	·runGone+0(SB), SI
	MOVQ	·runGone+8(SB), DX
	SYSCALL
	MOVQ	$SYS_exit_group, AX
	MOVQ	$1, DI
	SYSCALL

cli:
	MOVQ	$SYS_rt_sigprocmask, AX
	MOVQ	$SIG_SETMASK, DI
	LEAQ	·runOldMask(SB), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	RET

// func runRead(): one packet from the socket in BX into runBuf; AX is its
// length, 0 at the end, or -errno. It uses AX, CX, DX, SI, DI and R11.
TEXT ·runRead(SB),NOSPLIT|NOFRAME,$0
again:
	MOVQ	$SYS_read, AX
	MOVQ	BX, DI
	LEAQ	·runBuf(SB), SI
	MOVQ	$16, DX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	again
	RET
