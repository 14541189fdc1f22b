// The relay of internal/relay, crier's side: before the Go runtime starts,
// hand the command line of state, start, kill, delete, pause, resume or
// event to the container's shim, and print what it sends back. relayEntry
// returns only when the CLI is to run the command after all (nothing has
// been done); otherwise it exits with the command's code.

#include "textflag.h"

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_socket 41
#define SYS_connect 42
#define SYS_sendto 44
#define SYS_setsockopt 54
#define SYS_getsockopt 55
#define SYS_getcwd 79
#define SYS_geteuid 107
#define SYS_exit_group 231
#define SYS_openat 257
#define AT_FDCWD $-100
#define O_PATH_DIRECTORY_CLOEXEC $0x290000
#define AF_UNIX $1
#define SOCK_STREAM_CLOEXEC $0x80001
#define SOL_SOCKET $1
#define SO_PEERCRED $17
#define SO_RCVTIMEO $20
#define MSG_NOSIGNAL $0x4000
#define EINTR 4
#define EAGAIN 11
// relay.MaxArgs, relay.MaxCwd, relay.MaxPayload and the size of relayPath
// (relay_test.go checks them).
#define MAX_ARGS $32768
#define MAX_CWD $4096
#define MAX_PAYLOAD $65536
#define PATH_END (4096-2)

// func relayEntry(), with argc in R8, argv in R9, and R10 1 for a command
// that may wait for good (event), 0 for one the shim answers within a
// minute.
TEXT ·relayEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	R10, ·relayForever(SB)
	// CRIER_RELAY=0 in the environment turns it off. Each string on the
	// initial stack is followed by at least 12 readable bytes, so the
	// second word is read only once the first has matched 8 bytes.
	LEAQ	8(R9)(R8*8), R10		// envp
env:
	MOVQ	0(R10), R11
	TESTQ	R11, R11
	JZ	scan
	ADDQ	$8, R10
	MOVQ	0(R11), AX
	MOVQ	$0x45525f5245495243, CX		// "CRIER_RE"
	CMPQ	AX, CX
	JNE	env
	MOVQ	8(R11), AX
	SHLQ	$16, AX
	MOVQ	$(0x303d59414c<<16), CX		// "LAY=0\0"
	CMPQ	AX, CX
	JNE	env
	RET

scan:
	// The root (the last --root, or the default) and the ID (the first
	// word after the verb), skipping the values of the flags that take
	// one. The shim checks the whole command line again (relay.Parse);
	// this only finds whom to ask.
	MOVQ	·relayDefaultRoot+0(SB), R12	// root
	XORQ	R13, R13			// ID
	XORQ	R14, R14			// the verb seen
	MOVQ	$1, R10
next:
	CMPQ	R10, R8
	JGE	scanned
	MOVQ	(R9)(R10*8), R11
	INCQ	R10
	CMPB	0(R11), $'-'
	JNE	word
	MOVQ	0(R11), AX
	SHLQ	$8, AX				// 7 bytes
	MOVQ	$(0x746f6f722d2d<<8), CX	// "--root\0"
	CMPQ	AX, CX
	JEQ	rootnext
	MOVQ	$(0x3d746f6f722d2d<<8), CX	// "--root="
	CMPQ	AX, CX
	JEQ	rootvalue
	CALL	·globalValueFlag(SB)		// the other global ones
	TESTQ	AX, AX
	JNZ	skip
	// The verbs' own flags that take a value.
	MOVL	0(R11), AX
	ANDL	$0xffffff, AX
	CMPL	AX, $0x732d			// "-s\0"
	JEQ	skip
	CMPL	AX, $0x652d			// "-e\0"
	JEQ	skip
	MOVQ	0(R11), AX
	MOVQ	$0x746e6576652d2d, CX		// "--event\0"
	CMPQ	AX, CX
	JEQ	skip
	MOVQ	$0x65636e69732d2d, CX		// "--since\0"
	CMPQ	AX, CX
	JEQ	skip
	MOVQ	$0x756f656d69742d2d, CX		// "--timeou"
	CMPQ	AX, CX
	JNE	signal
	CMPW	8(R11), $0x74			// "t\0"
	JEQ	skip
	JMP	next
signal:
	MOVQ	0(R11), AX
	MOVQ	$0x6c616e6769732d2d, CX		// "--signal"
	CMPQ	AX, CX
	JNE	next
	CMPB	8(R11), $0
	JEQ	skip
	JMP	next
rootnext:
	CMPQ	R10, R8
	JGE	scanned
	MOVQ	(R9)(R10*8), R12
	INCQ	R10
	JMP	next
rootvalue:
	LEAQ	7(R11), R12
	JMP	next
skip:
	INCQ	R10
	JMP	next
word:
	TESTQ	R14, R14
	JNZ	id
	MOVQ	$1, R14
	JMP	next
id:
	TESTQ	R13, R13
	JNZ	next
	MOVQ	R11, R13
	JMP	next

scanned:
	TESTQ	R13, R13
	JNZ	path
	RET
path:
	// ROOT/ID in relayPath. An ID with a slash, or one that starts with
	// a dot, is not a container's (container.ValidateID): the CLI says so.
	CMPB	0(R13), $'.'
	JNE	pathroot
	RET
pathroot:
	LEAQ	·relayPath(SB), DI
	LEAQ	PATH_END(DI), DX
	MOVQ	R12, SI
copyroot:
	MOVBLZX	0(SI), AX
	TESTB	AL, AL
	JZ	slash
	CMPQ	DI, DX
	JGE	fallback
	MOVB	AL, 0(DI)
	INCQ	SI
	INCQ	DI
	JMP	copyroot
slash:
	MOVB	$'/', 0(DI)
	INCQ	DI
	MOVQ	R13, SI
copyid:
	MOVBLZX	0(SI), AX
	TESTB	AL, AL
	JZ	pathdone
	CMPB	AL, $'/'
	JEQ	fallback
	CMPQ	DI, DX
	JGE	fallback
	MOVB	AL, 0(DI)
	INCQ	SI
	INCQ	DI
	JMP	copyid
pathdone:
	MOVB	$0, 0(DI)
	MOVQ	R8, R12				// argc, from here on
	MOVQ	R9, R13				// argv

	// The directory, O_PATH: the socket's name through it is short
	// whatever the root's length.
	MOVQ	$SYS_openat, AX
	MOVQ	AT_FDCWD, DI
	LEAQ	·relayPath(SB), SI
	MOVQ	O_PATH_DIRECTORY_CLOEXEC, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $-4095
	JCC	fallback
	MOVQ	AX, R15				// the directory

	MOVQ	$SYS_socket, AX
	MOVQ	AF_UNIX, DI
	MOVQ	SOCK_STREAM_CLOEXEC, SI
	XORQ	DX, DX
	SYSCALL
	CMPQ	AX, $-4095
	JCC	closedir
	MOVQ	AX, R14				// the socket
	// With stdout or stderr closed the socket could be one of them, and
	// what the shim sends for it would go back to the shim: the CLI.
	CMPQ	AX, $3
	JLT	closeboth

	// sockaddr_un: AF_UNIX, "/proc/self/fd/N/shim.sock".
	LEAQ	·relayAddr(SB), DI
	MOVW	$1, 0(DI)
	MOVQ	$0x65732f636f72702f, AX		// "/proc/se"
	MOVQ	AX, 2(DI)
	MOVL	$0x662f666c, AX			// "lf/f"
	MOVL	AX, 10(DI)
	MOVW	$0x2f64, 14(DI)			// "d/"
	LEAQ	16(DI), DI
	MOVQ	R15, AX
	MOVQ	$10, BX
	MOVQ	$1, CX
count:
	CMPQ	AX, BX
	JLT	counted
	INCQ	CX
	IMULQ	$10, BX
	JMP	count
counted:
	ADDQ	CX, DI
	MOVQ	DI, SI				// the digits' end
	MOVQ	$10, BX
digit:
	XORQ	DX, DX
	DIVQ	BX
	ADDB	$'0', DL
	DECQ	DI
	MOVB	DL, 0(DI)
	TESTQ	AX, AX
	JNZ	digit
	MOVQ	$0x6f732e6d6968732f, AX		// "/shim.so"
	MOVQ	AX, 0(SI)
	MOVW	$0x6b63, 8(SI)			// "ck"
	MOVB	$0, 10(SI)
	LEAQ	11(SI), DX
	LEAQ	·relayAddr(SB), SI
	SUBQ	SI, DX				// the address's length
	MOVQ	$SYS_connect, AX
	MOVQ	R14, DI
	SYSCALL
	MOVQ	AX, BX
	MOVQ	$SYS_close, AX
	MOVQ	R15, DI
	SYSCALL
	CMPQ	BX, $-4095
	JCC	closesock

	// The server must be of this process's user: anyone else's could
	// say anything.
	MOVL	$12, ·relayCredLen(SB)
	MOVQ	$SYS_getsockopt, AX
	MOVQ	R14, DI
	MOVQ	SOL_SOCKET, SI
	MOVQ	SO_PEERCRED, DX
	LEAQ	·relayCred(SB), R10
	LEAQ	·relayCredLen(SB), R8
	SYSCALL
	CMPQ	AX, $-4095
	JCC	closesock
	MOVQ	$SYS_geteuid, AX
	SYSCALL
	CMPL	AX, ·relayCred+4(SB)
	JNE	closesock

	// The request: the header, the arguments after argv[0] (the kernel
	// lays them out one after the other, each NUL-terminated), the
	// working directory and a newline.
	LEAQ	·relayMsg(SB), DI
	MOVQ	·relayMagic+0(SB), SI
	MOVQ	0(SI), AX
	MOVQ	AX, 0(DI)
	MOVQ	8(R13), SI			// argv[1]
	MOVQ	-8(R13)(R12*8), CX		// argv[argc-1]
argend:
	CMPB	0(CX), $0
	JEQ	argended
	INCQ	CX
	JMP	argend
argended:
	INCQ	CX
	SUBQ	SI, CX
	CMPQ	CX, MAX_ARGS
	JGT	closesock
	MOVL	CX, 8(DI)
	MOVQ	CX, BX
	LEAQ	16(DI), DI
	CLD
	REP;	MOVSB
	MOVQ	$SYS_getcwd, AX
	MOVQ	MAX_CWD, SI
	SYSCALL
	CMPQ	AX, $-4095
	JCC	closesock
	DECQ	AX				// without its NUL,
	MOVL	AX, ·relayMsg+12(SB)
	MOVB	$'\n', 0(DI)(AX*1)		// which a newline takes the place of
	LEAQ	17(BX)(AX*1), DX
	LEAQ	·relayMsg(SB), SI
send:
	MOVQ	$SYS_sendto, AX
	MOVQ	R14, DI
	MOVQ	MSG_NOSIGNAL, R10
	XORQ	R8, R8
	XORQ	R9, R9
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	send
	CMPQ	AX, $-4095
	JCC	closesock
	ADDQ	AX, SI
	SUBQ	AX, DX
	JNZ	send

	// As the CLI's requests, a minute at most for each answer.
	CMPQ	·relayForever(SB), $0
	JNE	answer
	LEAQ	·relayTimeout(SB), R10
	MOVQ	$60, 0(R10)
	MOVQ	$0, 8(R10)
	MOVQ	$SYS_setsockopt, AX
	MOVQ	R14, DI
	MOVQ	SOL_SOCKET, SI
	MOVQ	SO_RCVTIMEO, DX
	MOVQ	$16, R8
	SYSCALL

answer:
	// Accepted, or the CLI runs it (Declined, or nothing at all).
	MOVQ	R14, DI
	LEAQ	·relayFrame(SB), SI
	MOVQ	$8, DX
	CALL	·relayRead(SB)
	CMPQ	AX, $8
	JNE	closesock
	MOVQ	·relayAccepted+0(SB), SI
	MOVQ	0(SI), CX
	CMPQ	CX, ·relayFrame(SB)
	JNE	closesock

frame:
	// A kind, a 24-bit length, that many bytes.
	MOVQ	R14, DI
	LEAQ	·relayFrame(SB), SI
	MOVQ	$4, DX
	CALL	·relayRead(SB)
	CMPQ	AX, $4
	JNE	died
	MOVL	·relayFrame(SB), R12
	MOVQ	R12, R13
	SHRQ	$8, R13				// the length
	ANDQ	$0xff, R12			// the kind
	CMPQ	R13, MAX_PAYLOAD
	JGT	died
	MOVQ	R14, DI
	LEAQ	·relayFrame(SB), SI
	MOVQ	R13, DX
	CALL	·relayRead(SB)
	CMPQ	AX, R13
	JNE	died
	CMPQ	R12, $'X'
	JEQ	exitcode
	MOVQ	$1, DI
	CMPQ	R12, $'O'
	JEQ	out
	MOVQ	$2, DI
	CMPQ	R12, $'E'
	JNE	frame				// a kind this entry does not know
out:
	LEAQ	·relayFrame(SB), SI
	MOVQ	R13, DX
	CALL	·relayWrite(SB)
	JMP	frame

exitcode:
	TESTQ	R13, R13
	JZ	died
	MOVBQZX	·relayFrame(SB), R15
drain:
	// Until the shim closes the connection: a delete's at its exit.
	MOVQ	$SYS_read, AX
	MOVQ	R14, DI
	LEAQ	·relayFrame(SB), SI
	MOVQ	MAX_PAYLOAD, DX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	drain
	CMPQ	AX, $0
	JGT	drain
	MOVQ	R15, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL

died:
	MOVQ	·relayDied+0(SB), SI
	MOVQ	·relayDied+8(SB), DX
	CMPQ	AX, $-EAGAIN
	JNE	say
	MOVQ	·relaySlow+0(SB), SI
	MOVQ	·relaySlow+8(SB), DX
say:
	MOVQ	$2, DI
	CALL	·relayWrite(SB)
	MOVQ	$1, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL

closeboth:
	MOVQ	$SYS_close, AX
	MOVQ	R14, DI
	SYSCALL
closedir:
	MOVQ	$SYS_close, AX
	MOVQ	R15, DI
	SYSCALL
	RET
closesock:
	MOVQ	$SYS_close, AX
	MOVQ	R14, DI
	SYSCALL
fallback:
	RET

// func relayRead(): DX bytes from fd DI into SI. AX is the count read,
// short only at end of file, or -errno.
TEXT ·relayRead(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SI, R10
	MOVQ	DX, R8
	XORQ	R9, R9
more:
	CMPQ	R9, R8
	JGE	done
	LEAQ	(R10)(R9*1), SI
	MOVQ	R8, DX
	SUBQ	R9, DX
	MOVQ	$SYS_read, AX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	more
	CMPQ	AX, $-4095
	JCC	failed
	TESTQ	AX, AX
	JZ	done
	ADDQ	AX, R9
	JMP	more
done:
	MOVQ	R9, AX
failed:
	RET

// func relayWrite(): DX bytes from SI to fd DI, as far as it goes.
TEXT ·relayWrite(SB),NOSPLIT|NOFRAME,$0
again:
	MOVQ	$SYS_write, AX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	again
	CMPQ	AX, $-4095
	JCC	stop
	ADDQ	AX, SI
	SUBQ	AX, DX
	JNZ	again
stop:
	RET
