// The speculative init (speculate.go): in C, before its Go runtime
// starts, fork the container's init stage into a new pid and mount
// namespace and exec it from a sealed copy of crier-shim, so that its Go
// runtime starts beside C's instead of after it.

#include "textflag.h"

#define SYS_read 0
#define SYS_close 3
#define SYS_pidfd_open 434
#define SYS_rt_sigprocmask 14
#define SYS_dup2 33
#define SYS_socketpair 53
#define SYS_clone 56
#define SYS_fcntl 72
#define SYS_readlink 89
#define SYS_getppid 110
#define SYS_statfs 137
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_execveat 322
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#define SYS_sched_setaffinity 203
#define SYS_sched_getaffinity 204
#define SYS_getcpu 309

#define AT_FDCWD $-100
#define O_RDONLY_CLOEXEC $0x80000
#define O_PATH_DIRECTORY_CLOEXEC $0x290000
#define O_PATH_NOFOLLOW_CLOEXEC $0x2a0000
#define FSOPEN_CLOEXEC $1
#define FSMOUNT_CLOEXEC $1
#define FSCONFIG_SET_STRING $1
#define FSCONFIG_SET_FD $5
#define FSCONFIG_CMD_CREATE $6
#define MOUNT_ATTR_RDONLY $1
#define MOUNT_ATTR_RDONLY_NOSUID_NODEV $7
#define AF_UNIX $1
#define SOCK_STREAM_CLOEXEC $0x80001
// CLONE_NEWPID | CLONE_NEWNS | SIGCHLD
#define CLONE_FLAGS $0x20020011
#define CGROUP2_SUPER_MAGIC $0x63677270
#define AT_EMPTY_PATH $0x1000
#define F_SETFD $2
#define F_DUPFD_CLOEXEC $1030
#define SIG_SETMASK $2

// func speculate(): in C, from entry. It records the speculative init in
// state (specPid, specSync, specExe) or, when any step fails, nothing,
// and leaves no descriptor of its own open.
TEXT ·speculate(SB),NOSPLIT|NOFRAME,$0
	CMPQ	·speculateOff+8(SB), $0		// linked with -X ...=1: never
	JNE	none
	LEAQ	·specFDs(SB), BX
	XORQ	R12, R12
unset:
	MOVL	$-1, (BX)(R12*4)
	INCQ	R12
	CMPQ	R12, $8
	JLT	unset

	// M exits right after forking C. Once it has, C's parent is the
	// nearest subreaper, or init: when that is create's caller's parent,
	// a supervisor is to be the container's parent (shim.SupervisedBy),
	// which only C's clone with CLONE_PARENT makes it. No speculation.
	// While M is C's parent it is alive, so a pidfd opened in between
	// two getppid calls that both say M is M's: C waits on it, without
	// spinning while a busy machine has M wait for a CPU.
	MOVQ	$SYS_getppid, AX
	SYSCALL
	CMPL	AX, ·state+8(SB)		// parent: M
	JNE	reparented
	MOVQ	$SYS_pidfd_open, AX
	MOVLQSX	·state+8(SB), DI
	XORQ	SI, SI
	SYSCALL
	CMPQ	AX, $0
	JLT	none
	MOVL	AX, ·specFDs+0(SB)		// closed with the rest
	MOVQ	$SYS_getppid, AX
	SYSCALL
	CMPL	AX, ·state+8(SB)
	JNE	gone				// the pidfd may be another's
	MOVLQSX	·specFDs+0(SB), DI
	CALL	·waitReadable(SB)
gone:
	MOVQ	$SYS_close, AX
	MOVLQSX	·specFDs+0(SB), DI
	SYSCALL
	MOVL	$-1, ·specFDs+0(SB)
	MOVQ	$SYS_getppid, AX
	SYSCALL
reparented:
	MOVL	·state+12(SB), CX		// caller
	CMPL	CX, $1
	JLE	unsupervised
	CMPL	AX, CX
	JEQ	none
unsupervised:
	// A cgroup v2 host forks init into its cgroup (cgroup.Staged).
	MOVQ	$SYS_statfs, AX
	MOVQ	·specCgroupDir+0(SB), DI
	LEAQ	·specStatfs(SB), SI
	SYSCALL
	TESTQ	AX, AX
	JNZ	none
	MOVQ	·specStatfs+0(SB), AX		// f_type
	CMPQ	AX, CGROUP2_SUPER_MAGIC
	JEQ	none

	// The directory of this binary, where crier-shim is by default
	// (findShim; C checks that it is the one create uses).
	MOVQ	$SYS_readlink, AX
	MOVQ	·specSelfExe+0(SB), DI
	LEAQ	·specPath(SB), SI
	MOVQ	$4095, DX
	SYSCALL
	CMPQ	AX, $1
	JLT	none
	CMPQ	AX, $4095
	JGE	none
	LEAQ	·specPath(SB), SI
	MOVB	$0, (SI)(AX*1)
slash:
	DECQ	AX
	JLE	none
	CMPB	(SI)(AX*1), $'/'
	JNE	slash
	MOVB	$0, (SI)(AX*1)
	MOVQ	$SYS_openat, AX
	MOVQ	AT_FDCWD, DI
	LEAQ	·specPath(SB), SI
	MOVQ	O_PATH_DIRECTORY_CLOEXEC, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+0(SB)

	// A private, read-only overlayfs of that directory over an empty
	// tmpfs, detached: container.overlayExe, which says why.
	MOVQ	$SYS_fsopen, AX
	MOVQ	·specTmpfs+0(SB), DI
	MOVQ	FSOPEN_CLOEXEC, SI
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+4(SB)
	MOVQ	AX, DI
	MOVQ	$SYS_fsconfig, AX
	MOVQ	FSCONFIG_CMD_CREATE, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	TESTQ	AX, AX
	JNZ	closeall
	MOVQ	$SYS_fsmount, AX
	MOVLQSX	·specFDs+4(SB), DI
	MOVQ	FSMOUNT_CLOEXEC, SI
	MOVQ	MOUNT_ATTR_RDONLY, DX
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+8(SB)

	MOVQ	$SYS_fsopen, AX
	MOVQ	·specOverlay+0(SB), DI
	MOVQ	FSOPEN_CLOEXEC, SI
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+12(SB)
	MOVQ	$SYS_fsconfig, AX
	MOVLQSX	·specFDs+12(SB), DI
	MOVQ	FSCONFIG_SET_FD, SI
	MOVQ	·specLowerdir+0(SB), DX
	XORQ	R10, R10
	MOVLQSX	·specFDs+0(SB), R8		// the binary's directory
	SYSCALL
	TESTQ	AX, AX
	JNZ	closeall
	MOVQ	$SYS_fsconfig, AX
	MOVLQSX	·specFDs+12(SB), DI
	MOVQ	FSCONFIG_SET_FD, SI
	MOVQ	·specLowerdir+0(SB), DX
	XORQ	R10, R10
	MOVLQSX	·specFDs+8(SB), R8		// the empty tmpfs
	SYSCALL
	TESTQ	AX, AX
	JNZ	closeall
	MOVQ	$SYS_fsconfig, AX		// its error does not matter
	MOVLQSX	·specFDs+12(SB), DI
	MOVQ	FSCONFIG_SET_STRING, SI
	MOVQ	·specXino+0(SB), DX
	MOVQ	·specOff+0(SB), R10
	XORQ	R8, R8
	SYSCALL
	MOVQ	$SYS_fsconfig, AX
	MOVLQSX	·specFDs+12(SB), DI
	MOVQ	FSCONFIG_CMD_CREATE, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	TESTQ	AX, AX
	JNZ	closeall
	MOVQ	$SYS_fsmount, AX
	MOVLQSX	·specFDs+12(SB), DI
	MOVQ	FSMOUNT_CLOEXEC, SI
	MOVQ	MOUNT_ATTR_RDONLY_NOSUID_NODEV, DX
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+16(SB)
	MOVQ	$SYS_openat, AX
	MOVLQSX	·specFDs+16(SB), DI
	MOVQ	·specShimName+0(SB), SI
	MOVQ	O_PATH_NOFOLLOW_CLOEXEC, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $0
	JLT	closeall
	MOVL	AX, ·specFDs+20(SB)

	// The sync socket: C's end, init's end.
	MOVQ	$SYS_socketpair, AX
	MOVQ	AF_UNIX, DI
	MOVQ	SOCK_STREAM_CLOEXEC, SI
	XORQ	DX, DX
	LEAQ	·specFDs+24(SB), R10
	SYSCALL
	TESTQ	AX, AX
	JNZ	closeall

	MOVQ	$SYS_clone, AX
	MOVQ	CLONE_FLAGS, DI
	XORQ	SI, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $0
	JEQ	initstage
	JLT	closeall
	MOVL	AX, ·state+32(SB)		// specPid
	CALL	·spread(SB)
	MOVL	·specFDs+24(SB), AX
	MOVL	AX, ·state+36(SB)		// specSync
	MOVL	·specFDs+20(SB), AX
	MOVL	AX, ·state+40(SB)		// specExe
	MOVL	$-1, ·specFDs+20(SB)
	MOVL	$-1, ·specFDs+24(SB)
	// The two detached mounts too, so that init's exec does not drop
	// their last descriptors: that waits for an expedited RCU grace
	// period (container.Speculative.Mounts).
	MOVL	·specFDs+8(SB), AX
	MOVL	AX, ·state+56(SB)		// specMounts[0]: the empty tmpfs
	MOVL	·specFDs+16(SB), AX
	MOVL	AX, ·state+60(SB)		// specMounts[1]: the overlay
	MOVL	$-1, ·specFDs+8(SB)
	MOVL	$-1, ·specFDs+16(SB)
	// and the rest closed

closeall:
	LEAQ	·specFDs(SB), BX
	XORQ	R12, R12
closeone:
	MOVLQSX	(BX)(R12*4), DI
	CMPQ	DI, $0
	JLT	closenext
	MOVQ	$SYS_close, AX
	SYSCALL
	MOVL	$-1, (BX)(R12*4)
closenext:
	INCQ	R12
	CMPQ	R12, $8
	JLT	closeone
none:
	RET

initstage:
	// The init stage's sync socket is descriptor 3, inheritable: no
	// descriptor is passed to the container below it (C adopts this init
	// only without --preserve-fds). The binary's descriptor moves up
	// first if it is 3.
	MOVLQSX	·specFDs+28(SB), DI
	CMPQ	DI, $3
	JNE	move
	MOVQ	$SYS_fcntl, AX
	MOVQ	$3, DI
	MOVQ	F_SETFD, SI
	XORQ	DX, DX
	SYSCALL
	JMP	mask
move:
	CMPL	·specFDs+20(SB), $3
	JNE	dup
	MOVQ	$SYS_fcntl, AX
	MOVQ	$3, DI
	MOVQ	F_DUPFD_CLOEXEC, SI
	MOVQ	$4, DX
	SYSCALL
	CMPQ	AX, $0
	JLT	initfail
	MOVL	AX, ·specFDs+20(SB)
dup:
	MOVQ	$SYS_dup2, AX
	MOVLQSX	·specFDs+28(SB), DI
	MOVQ	$3, SI
	SYSCALL
	CMPQ	AX, $0
	JLT	initfail
mask:
	// As Go's ForkExec leaves it: no signal blocked.
	MOVQ	$SYS_rt_sigprocmask, AX
	MOVQ	SIG_SETMASK, DI
	LEAQ	·specMask(SB), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	MOVQ	·specArg0+0(SB), AX
	MOVQ	AX, ·specArgv+0(SB)
	MOVQ	·specArg1+0(SB), AX
	MOVQ	AX, ·specArgv+8(SB)
	MOVQ	$0, ·specArgv+16(SB)
	MOVQ	·specEnvFD+0(SB), AX
	MOVQ	AX, ·specEnvp+0(SB)
	MOVQ	·specEnvProcs+0(SB), AX
	MOVQ	AX, ·specEnvp+8(SB)
	MOVQ	$0, ·specEnvp+16(SB)
	MOVQ	$SYS_execveat, AX
	MOVLQSX	·specFDs+20(SB), DI
	MOVQ	·specEmpty+0(SB), SI
	LEAQ	·specArgv(SB), DX
	LEAQ	·specEnvp(SB), R10
	MOVQ	AT_EMPTY_PATH, R8
	SYSCALL
initfail:
	MOVQ	$SYS_exit_group, AX
	MOVQ	$127, DI
	SYSCALL

// spread keeps the init stage, just forked, off the CPU that C runs on,
// until create moves it into its cgroups (joining a v1 cpuset sets a
// task's CPUs to the cpuset's), and in any case until it execs the
// container's process (which asks for every CPU: affinity_linux.go). The
// scheduler of this machine's kind packs new tasks onto the waker's CPU
// while the other idles (a trace of one create: init runnable for 2.4 ms
// behind C on CPU 0, CPU 1 idle), so the two Go runtimes that this init
// was forked early for started one after the other.
//
// Only when a CPU is idle: more threads running than C, the init and
// the CPUs left over (/proc/loadavg's fourth field) say the machine is
// busy, and a pinned init could not go where a CPU frees up (quick
// throughput runs with 2 workers lost 10 % pinning always). Any failure,
// or no other CPU allowed, leaves the init where it is.
TEXT ·spread(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$SYS_openat, AX
	MOVQ	AT_FDCWD, DI
	MOVQ	·specLoadavg+0(SB), SI
	MOVQ	O_RDONLY_CLOEXEC, DX
	XORQ	R10, R10
	SYSCALL
	CMPQ	AX, $0
	JLT	nospread
	MOVQ	AX, R13
	MOVQ	$SYS_read, AX
	MOVQ	R13, DI
	LEAQ	·specPath(SB), SI
	MOVQ	$127, DX
	SYSCALL
	MOVQ	AX, R14
	MOVQ	$SYS_close, AX
	MOVQ	R13, DI
	SYSCALL
	// R9: the running threads, after three spaces and before the '/'.
	LEAQ	·specPath(SB), BX
	XORQ	R12, R12
	XORQ	R11, R11
field:
	CMPQ	R12, R14
	JGE	nospread
	MOVBQZX	(BX)(R12*1), AX
	INCQ	R12
	CMPQ	AX, $32				// ' '
	JNE	field
	INCQ	R11
	CMPQ	R11, $3
	JLT	field
	XORQ	R9, R9
digit:
	CMPQ	R12, R14
	JGE	nospread
	MOVBQZX	(BX)(R12*1), AX
	INCQ	R12
	CMPQ	AX, $47				// '/'
	JEQ	counted
	SUBQ	$48, AX				// '0'
	CMPQ	AX, $9
	JHI	nospread
	IMULQ	$10, R9
	ADDQ	AX, R9
	JMP	digit
counted:
	MOVQ	$SYS_getcpu, AX
	LEAQ	·specCPU(SB), DI
	XORQ	SI, SI
	XORQ	DX, DX
	SYSCALL
	TESTQ	AX, AX
	JNZ	nospread
	MOVQ	$SYS_sched_getaffinity, AX
	XORQ	DI, DI
	MOVQ	$128, SI
	LEAQ	·specCPUs(SB), DX
	SYSCALL
	CMPQ	AX, $0
	JLE	nospread
	MOVLQZX	·specCPU(SB), CX
	CMPQ	CX, $1024
	JAE	nospread
	LEAQ	·specCPUs(SB), BX
	BTRQ	CX, (BX)
	// R10: the CPUs left. Spread if some other CPU is allowed, and the
	// threads running besides C and the init leave one idle.
	XORQ	R12, R12
	XORQ	R10, R10
cpus:
	MOVQ	(BX)(R12*8), DX
bits:
	TESTQ	DX, DX
	JZ	nextword
	LEAQ	-1(DX), AX
	ANDQ	AX, DX
	INCQ	R10
	JMP	bits
nextword:
	INCQ	R12
	CMPQ	R12, $16
	JLT	cpus
	TESTQ	R10, R10
	JZ	nospread
	SUBQ	$2, R9
	CMPQ	R9, R10
	JGE	nospread
	MOVQ	$SYS_sched_setaffinity, AX
	MOVLQSX	·state+32(SB), DI
	MOVQ	$128, SI
	LEAQ	·specCPUs(SB), DX
	SYSCALL
nospread:
	RET
