package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// This file tests seccomp profiles older than the kernel (runc's -ENOSYS
// stub, libcontainer/seccomp/patchbpf): with a default action that denies,
// a call whose number is above every one the profile names fails with
// ENOSYS, so that a C library falls back to the older call it replaces
// (clone3 to clone, faccessat2 to faccessat); an unnamed call below that
// still takes the default action.

// buildSysno builds testdata/sysno, static, into dir.
func buildSysno(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "sysno")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./testdata/sysno")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/sysno: %v: %s", err, b)
	}
	return out
}

// sysnoProfile denies by default (EPERM) and allows what a static Go
// program and the exec into it need; the newest of them is getrandom
// (318 on x86_64).
func sysnoProfile() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{Action: specs.ActAllow, Names: strings.Fields(`read write close
			fstat newfstatat mmap munmap mprotect brk madvise mincore rt_sigaction rt_sigprocmask
			rt_sigreturn sigaltstack clone futex exit exit_group gettid getpid tgkill sched_yield
			nanosleep sched_getaffinity arch_prctl set_tid_address openat fcntl readlinkat execve
			uname getrlimit prlimit64 epoll_create1 epoll_ctl epoll_pwait pipe2 getrandom`)}},
	}
}

func TestParitySeccompENOSYS(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall numbers are x86_64's")
	}
	e := newEnv(t)
	// 140 getpriority: unnamed, older than getrandom. 435 clone3, 439
	// faccessat2: newer than everything the profile names.
	b := e.bundle([]string{"/sysno", "140", "435", "439"}, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
		s.Linux.Seccomp = sysnoProfile()
	})
	bin := buildSysno(t, e.dir)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "rootfs", "sysno"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "140", strconv.Itoa(int(unix.EPERM)))
	wantKV(t, kv, "435", strconv.Itoa(int(unix.ENOSYS)))
	wantKV(t, kv, "439", strconv.Itoa(int(unix.ENOSYS)))
}
