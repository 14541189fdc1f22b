package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/seccomp"
)

// execStageEnv is ExecEnv parsed: which stage, where the report pipe is
// (N; the config follows it), how to enter the mount (N+2, stage one), the
// namespaces joined before the runtime, and the descriptors of the pid and
// user namespaces and of the sealed binary (-1: none).
type execStageEnv struct {
	stage, report  int
	mountKind      string
	names          []string
	pid, user, exe int
}

func parseExecEnv(v string) (execStageEnv, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 7 {
		return execStageEnv{}, ErrNotInit
	}
	var n [5]int
	for i, j := range []int{0, 1, 4, 5, 6} {
		var err error
		if n[i], err = strconv.Atoi(parts[j]); err != nil {
			return execStageEnv{}, ErrNotInit
		}
	}
	e := execStageEnv{stage: n[0], report: n[1], mountKind: parts[2], pid: n[2], user: n[3], exe: n[4]}
	if parts[3] != "" {
		e.names = strings.Split(parts[3], ",")
	}
	if e.report < 0 {
		return execStageEnv{}, ErrNotInit
	}
	return e, nil
}

// execStage is "crier-shim init" as an exec stage (exec_linux.go). Its
// errors go to the report pipe, one line, and it exits non-zero.
func execStage(v string) error {
	os.Unsetenv(ExecEnv)
	e, err := parseExecEnv(v)
	if err != nil {
		return err
	}
	unix.CloseOnExec(e.report)
	unix.CloseRange(uint(e.report+1), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	report := os.NewFile(uintptr(e.report), "exec-report")
	if e.stage == 1 {
		err = execStageOne(e, report)
	} else {
		err = execStageTwo(e)
	}
	if err != nil {
		// One line: the CLI prints it as the error.
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		report.WriteString("error " + msg + "\n")
	}
	return err
}

// execStageOne has joined the namespaces before the runtime started; it
// forks stage two into the container's pid and mount namespaces as the
// shim's child, and reports its pid.
func execStageOne(e execStageEnv, report *os.File) error {
	if err := preRuntimeExecResult(e.names); err != nil {
		return err
	}
	// Wait until the shim has put us in the container's cgroups.
	var b [1]byte
	if _, err := report.Read(b[:]); err != nil {
		return fmt.Errorf("exec: wait for the shim: %w", err)
	}
	files := make([]uintptr, e.report+2, e.report+4)
	for i := range files {
		files[i] = uintptr(i)
	}
	files = append(files, uintptr(e.exe))
	args, names := []string{"crier", "init"}, ""
	if e.user >= 0 {
		args = append(args, setnsArg(len(files), 1))
		files = append(files, uintptr(e.user))
		names = "user"
	}
	env := []string{fmt.Sprintf("%s=2:%d:-:%s:-1:-1:%d", ExecEnv, e.report, names, e.report+2), "GOMAXPROCS=1"}
	attr := &syscall.ProcAttr{Env: env, Files: files, Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_PARENT}}
	pid, err := forkInContainer(e, func() (int, error) {
		// Relative to the host's /proc, the working directory.
		return syscall.ForkExec("self/fd/"+strconv.Itoa(e.report+2), args, attr)
	})
	if err != nil {
		return err
	}
	_, err = report.WriteString("pid " + strconv.Itoa(pid) + "\n")
	return err
}

// preRuntimeExecResult turns what the entry point reported into an error.
func preRuntimeExecResult(names []string) error {
	if len(names) == 0 {
		return nil
	}
	r := preRuntimeJoin
	switch {
	case r.ran != 1:
		return errors.New("exec: crier-shim was linked without its pre-runtime entry point (build it with make, on amd64)")
	case r.errno != 0 && int(r.index) < len(names):
		return fmt.Errorf("exec: join the container's %s namespace: setns: %w", names[r.index], syscall.Errno(r.errno))
	case r.errno != 0:
		return fmt.Errorf("exec: join the container's namespaces: setns: %w", syscall.Errno(r.errno))
	}
	return nil
}

// forkInContainer runs fork on a thread that has joined the container's
// pid namespace (if it is to be joined) and mount namespace (or chrooted
// to the init's root), with the host's /proc as its working directory.
// The thread is never unlocked: the runtime discards it when its goroutine
// ends.
func forkInContainer(e execStageEnv, fork func() (int, error)) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := enterContainer(e); err != nil {
			done <- result{0, err}
			return
		}
		pid, err := fork()
		if err != nil {
			err = fmt.Errorf("exec: fork into the container's namespaces: %w", err)
		}
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// enterContainer moves the calling thread into the container's pid and
// mount namespaces, then into the host's /proc (opened before).
func enterContainer(e execStageEnv) error {
	proc, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "exec: open", Path: "/proc", Err: err}
	}
	defer unix.Close(proc)
	if e.pid >= 0 {
		if err := unix.Setns(e.pid, unix.CLONE_NEWPID); err != nil {
			return os.NewSyscallError("exec: join the container's pid namespace: setns", err)
		}
	}
	// Threads share their filesystem context, and setns into a mount
	// namespace refuses a shared one: this thread gets its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("exec: unshare CLONE_FS", err)
	}
	mount := e.report + 2
	if e.mountKind == "root" {
		if err := unix.Fchdir(mount); err != nil {
			return os.NewSyscallError("exec: fchdir to the container's root", err)
		}
		if err := unix.Chroot("."); err != nil {
			return os.NewSyscallError("exec: chroot to the container's root", err)
		}
	} else if err := unix.Setns(mount, unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("exec: join the container's mount namespace: setns", err)
	}
	if err := unix.Fchdir(proc); err != nil {
		return os.NewSyscallError("exec: fchdir to /proc", err)
	}
	return nil
}

// execStageTwo enters the container's root, takes the process's terminal,
// limits and identity, and execs it.
func execStageTwo(e execStageEnv) error {
	// Out of the host's /proc, which stage one exec'd us from.
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := preRuntimeExecResult(e.names); err != nil {
		return err
	}
	cfg, err := readExecConfig(os.NewFile(uintptr(e.report+1), "exec-config"))
	if err != nil {
		return err
	}
	p := cfg.Process
	if err := execInitialAffinity(p); err != nil {
		return err
	}
	filter, err := seccomp.Compile(cfg.Seccomp)
	if err != nil {
		return err
	}
	if err := execTerminal(cfg); err != nil {
		return err
	}
	if err := setupProcessEarly(p); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := applyProcessExtras(cfg.extrasSpec()); err != nil {
		return err
	}
	if err := applyMemoryPolicy(cfg.MemoryPolicy); err != nil {
		return err
	}
	p.Env = processEnv(p.Env, p.User.UID)
	if err := execFinalAffinity(p); err != nil {
		return err
	}
	return execProcess(p, filter, func(listener int) error { return execHandListener(e.report, listener) }, nil)
}

// execHandListener is stage two's seccomp.Handoff: "seccomp FD" on the
// report socket, to whoever forked the stage (readExecReport), which
// takes the listener, sends it to the agent and replies with one byte.
func execHandListener(report, listener int) error {
	if err := writeListenerFD(report, "seccomp ", "", listener); err != nil {
		return fmt.Errorf("exec: report the seccomp listener: %w", err)
	}
	var b [1]byte
	for {
		n, err := unix.Read(report, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("exec: wait for the seccomp agent: %w", os.NewSyscallError("read", err))
		}
		if n == 0 {
			return errors.New("exec: wait for the seccomp agent: the report socket closed")
		}
		return nil
	}
}

// readExecConfig reads the config from f, which must be a regular file
// (a memfd): what the shim checked, checked again by the stage that reads
// it, since from a pipe, a socket or an eventfd a read may never end.
func readExecConfig(f *os.File) (*ExecConfig, error) {
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("exec: the process config: %w", os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("exec: the process config is not a regular file (st_mode %#o)", st.Mode)
	}
	var cfg ExecConfig
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("exec: read the process config: %w", err)
	}
	if cfg.Process == nil {
		return nil, errors.New("exec: the process config has no process")
	}
	seccomp.KeepNoFlags(cfg.Seccomp, cfg.SeccompNoFlags)
	return &cfg, nil
}

// execTerminal gives the process a pty of the container's devpts and sends
// its master to the console socket, or else a session of its own, as
// runc's exec'd processes have.
func execTerminal(cfg *ExecConfig) error {
	if !cfg.Console {
		if _, err := unix.Setsid(); err != nil {
			return os.NewSyscallError("setsid", err)
		}
		return nil
	}
	sock := cfg.Files
	defer unix.Close(sock)
	// The slave belongs to whoever opens the master. A stage two that
	// joined a user namespace is still the host's root, an id that the
	// namespace does not map: the container could not chown that slave,
	// nor open it as another user. So it is made as the namespace's root
	// (runc's exec becomes that root on joining). Only this thread's file
	// system ids change: it is the main thread, which goes on to take the
	// process's identity and exec it.
	unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
	master, name, err := openPtyIn("/")
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	defer master.Close()
	// In the container already: its uid is the one to give the slave.
	if err := chownPty("/", name, master, int(cfg.Process.User.UID)); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	if cfg.ClearONLCR {
		if err := ClearONLCR(master); err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
	}
	if err := setConsoleSize(master, cfg.Process.ConsoleSize); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(sock, []byte(master.Name()), rights, nil, 0); err != nil {
		return fmt.Errorf("console socket: send: %w", err)
	}
	if err := attachTerminal(name); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}
