package seccomp

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data, what a filter sees of a syscall.
type seccompData struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// x86_64, i386 and x32 calls as the kernel presents them to a filter.
func call64(nr uint32, args ...uint64) seccompData { return mkData(unix.AUDIT_ARCH_X86_64, nr, args) }
func call32(nr uint32, args ...uint64) seccompData { return mkData(unix.AUDIT_ARCH_I386, nr, args) }
func callX32(nr uint32, args ...uint64) seccompData {
	return mkData(unix.AUDIT_ARCH_X86_64, nr|x32SyscallBit, args)
}

func mkData(arch, nr uint32, args []uint64) seccompData {
	d := seccompData{nr: nr, arch: arch}
	copy(d.args[:], args)
	return d
}

// checkFilter applies the kernel's static checks of a classic BPF program
// that matter here: size, every jump forward and inside, a ret at the end.
func checkFilter(t *testing.T, prog []unix.SockFilter) {
	t.Helper()
	if len(prog) == 0 || len(prog) > cbpfMaxInsns {
		t.Fatalf("program of %d instructions", len(prog))
	}
	if prog[len(prog)-1].Code != unix.BPF_RET|unix.BPF_K {
		t.Fatalf("last instruction %+v is not a ret", prog[len(prog)-1])
	}
	for pc, in := range prog {
		if in.Code&0x07 != unix.BPF_JMP {
			continue
		}
		targets := []int{pc + 1 + int(in.Jt), pc + 1 + int(in.Jf)}
		if in.Code == unix.BPF_JMP|unix.BPF_JA {
			targets = []int{pc + 1 + int(in.K)}
		}
		for _, to := range targets {
			if to >= len(prog) {
				t.Fatalf("pc %d: jump to %d, past the end (%d)", pc, to, len(prog))
			}
		}
	}
}

// runFilter interprets prog on d as the kernel would, for the instructions
// the compiler emits, and returns the SECCOMP_RET_ value.
func runFilter(t *testing.T, prog []unix.SockFilter, d seccompData) uint32 {
	t.Helper()
	var mem [64]byte
	binary.LittleEndian.PutUint32(mem[0:], d.nr)
	binary.LittleEndian.PutUint32(mem[4:], d.arch)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(mem[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		cond := false
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K >= uint32(len(mem)) {
				t.Fatalf("pc %d: load at offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(mem[in.K:])
			continue
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
			continue
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
			continue
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			cond = acc == in.K
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			cond = acc > in.K
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			cond = acc >= in.K
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			cond = acc&in.K != 0
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
		if cond {
			pc += int(in.Jt)
		} else {
			pc += int(in.Jf)
		}
	}
	t.Fatal("ran off the end of the program")
	return 0
}

func mustCompile(t *testing.T, s *specs.LinuxSeccomp) *Program {
	t.Helper()
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	checkFilter(t, p.filter)
	return p
}

func uintPtr(v uint) *uint { return &v }

func arg(index uint, op specs.LinuxSeccompOperator, value uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: index, Op: op, Value: value}
}

const (
	retErrno = unix.SECCOMP_RET_ERRNO
	retAllow = unix.SECCOMP_RET_ALLOW
	retKillP = unix.SECCOMP_RET_KILL_PROCESS
	eperm    = retErrno | uint32(unix.EPERM)
)

// x86 numbers used below.
const (
	nrMkdir64, nrMkdir32            = 83, 39
	nrGetcwd64, nrGetcwd32          = 79, 183
	nrGetpid64, nrGetpid32          = 39, 20
	nrReadv64, nrReadvX32           = 19, 515
	nrSocketcall32                  = 102
	nrPersonality64                 = 135
	nrGetpgid64, nrGetpgid32        = 121, 132
	nrGetsid64                      = 124
	nrX32Mkdir, nrX32Getpid         = x32SyscallBit | 83, x32SyscallBit | 39
	nrInvalid                uint32 = 0xffffffff
)

func TestSeccompTable(t *testing.T) {
	if !sort.SliceIsSorted(syscallTable[:], func(i, j int) bool { return syscallTable[i].name < syscallTable[j].name }) {
		t.Fatal("syscallTable is not sorted")
	}
	for i := 1; i < len(syscallTable); i++ {
		if syscallTable[i].name == syscallTable[i-1].name {
			t.Fatalf("%q twice", syscallTable[i].name)
		}
	}
	tests := []struct {
		name             string
		x8664, i386, x32 int64
	}{
		{"mkdir", 83, 39, 83 | x32SyscallBit},
		{"getcwd", 79, 183, 79 | x32SyscallBit},
		{"readv", 19, 145, 515 | x32SyscallBit}, // x32 has its own compat readv
		{"execve", 59, 11, 520 | x32SyscallBit},
		{"socketcall", -1, 102, -1},
		{"accept", 43, -1, 43 | x32SyscallBit},
		{"_llseek", -1, 140, -1},
		{"arch_prctl", 158, 384, 158 | x32SyscallBit},
		{"clone3", 435, 435, 435 | x32SyscallBit},
		{"uretprobe", 335, -1, 335 | x32SyscallBit},
		{"map_shadow_stack", 453, 453, -1},
		{"epoll_wait_old", 215, -1, -1},
		{"mseal", 462, 462, 462 | x32SyscallBit},
		{"cacheflush", -1, -1, -1},         // ARM
		{"riscv_flush_icache", -1, -1, -1}, // RISC-V
	}
	for _, tt := range tests {
		row, ok := lookupSyscall(tt.name)
		if !ok {
			t.Errorf("%s: not in the table", tt.name)
			continue
		}
		got := [3]int64{abiX8664.number(row), abiI386.number(row), abiX32.number(row)}
		if want := [3]int64{tt.x8664, tt.i386, tt.x32}; got != want {
			t.Errorf("%s: numbers %v, want %v", tt.name, got, want)
		}
	}
	if _, ok := lookupSyscall("mkdirr"); ok {
		t.Error(`"mkdirr" found`)
	}
}

// defaultProfileNames are the names of Docker's default profile and
// runtime-tools' (which every conformance test carries), including those
// of other architectures.
var defaultProfileNames = strings.Fields(`accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown
	chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
	clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
	epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
	eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
	fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
	flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
	ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
	getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
	getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
	get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid
	getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
	io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
	io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
	landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek
	lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir
	mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
	mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
	msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
	openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
	ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64
	pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
	recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir
	rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
	rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
	sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
	sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
	sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
	sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
	setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
	setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
	setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
	socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
	syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
	timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
	timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
	unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
	process_vm_readv process_vm_writev ptrace socket sync_file_range2 swapcontext
	arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush set_tls arch_prctl modify_ldt
	s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr riscv_flush_icache open_by_handle_at bpf
	fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
	move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
	umount umount2 unshare reboot chroot delete_module init_module finit_module acct kcmp pidfd_getfd
	process_madvise iopl ioperm settimeofday stime clock_settime clock_settime64 vhangup get_mempolicy
	mbind set_mempolicy set_mempolicy_home_node`)

// The profiles that real configs carry must compile: every name in them is
// known (not necessarily on x86), and they fit the kernel's size limit.
// defaultProfile is a profile like Docker's default one for x86_64.
func defaultProfile() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintPtr(1),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: defaultProfileNames, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 0)}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, Op: specs.OpMaskedEqual}}},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: uintPtr(38)},
		},
	}
}

func TestSeccompDefaultProfiles(t *testing.T) {
	p := mustCompile(t, defaultProfile())
	t.Logf("%d names: %d instructions", len(defaultProfileNames), len(p.filter))
	for _, tt := range []struct {
		d    seccompData
		want uint32
	}{
		{call64(nrMkdir64), retAllow},
		{call32(nrSocketcall32), retAllow},
		{callX32(nrReadvX32), retAllow},
		{callX32(nrReadv64), retErrno | 1}, // the x86_64 readv is not x32's
		{call64(nrPersonality64, 0), retAllow},
		{call64(nrPersonality64, 1), retErrno | 1},
		{call64(56, 0x11), retAllow},        // clone without namespace flags
		{call64(56, 0x20011), retErrno | 1}, // with CLONE_NEWNS
		{call64(435), retErrno | 38},        // clone3
		{call32(120, 0x11), retAllow},       // i386 clone
		{call32(120, 0x1_0002_0011), retErrno | 1},
		{call64(167), retErrno | 1},        // swapon: not named, below the newest named
		{call64(nrInvalid), retErrno | 38}, // above every named call: ENOSYS
	} {
		if got := runFilter(t, p.filter, tt.d); got != tt.want {
			t.Errorf("%+v: %#x, want %#x", tt.d, got, tt.want)
		}
	}
}

func TestSeccompErrors(t *testing.T) {
	rule := func(edit func(*specs.LinuxSyscall)) *specs.LinuxSeccomp {
		sc := specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno}
		edit(&sc)
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getcwd"}, Action: specs.ActErrno}, sc}}
	}
	tests := []struct {
		name string
		s    *specs.LinuxSeccomp
		want string
	}{
		{"unknown syscall", rule(func(sc *specs.LinuxSyscall) { sc.Names = []string{"mkdir", "mkdirr"} }),
			`linux.seccomp: syscalls[1]: unknown syscall "mkdirr"`},
		{"empty syscall name", rule(func(sc *specs.LinuxSyscall) { sc.Names = []string{""} }),
			`linux.seccomp: syscalls[1]: unknown syscall ""`},
		{"no names", rule(func(sc *specs.LinuxSyscall) { sc.Names = nil }),
			`linux.seccomp: syscalls[1]: names is empty`},
		{"unknown action", rule(func(sc *specs.LinuxSyscall) { sc.Action = "SCMP_ACT_ALLOWED" }),
			`linux.seccomp: syscalls[1]: unknown action "SCMP_ACT_ALLOWED"`},
		{"missing action", rule(func(sc *specs.LinuxSyscall) { sc.Action = "" }),
			`linux.seccomp: syscalls[1]: action is missing`},
		{"notify without listener", rule(func(sc *specs.LinuxSyscall) { sc.Action = specs.ActNotify }),
			`linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath (the seccomp agent's socket)`},
		{"notify write", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/l.sock",
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}, {Names: []string{"read", "write"}, Action: specs.ActNotify}}},
			`linux.seccomp: syscalls[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall`},
		{"errnoRet on allow", rule(func(sc *specs.LinuxSyscall) { sc.Action, sc.ErrnoRet = specs.ActAllow, uintPtr(1) }),
			`linux.seccomp: syscalls[1]: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_ALLOW`},
		{"errno too big", rule(func(sc *specs.LinuxSyscall) { sc.ErrnoRet = uintPtr(4096) }),
			`linux.seccomp: syscalls[1]: errnoRet 4096 is not an errno (at most 4095)`},
		{"trace data too big", rule(func(sc *specs.LinuxSyscall) { sc.Action, sc.ErrnoRet = specs.ActTrace, uintPtr(1<<16) }),
			`linux.seccomp: syscalls[1]: errnoRet 65536 of SCMP_ACT_TRACE does not fit in 16 bits`},
		{"unknown operator", rule(func(sc *specs.LinuxSyscall) {
			sc.Args = []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 1), arg(1, "SCMP_CMP_EQUAL", 1)}
		}), `linux.seccomp: syscalls[1].args[1]: unknown operator "SCMP_CMP_EQUAL"`},
		{"arg index", rule(func(sc *specs.LinuxSyscall) { sc.Args = []specs.LinuxSeccompArg{arg(6, specs.OpEqualTo, 1)} }),
			`linux.seccomp: syscalls[1].args[0]: index 6 is not an argument (0 to 5)`},
		{"missing default", &specs.LinuxSeccomp{}, `linux.seccomp: defaultAction is missing`},
		{"unknown default", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_DENY"},
			`linux.seccomp: defaultAction: unknown action "SCMP_ACT_DENY"`},
		{"default notify", &specs.LinuxSeccomp{DefaultAction: specs.ActNotify, ListenerPath: "/run/l.sock"},
			`linux.seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be used as default action`},
		{"defaultErrnoRet on kill", &specs.LinuxSeccomp{DefaultAction: specs.ActKill, DefaultErrnoRet: uintPtr(1)},
			`linux.seccomp: defaultAction: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_KILL`},
		{"unknown arch", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86, "SCMP_ARCH_X86_32"}},
			`linux.seccomp: architectures: unknown architecture "SCMP_ARCH_X86_32"`},
		{"unknown flag", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, "SECCOMP_FILTER_FLAG_NEW_LISTENER"}},
			`linux.seccomp: flags: unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.s)
			if err == nil {
				t.Fatalf("compiled to %d instructions, want error %q", len(p.filter), tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line starting %q", err, tt.want)
			}
			if verr := Validate(tt.s); verr == nil || verr.Error() != err.Error() {
				t.Errorf("Validate: %v, want %v", verr, err)
			}
		})
	}
}

func TestSeccompNil(t *testing.T) {
	p, err := Compile(nil)
	if p != nil || err != nil {
		t.Fatalf("Compile(nil) = %v, %v", p, err)
	}
	if err := p.Install(nil); err != nil {
		t.Fatalf("nil install: %v", err)
	}
	if err := Validate(nil); err != nil {
		t.Fatal(err)
	}
}

func TestSeccompActions(t *testing.T) {
	tests := []struct {
		act      specs.LinuxSeccompAction
		errnoRet *uint
		want     uint32
	}{
		{specs.ActKill, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillThread, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillProcess, nil, unix.SECCOMP_RET_KILL_PROCESS},
		{specs.ActTrap, nil, unix.SECCOMP_RET_TRAP},
		{specs.ActErrno, nil, eperm},
		{specs.ActErrno, uintPtr(0), retErrno},
		{specs.ActErrno, uintPtr(38), retErrno | 38},
		{specs.ActTrace, nil, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{specs.ActTrace, uintPtr(0xbeef), unix.SECCOMP_RET_TRACE | 0xbeef},
		{specs.ActAllow, nil, retAllow},
		{specs.ActLog, nil, unix.SECCOMP_RET_LOG},
	}
	for _, tt := range tests {
		name := string(tt.act)
		if tt.errnoRet != nil {
			name += fmt.Sprint("/", *tt.errnoRet)
		}
		t.Run(name, func(t *testing.T) {
			// As a rule's action and as the default action.
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: tt.act, ErrnoRet: tt.errnoRet}},
			})
			if got := runFilter(t, p.filter, call64(nrMkdir64)); got != tt.want {
				t.Errorf("rule: %#x, want %#x", got, tt.want)
			}
			if got := runFilter(t, p.filter, call64(nrGetcwd64)); got != retAllow {
				t.Errorf("other call: %#x, want allow", got)
			}
			// getrandom is named so that mkdir is no newer than the
			// profile, which would make it ENOSYS (TestSeccompENOSYS).
			p = mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction:   tt.act,
				DefaultErrnoRet: tt.errnoRet,
				Syscalls:        []specs.LinuxSyscall{{Names: []string{"getcwd", "getrandom"}, Action: specs.ActAllow}},
			})
			if got := runFilter(t, p.filter, call64(nrMkdir64)); got != tt.want {
				t.Errorf("default: %#x, want %#x", got, tt.want)
			}
			if got := runFilter(t, p.filter, call64(nrGetcwd64)); got != retAllow {
				t.Errorf("allowed call: %#x, want allow", got)
			}
		})
	}
}

// opHolds is the spec's meaning of an argument condition.
func opHolds(op specs.LinuxSeccompOperator, arg, value, valueTwo uint64) bool {
	switch op {
	case specs.OpEqualTo:
		return arg == value
	case specs.OpNotEqual:
		return arg != value
	case specs.OpLessThan:
		return arg < value
	case specs.OpLessEqual:
		return arg <= value
	case specs.OpGreaterThan:
		return arg > value
	case specs.OpGreaterEqual:
		return arg >= value
	case specs.OpMaskedEqual:
		return arg&value == valueTwo
	}
	panic(op)
}

// Every operator against values and arguments around the 32-bit word
// boundary, where comparing the words separately goes wrong first: the
// 64-bit ABIs compare all 64 bits, i386 the low 32.
func TestSeccompArgOperators(t *testing.T) {
	values := []uint64{0, 1, 5, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x1_00000000,
		0x1_00000005, 0x1_ffffffff, 0x2_00000000, 0xffffffff_00000000, 0xffffffff_fffffffe, 0xffffffff_ffffffff}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan,
		specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual}
	const match = retErrno | 42
	for _, op := range ops {
		for _, v := range values {
			v2 := v & 0xf0000000_0000000f // for MASKED_EQ: the mask's bits at both ends
			a := specs.LinuxSeccompArg{Index: 3, Op: op, Value: v, ValueTwo: v2}
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"getpgid"}, Action: specs.ActErrno,
					ErrnoRet: uintPtr(42), Args: []specs.LinuxSeccompArg{a}}},
			})
			for _, x := range values {
				want := func(holds bool) uint32 {
					if holds {
						return match
					}
					return retAllow
				}
				args := []uint64{0, 0, 0, x}
				if got, w := runFilter(t, p.filter, call64(nrGetpgid64, args...)), want(opHolds(op, x, v, v2)); got != w {
					t.Errorf("x86_64: %#x %s %#x (valueTwo %#x): %#x, want %#x", x, op, v, v2, got, w)
				}
				if got, w := runFilter(t, p.filter, callX32(nrGetpgid64, args...)), want(opHolds(op, x, v, v2)); got != w {
					t.Errorf("x32: %#x %s %#x (valueTwo %#x): %#x, want %#x", x, op, v, v2, got, w)
				}
				lo := func(v uint64) uint64 { return v & 0xffffffff }
				if got, w := runFilter(t, p.filter, call32(nrGetpgid32, args...)), want(opHolds(op, lo(x), lo(v), lo(v2))); got != w {
					t.Errorf("i386: %#x %s %#x (valueTwo %#x): %#x, want %#x", x, op, v, v2, got, w)
				}
			}
		}
	}
}

func TestSeccompRules(t *testing.T) {
	errno := func(n uint) *uint { return &n }
	type check struct {
		name string
		d    seccompData
		want uint32
	}
	cases := []struct {
		name   string
		s      specs.LinuxSeccomp
		checks []check
	}{
		{
			name: "args of different indexes ANDed",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
				Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: errno(7),
				Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterEqual, 10), arg(2, specs.OpEqualTo, 1)},
			}}},
			checks: []check{
				{"both hold", call64(nrGetpgid64, 15, 0, 1), retErrno | 7},
				{"low edge", call64(nrGetpgid64, 10, 0, 1), retErrno | 7},
				{"first fails", call64(nrGetpgid64, 9, 0, 1), retAllow},
				{"second fails", call64(nrGetpgid64, 15, 0, 2), retAllow},
			},
		},
		{
			// runc's seccomp.bats "[seccomp -ENOSYS handling]" profile
			// lists the values of process_vm_readv's first argument so.
			name: "an index given twice: each condition a rule of its own (ORed), as runc",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
				Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: errno(7),
				Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 100), arg(0, specs.OpEqualTo, 9001), arg(2, specs.OpEqualTo, 1)},
			}}},
			checks: []check{
				{"first value", call64(nrGetpgid64, 100, 0, 5), retErrno | 7},
				{"second value", call64(nrGetpgid64, 9001, 0, 5), retErrno | 7},
				{"the other index alone", call64(nrGetpgid64, 15, 0, 1), retErrno | 7},
				{"none holds", call64(nrGetpgid64, 15, 0, 2), retAllow},
			},
		},
		{
			name: "rules of one syscall ORed, first match wins",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 0)}},
				{Names: []string{"personality", "getpid"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterThan, 0x1_0000_0000)}},
				{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: errno(9)},
				{Names: []string{"personality"}, Action: specs.ActAllow}, // dead: the one above always matches
			}},
			checks: []check{
				{"first", call64(nrPersonality64, 0), retAllow},
				{"second", call64(nrPersonality64, 0x1_0000_0001), unix.SECCOMP_RET_LOG},
				{"second on another name", call64(nrGetpid64, 0x1_0000_0001), unix.SECCOMP_RET_LOG},
				{"unconditional last", call64(nrPersonality64, 8), retErrno | 9},
				{"other name falls to default", call64(nrGetpid64, 1), eperm},
			},
		},
		{
			name: "unconditional rule first shadows the rest",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir"}, Action: specs.ActErrno},
				{Names: []string{"mkdir"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(1, specs.OpEqualTo, 0o755)}},
			}},
			checks: []check{{"", call64(nrMkdir64, 0, 0o755), eperm}},
		},
		{
			name: "no architectures: x86_64 only, the rest killed",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: errno(1)},
			}},
			checks: []check{
				{"x86_64 rule", call64(nrMkdir64), retErrno | 1},
				{"x86_64 default", call64(nrGetpid64), retAllow},
				{"i386", call32(nrGetpid32), retKillP},
				{"x32 mkdir", callX32(nrMkdir64), retKillP},
				{"x32 other", callX32(nrGetpid64), retKillP},
				{"x32 bit at the top of the range", call64(0x7fffffff), retKillP},
				{"negative nr is no x32 call", call64(nrInvalid), retAllow},
				{"nr 0x80000000", call64(0x80000000), retAllow},
				{"foreign arch", mkData(unix.AUDIT_ARCH_AARCH64, 34, nil), retKillP},
			},
		},
		{
			name: "all three x86 ABIs with their own numbers",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64},
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"mkdir", "readv"}, Action: specs.ActErrno, ErrnoRet: errno(1)},
					{Names: []string{"socketcall", "cacheflush"}, Action: specs.ActErrno, ErrnoRet: errno(2)},
				}},
			checks: []check{
				{"x86_64 mkdir", call64(nrMkdir64), retErrno | 1},
				{"i386 mkdir", call32(nrMkdir32), retErrno | 1},
				{"x32 mkdir", callX32(nrMkdir64), retErrno | 1},
				{"x32 readv", callX32(nrReadvX32), retErrno | 1},
				{"x32 number 19 is not readv", callX32(nrReadv64), retAllow},
				{"i386 83 is not mkdir", call32(nrMkdir64), retAllow},
				{"x86_64 39 is not mkdir", call64(nrMkdir32), retAllow},
				{"i386 socketcall", call32(nrSocketcall32), retErrno | 2},
				{"x86_64 102 is getuid", call64(nrSocketcall32), retAllow},
				{"aarch64 listed, still no x86", mkData(unix.AUDIT_ARCH_AARCH64, 34, nil), retKillP},
			},
		},
		{
			name: "i386 only besides native",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow}}},
			checks: []check{
				{"x86_64", call64(nrGetpid64), retAllow},
				{"i386", call32(nrGetpid32), retAllow},
				{"i386 default", call32(19), eperm},
				{"i386 newer than the profile", call32(nrGetpgid32), retErrno | uint32(unix.ENOSYS)},
				{"x32 killed", callX32(nrGetpid64), retKillP},
			},
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, &tt.s)
			for _, c := range tt.checks {
				if got := runFilter(t, p.filter, c.d); got != c.want {
					t.Errorf("%s (nr %#x arch %#x args %#x): %#x, want %#x", c.name, c.d.nr, c.d.arch, c.d.args, got, c.want)
				}
			}
		})
	}
}

func TestSeccompFlags(t *testing.T) {
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog,
			specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv},
	})
	if want := uintptr(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); p.flags != want {
		t.Errorf("flags %#x, want %#x (no TSYNC, no WAIT_KILLABLE_RECV)", p.flags, want)
	}
	// As runc: no flags field at all means SPEC_ALLOW; an empty list, none.
	if p := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}); p.flags != unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW {
		t.Errorf("no flags field: flags %#x, want SPEC_ALLOW %#x", p.flags, unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
	}
	empty := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{}}
	if p := mustCompile(t, empty); p.flags != 0 {
		t.Errorf("flags []: flags %#x, want 0", p.flags)
	}
	// An empty list survives encoding only beside NoFlags.
	b, err := json.Marshal(empty)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.LinuxSeccomp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	KeepNoFlags(&back, NoFlags(empty))
	if p := mustCompile(t, &back); p.flags != 0 {
		t.Errorf("flags [] encoded and kept: flags %#x, want 0", p.flags)
	}
}

// seccompHelperEnv names the kernel scenario the re-executed test binary
// runs in TestHelperSeccomp.
const seccompHelperEnv = "CRIER_TEST_SECCOMP_HELPER"

type seccompScenario struct {
	profile specs.LinuxSeccomp
	// run makes the calls under the installed filter, from the locked
	// thread, and prints key=value lines.
	run  func(dir string)
	want map[string]string
	// signal, if set, is the signal that must end the helper.
	signal syscall.Signal
	// handoff takes the listener of a profile that notifies.
	handoff Handoff
}

// fakeAgent answers every notification on listener with success, without
// making the call: a notified mkdir returns 0 and makes nothing.
func fakeAgent(listener int) {
	for {
		n, err := Receive(listener)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		Respond(listener, NotifResp{ID: n.ID})
	}
}

// errnoOf formats the outcome of a raw syscall.
func errnoOf(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return fmt.Sprintf("errno %d", int(e))
}

func rawMkdir(nr uintptr, path string) syscall.Errno {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		panic(err)
	}
	_, _, e := unix.RawSyscall(nr, uintptr(unsafe.Pointer(p)), 0o755, 0)
	return e
}

func rawGetcwd() syscall.Errno {
	var buf [256]byte
	_, _, e := unix.RawSyscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	return e
}

func seccompScenarios() map[string]seccompScenario {
	mkdirAndGetcwd := func(dir string) {
		fmt.Printf("mkdir=%s\n", errnoOf(rawMkdir(unix.SYS_MKDIR, filepath.Join(dir, "x"))))
		fmt.Printf("mkdirat=%s\n", errnoOf(func() syscall.Errno {
			err := unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "y"), 0o755)
			if err == nil {
				return 0
			}
			return err.(syscall.Errno)
		}()))
		fmt.Printf("getcwd=%s\n", errnoOf(rawGetcwd()))
	}
	notifyListener := -1
	return map[string]seccompScenario{
		"errno": {
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintPtr(42)},
				{Names: []string{"getcwd"}, Action: specs.ActErrno},
			}},
			run:  mkdirAndGetcwd,
			want: map[string]string{"mkdir": "errno 42", "mkdirat": "ok", "getcwd": "errno 1"},
		},
		"flags": {
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
				Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintPtr(42)},
				}},
			run:  mkdirAndGetcwd,
			want: map[string]string{"mkdir": "errno 42", "mkdirat": "ok", "getcwd": "ok"},
		},
		"notify": {
			// The listener reaches the handoff, which passes a copy to an
			// agent on another thread (the filter is the locked
			// thread's); Install closes the original.
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/unused",
				Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}},
			handoff: func(listener int) error {
				fd, err := unix.FcntlInt(uintptr(listener), unix.F_DUPFD_CLOEXEC, 0)
				if err != nil {
					return err
				}
				notifyListener = listener
				go fakeAgent(fd)
				return nil
			},
			run: func(dir string) {
				_, err := unix.FcntlInt(uintptr(notifyListener), unix.F_GETFD, 0)
				fmt.Printf("listener=%v\n", err)
				fmt.Printf("mkdir=%s\n", errnoOf(rawMkdir(unix.SYS_MKDIR, filepath.Join(dir, "x"))))
				_, err = os.Stat(filepath.Join(dir, "x"))
				fmt.Printf("made=%v\n", err == nil)
				fmt.Printf("mkdirat=%v\n", unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "y"), 0o755))
			},
			want: map[string]string{"listener": "bad file descriptor", "mkdir": "ok", "made": "false", "mkdirat": "<nil>"},
		},
		"64-bit args": {
			// getpgid and getsid take a pid_t: the kernel uses the low 32
			// bits, the filter sees the whole register.
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintPtr(77),
					Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 0x1_0000_0000)}},
				{Names: []string{"getsid"}, Action: specs.ActErrno, ErrnoRet: uintPtr(78),
					Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterThan, 0xffff_ffff)}},
			}},
			run: func(string) {
				for _, c := range []struct {
					key string
					nr  uintptr
					arg uint64
				}{
					{"getpgid_hi", unix.SYS_GETPGID, 0x1_0000_0000},
					{"getpgid_lo", unix.SYS_GETPGID, 0},
					{"getpgid_2hi", unix.SYS_GETPGID, 0x2_0000_0000},
					{"getsid_hi", unix.SYS_GETSID, 0x1_0000_0000},
					{"getsid_lo", unix.SYS_GETSID, 0},
				} {
					_, _, e := unix.RawSyscall(c.nr, uintptr(c.arg), 0, 0)
					fmt.Printf("%s=%s\n", c.key, errnoOf(e))
				}
			},
			want: map[string]string{"getpgid_hi": "errno 77", "getpgid_lo": "ok", "getpgid_2hi": "ok",
				"getsid_hi": "errno 78", "getsid_lo": "ok"},
		},
		"x32 listed": {
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintPtr(42)}}},
			run: func(dir string) {
				fmt.Printf("x32mkdir=%s\n", errnoOf(rawMkdir(x32SyscallBit|unix.SYS_MKDIR, filepath.Join(dir, "x"))))
			},
			want: map[string]string{"x32mkdir": "errno 42"},
		},
		"x32 not listed": {
			// A deny list must not be bypassed through the x32 numbers:
			// with x32 not listed, any x32 call kills.
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintPtr(42)}}},
			run: func(dir string) {
				fmt.Printf("x32getpid=%s\n", errnoOf(rawMkdir(x32SyscallBit|unix.SYS_GETPID, dir)))
			},
			signal: syscall.SIGSYS,
		},
	}
}

// parseKeyValues reads the "key=value" lines a scenario prints.
func parseKeyValues(out []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestHelperSeccomp is not a test: it is the child side of
// TestSeccompKernel, since a filter cannot be removed once installed.
func TestHelperSeccomp(t *testing.T) {
	name := os.Getenv(seccompHelperEnv)
	if name == "" {
		t.Skip("helper process for TestSeccompKernel")
	}
	runtime.LockOSThread() // the filter is this thread's
	sc, ok := seccompScenarios()[name]
	if !ok {
		fmt.Printf("error=unknown scenario %q\n", name)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "crier-seccomp-")
	if err != nil {
		fmt.Printf("error=%v\n", err)
		os.Exit(2)
	}
	defer os.RemoveAll(dir)
	p, err := Compile(&sc.profile)
	if err == nil {
		err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	if err == nil {
		err = p.Install(sc.handoff)
	}
	if err != nil {
		fmt.Printf("error=%v\n", err)
		os.Exit(2)
	}
	sc.run(dir)
	fmt.Println("error=<nil>")
	os.RemoveAll(dir)
	os.Exit(0)
}

func TestSeccompKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the filter is for x86")
	}
	for name, sc := range seccompScenarios() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperSeccomp$")
			cmd.Env = append(os.Environ(), seccompHelperEnv+"="+name)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if sc.signal != 0 {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != sc.signal {
					t.Fatalf("helper: %v, want death by %v\nstdout:\n%s\nstderr:\n%s", err, sc.signal, out, stderr.Bytes())
				}
				return
			}
			if err != nil {
				t.Fatalf("helper: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
			}
			got := parseKeyValues(out)
			sc.want["error"] = "<nil>"
			for k, want := range sc.want {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("%s = %q (present %v), want %q\noutput:\n%s", k, v, ok, want, out)
				}
			}
		})
	}
}

// BenchmarkSeccompCompile measures what compiling a Docker-sized profile
// adds to the init stage.
func BenchmarkSeccompCompile(b *testing.B) {
	s := defaultProfile()
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSeccompENOSYS: with a default action that does not let calls
// through, a call whose number is above every one the profile names in
// its ABI (newer than the profile) fails with ENOSYS, as runc's stub has
// it; below that, an unnamed call takes the default action.
func TestSeccompENOSYS(t *testing.T) {
	enosys := retErrno | uint32(unix.ENOSYS)
	names := []specs.LinuxSyscall{{Names: []string{"getcwd", "getrandom", "readv"}, Action: specs.ActAllow}}
	all := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	for _, tt := range []struct {
		name     string
		def      specs.LinuxSeccompAction
		errnoRet *uint
		archs    []specs.Arch
		d        seccompData
		want     uint32
	}{
		{"below the newest: default", specs.ActErrno, nil, nil, call64(nrMkdir64), eperm},
		{"named", specs.ActErrno, nil, nil, call64(318), retAllow},
		{"newer", specs.ActErrno, nil, nil, call64(319), enosys},
		{"far newer", specs.ActErrno, nil, nil, call64(nrInvalid), enosys},
		{"kill default", specs.ActKillProcess, nil, nil, call64(435), enosys},
		{"kill default, below", specs.ActKillProcess, nil, nil, call64(nrMkdir64), retKillP},
		{"errno 38 default", specs.ActErrno, uintPtr(38), nil, call64(nrMkdir64), enosys},
		{"allow default: no stub", specs.ActAllow, nil, nil, call64(319), retAllow},
		{"log default: no stub", specs.ActLog, nil, nil, call64(319), unix.SECCOMP_RET_LOG},
		{"trace default: no stub", specs.ActTrace, nil, nil, call64(319), unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{"i386 below its newest", specs.ActErrno, nil, all, call32(nrMkdir32), eperm},
		{"i386 newer", specs.ActErrno, nil, all, call32(400), enosys},
		{"x32 below its newest", specs.ActErrno, nil, all, callX32(nrMkdir64), eperm},
		{"x32 newer", specs.ActErrno, nil, all, callX32(548), enosys},
		{"x32 not listed: killed", specs.ActErrno, nil, nil, callX32(548), retKillP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: tt.def, DefaultErrnoRet: tt.errnoRet, Architectures: tt.archs, Syscalls: names})
			if got := runFilter(t, p.filter, tt.d); got != tt.want {
				t.Errorf("%+v: %#x, want %#x", tt.d, got, tt.want)
			}
		})
	}
}

// A notify rule returns SECCOMP_RET_USER_NOTIF, and only a profile with one
// gets a listener (and WAIT_KILLABLE_RECV, which the kernel refuses
// without): a listenerPath alone is ignored, as in runc.
func TestSeccompNotifyProgram(t *testing.T) {
	killable := []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
	notify := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "@agent", Flags: killable,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}, {Names: []string{"getcwd"}, Action: specs.ActErrno}}})
	if got := runFilter(t, notify.filter, call64(nrMkdir64)); got != unix.SECCOMP_RET_USER_NOTIF {
		t.Errorf("mkdir: %#x, want SECCOMP_RET_USER_NOTIF", got)
	}
	if got := runFilter(t, notify.filter, call64(nrGetcwd64)); got != eperm {
		t.Errorf("getcwd: %#x, want EPERM", got)
	}
	// NEW_LISTENER (8) and WAIT_KILLABLE_RECV (32), the 40 that runc's
	// seccomp-notify.bats looks for in its debug log.
	if notify.flags != 40 {
		t.Errorf("flags %#x, want NEW_LISTENER|WAIT_KILLABLE_RECV", notify.flags)
	}
	if notify.Listener() != "@agent" {
		t.Errorf("listener %q, want @agent", notify.Listener())
	}
	plain := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "@agent", ListenerMetadata: "bar", Flags: killable,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}})
	if plain.flags != 0 || plain.Listener() != "" {
		t.Errorf("without a notify rule: flags %#x, listener %q, want 0 and none", plain.flags, plain.Listener())
	}
	if err := notify.Install(nil); err == nil || !strings.Contains(err.Error(), "nothing takes the listener") {
		t.Errorf("Install(nil) of a notifying program: %v", err)
	}
	if (*Program)(nil).Listener() != "" {
		t.Error("nil program has a listener")
	}
}
