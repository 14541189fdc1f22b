// The pre-runtime entry point of crier (see doc.go). It runs before the Go
// runtime has started any thread, the only moment a Go program can fork
// and go on in both processes, and hands the untouched initial stack to
// the runtime's own entry point.

#include "textflag.h"

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_getpid 39
#define SYS_fork 57
#define SYS_wait4 61
#define SYS_getppid 110
#define SYS_setsid 112
#define SYS_exit_group 231
#define SYS_pipe2 293
#define SYS_poll 7
#define SYS_pidfd_open 434
#define SYS_madvise 28
#define MADV_POPULATE_WRITE 23
#define SYS_socketpair 53
#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define POLLIN 1
#define O_CLOEXEC 0x80000
#define EINTR 4

// func entry()
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), R8			// argc
	LEAQ	8(SP), R9			// argv
	MOVQ	$1, R10				// the argument looked at

next:
	CMPQ	R10, R8
	JGE	runtime
	MOVQ	(R9)(R10*8), R11
	INCQ	R10
	CMPB	0(R11), $'-'
	JNE	positional
	// A flag. Does it take the next argument as its value?
	CALL	·globalValueFlag(SB)
	TESTQ	AX, AX
	JZ	next

skip:
	INCQ	R10
	JMP	next

positional:
	MOVQ	0(R11), AX
	SHLQ	$8, AX
	MOVQ	$(0x657461657263<<8), CX	// "create\0"
	CMPQ	AX, CX
	JEQ	create
	MOVL	0(R11), AX
	CMPL	AX, $0x006e7572			// "run\0"
	JNE	relayverbs

	// run: W goes on into the Go runtime as run's CLI, and talks with C
	// both ways (prefork.go), so a socket pair in place of the pipe;
	// close-on-exec, and packets, so that each message is read whole.
	MOVQ	$SYS_socketpair, AX
	MOVQ	$AF_UNIX, DI
	MOVQ	$(SOCK_SEQPACKET|O_CLOEXEC), SI	// SOCK_CLOEXEC is O_CLOEXEC
	XORQ	DX, DX
	LEAQ	·pipefds(SB), R10
	SYSCALL
	CMPQ	AX, $-4095
	JCC	failed
	MOVL	$1, ·state+20(SB)		// run, in W and C
	JMP	fork

relayverbs:
	// The verbs the container's shim can run in the CLI's place
	// (internal/relay): relayEntry returns only if it is not to.
	MOVQ	0(R11), AX
	SHLQ	$8, AX				// 7 bytes
	MOVQ	$(0x6574656c6564<<8), CX	// "delete\0"
	CMPQ	AX, CX
	JEQ	relay
	MOVQ	$(0x656d75736572<<8), CX	// "resume\0"
	CMPQ	AX, CX
	JEQ	relay
	SHLQ	$8, AX				// 6 bytes
	MOVQ	$(0x6574617473<<16), CX		// "state\0"
	CMPQ	AX, CX
	JEQ	relay
	MOVQ	$(0x7472617473<<16), CX		// "start\0"
	CMPQ	AX, CX
	JEQ	relay
	MOVQ	$(0x6573756170<<16), CX		// "pause\0"
	CMPQ	AX, CX
	JEQ	relay
	MOVQ	$(0x746e657665<<16), CX		// "event\0"
	CMPQ	AX, CX
	JEQ	relayevent
	SHLQ	$8, AX				// 5 bytes
	MOVQ	$(0x6c6c696b<<24), CX		// "kill\0"
	CMPQ	AX, CX
	JNE	runtime
relay:
	XORQ	R10, R10			// each answer within a minute
	CALL	·relayEntry(SB)			// argc in R8, argv in R9
	JMP	runtime
relayevent:
	MOVQ	$1, R10				// an event may take forever
	CALL	·relayEntry(SB)
	JMP	runtime

create:
	// The status pipe, close-on-exec.
	MOVQ	$SYS_pipe2, AX
	LEAQ	·pipefds(SB), DI
	MOVQ	$O_CLOEXEC, SI
	SYSCALL
	CMPQ	AX, $-4095
	JCC	failed				// unsigned: at or above is an errno

fork:
	MOVQ	$SYS_getppid, AX
	SYSCALL
	MOVL	AX, ·state+12(SB)		// caller
	MOVQ	$SYS_fork, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	middle
	JGT	waiter
	// No fork: this process goes on as an ordinary crier.
	MOVQ	AX, R12
	MOVQ	$SYS_close, AX
	MOVL	·pipefds+0(SB), DI
	SYSCALL
	MOVQ	$SYS_close, AX
	MOVL	·pipefds+4(SB), DI
	SYSCALL
	MOVQ	R12, AX

failed:
	NEGQ	AX
	MOVL	AX, ·state+16(SB)		// errno
	MOVL	$0, ·state+20(SB)		// not a forked run either
	JMP	runtime

waiter:
	// W: reap M (it exits at once), then wait for C.
	MOVQ	AX, R12				// M
	MOVQ	$SYS_close, AX
	MOVL	·pipefds+4(SB), DI
	SYSCALL
reap:
	MOVQ	$SYS_wait4, AX
	MOVQ	R12, DI
	XORQ	SI, SI
	XORQ	DX, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	reap
	CMPL	·state+20(SB), $0
	JNE	runwaiter
status:
	// C's report: a kind, an exit code and C's pid (report in prefork.go),
	// in one write.
	MOVQ	$SYS_read, AX
	MOVL	·pipefds+0(SB), DI
	LEAQ	·statusbuf(SB), SI
	MOVQ	$6, DX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	status
	CMPQ	AX, $6
	JNE	noreport
	MOVBQZX	·statusbuf+1(SB), R13		// the exit code
	CMPB	·statusbuf+0(SB), $'L'
	JEQ	exit				// C lives on as the shim
	// C is exiting: wait until it has, so that the caller never sees it
	// alive after create returned.
	MOVL	·statusbuf+2(SB), R12
	JMP	·exitAfter(SB)
exit:
	MOVQ	R13, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL
noreport:
	MOVQ	$SYS_write, AX
	MOVQ	$2, DI
	MOVQ	·noReport+0(SB), SI		// the string's bytes
	MOVQ	·noReport+8(SB), DX		// and length
	SYSCALL
	MOVQ	$SYS_exit_group, AX
	MOVQ	$1, DI
	SYSCALL

runwaiter:
	// W of a run: it waits in assembly (runwait_linux_amd64.s) while C
	// runs the container alone, or goes on into the runtime as run's
	// CLI with its end of the socket pair. M is reaped already.
	MOVL	R12, ·state+8(SB)		// parent: here M
	MOVL	·pipefds+0(SB), AX
	MOVL	AX, ·state+4(SB)		// fd
	MOVL	$2, ·state+0(SB)		// forked: the waiter
	CALL	·runWait(SB)
	JMP	runtime

middle:
	// M: fork C and exit at once, so that C is an orphan from birth. If
	// the fork fails, W reads EOF and says so.
	MOVQ	$SYS_getpid, AX
	SYSCALL
	MOVL	AX, ·state+8(SB)		// parent, in C's copy
	MOVQ	$SYS_fork, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	JLT	mexit
	// For a run, C's pid to W, which reads it before anything C writes
	// (C writes only after W's go-ahead, which W gives once it has reaped
	// M): W then knows whose state to remove if C dies before reporting.
	CMPL	·state+20(SB), $0
	JEQ	mexit
	MOVL	AX, ·statusbuf+0(SB)
	MOVQ	$SYS_write, AX
	MOVL	·pipefds+4(SB), DI
	LEAQ	·statusbuf(SB), SI
	MOVQ	$4, DX
	SYSCALL
mexit:
	MOVQ	$SYS_exit_group, AX
	XORQ	DI, DI
	SYSCALL

child:
	// C: its own session (it outlives create, and must not get the
	// terminal's signals), and on into the runtime.
	MOVQ	$SYS_close, AX
	MOVL	·pipefds+0(SB), DI
	SYSCALL
	MOVQ	$SYS_setsid, AX
	SYSCALL
	MOVL	·pipefds+4(SB), AX
	MOVL	AX, ·state+4(SB)		// fd
	MOVL	$1, ·state+0(SB)		// forked
	CALL	·speculate(SB)			// the init stage, ahead (speculate.go)

runtime:
	// One P to start with, unless the caller chose (see maxprocs in
	// prefork.go): "GOMAXPROCS=1" goes in front of the environment. The
	// words below envp (argc, argv and its NULL) move one word down the
	// stack, which leaves a free slot just below the first env pointer;
	// the strings and the auxiliary vector above stay where they are.
	MOVQ	0(SP), R8			// argc
	LEAQ	16(SP)(R8*8), R9		// envp
	MOVQ	R9, R10
scan:
	MOVQ	0(R10), R11
	TESTQ	R11, R11
	JZ	insert
	ADDQ	$8, R10
	// Every string on the initial stack is followed by at least 12
	// readable bytes (the program's path and the stack's end marker
	// come after the environment's strings).
	MOVQ	0(R11), AX
	MOVQ	$0x4f525058414d4f47, CX		// "GOMAXPRO"
	CMPQ	AX, CX
	JNE	scan
	MOVL	8(R11), AX
	ANDL	$0xffffff, AX
	CMPL	AX, $0x3d5343			// "CS="
	JNE	scan
	JMP	start				// the caller's choice stands
insert:
	MOVQ	SP, SI
	SUBQ	$8, SP
	MOVQ	SP, DI
move:
	CMPQ	SI, R9
	JGE	moved
	MOVQ	0(SI), AX
	MOVQ	AX, 0(DI)
	ADDQ	$8, SI
	ADDQ	$8, DI
	JMP	move
moved:
	MOVQ	·maxprocsEnv+0(SB), AX		// the string's bytes, NUL-terminated
	MOVQ	AX, 0(DI)
	MOVL	$1, ·state+28(SB)		// maxprocs
start:
	// The data and bss segments populated with one madvise: the
	// runtime writes to some 45 of their pages as it starts, and on this
	// machine a write fault costs 11-12 µs where populating costs under
	// 1 µs a page (and a first touch after it some 5). Kernels before
	// 5.14 refuse the advice (EINVAL); nothing else changes then.
	MOVQ	$runtime·noptrdata(SB), DI
	ANDQ	$~4095, DI
	MOVQ	$runtime·end(SB), SI
	SUBQ	DI, SI
	MOVQ	$MADV_POPULATE_WRITE, DX
	MOVQ	$SYS_madvise, AX
	SYSCALL
	JMP	_rt0_amd64_linux(SB)

// func globalValueFlag(): AX is 1 when the argument R11 points at is one
// of the global flags that take the next argument as their value, written
// without "=" (--root, --shim, --log, --log-format, --supervisor), else 0.
// It uses AX and CX. An argument is followed by at least 8 readable bytes
// on the initial stack, and the second word is read only once the first
// has matched 8 bytes, so reading 16 is safe.
TEXT ·globalValueFlag(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(R11), AX
	SHLQ	$8, AX				// the first 7 bytes
	MOVQ	$(0x746f6f722d2d<<8), CX	// "--root\0"
	CMPQ	AX, CX
	JEQ	yes
	MOVQ	$(0x6d6968732d2d<<8), CX	// "--shim\0"
	CMPQ	AX, CX
	JEQ	yes
	MOVQ	0(R11), AX
	SHLQ	$16, AX				// the first 6 bytes
	MOVQ	$(0x676f6c2d2d<<16), CX		// "--log\0"
	CMPQ	AX, CX
	JEQ	yes
	MOVQ	0(R11), AX
	MOVQ	$0x6f662d676f6c2d2d, CX		// "--log-fo"
	CMPQ	AX, CX
	JNE	supervisor
	MOVQ	8(R11), AX
	SHLQ	$24, AX				// 5 bytes
	MOVQ	$(0x74616d72<<24), CX		// "rmat\0"
	CMPQ	AX, CX
	JEQ	yes
	JMP	no
supervisor:
	MOVQ	$0x7672657075732d2d, CX		// "--superv"
	CMPQ	AX, CX
	JNE	no
	MOVQ	8(R11), AX
	SHLQ	$24, AX
	MOVQ	$(0x726f7369<<24), CX		// "isor\0"
	CMPQ	AX, CX
	JEQ	yes
no:
	XORQ	AX, AX
	RET
yes:
	MOVQ	$1, AX
	RET

// func exitAfter(): exits with the code in R13 once the process R12 has
// exited (at once if it is gone already). It does not return.
TEXT ·exitAfter(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$SYS_pidfd_open, AX
	MOVQ	R12, DI
	XORQ	SI, SI
	SYSCALL
	CMPQ	AX, $-4095
	JCC	exit				// gone already
	MOVQ	AX, DI
	CALL	·waitReadable(SB)
exit:
	MOVQ	R13, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL

// func waitReadable(): waits until the descriptor in DI polls readable (a
// pidfd: its process has exited), in entry's pollfd. It uses AX, CX, DX,
// SI, DI and R11.
TEXT ·waitReadable(SB),NOSPLIT|NOFRAME,$0
	MOVL	DI, ·pollfd+0(SB)
	MOVW	$POLLIN, ·pollfd+4(SB)
again:
	MOVQ	$SYS_poll, AX
	LEAQ	·pollfd(SB), DI
	MOVQ	$1, SI
	MOVQ	$-1, DX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	again
	RET
