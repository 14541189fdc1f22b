package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/seccomp"
)

// execStageEnv is ExecEnv parsed: which stage, where the report pipe is
// (N; the config and the mount follow it), how to enter the mount, and
// the namespaces stage one was to join.
type execStageEnv struct {
	stage     int
	report    int
	mountKind string
	names     []string
	pid       int // the pid namespace's descriptor, or -1
}

func parseExecEnv(v string) (execStageEnv, error) {
	parts := strings.SplitN(v, ":", 5)
	if len(parts) != 5 {
		return execStageEnv{}, ErrNotInit
	}
	stage, err1 := strconv.Atoi(parts[0])
	report, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || report < 0 {
		return execStageEnv{}, ErrNotInit
	}
	pid, err := strconv.Atoi(parts[4])
	if err != nil {
		return execStageEnv{}, ErrNotInit
	}
	e := execStageEnv{stage: stage, report: report, mountKind: parts[2], pid: pid}
	if parts[3] != "" {
		e.names = strings.Split(parts[3], ",")
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
// forks stage two into them (the pid namespace takes only children) as
// the shim's child, and reports its pid.
func execStageOne(e execStageEnv, report *os.File) error {
	if len(e.names) > 0 {
		r := preRuntimeJoin
		switch {
		case r.ran != 1:
			return errors.New("exec: crier-shim was linked without its pre-runtime entry point (build it with make, on amd64)")
		case r.errno != 0 && int(r.index) < len(e.names):
			return fmt.Errorf("exec: join the container's %s namespace: setns: %w", e.names[r.index], syscall.Errno(r.errno))
		case r.errno != 0:
			return fmt.Errorf("exec: join the container's namespaces: setns: %w", syscall.Errno(r.errno))
		}
	}
	// Wait until the shim has put us in the container's cgroups.
	var b [1]byte
	if _, err := report.Read(b[:]); err != nil {
		return fmt.Errorf("exec: wait for the shim: %w", err)
	}
	files := make([]uintptr, e.report+3)
	for i := range files {
		files[i] = uintptr(i)
	}
	sys := &syscall.SysProcAttr{Cloneflags: unix.CLONE_PARENT}
	for _, n := range e.names {
		if n == "user" {
			// Root of the joined user namespace, as init is before it
			// takes the process's identity.
			sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		}
	}
	env := []string{fmt.Sprintf("%s=2:%d:%s::-1", ExecEnv, e.report, e.mountKind), "GOMAXPROCS=1"}
	// /proc/self/exe is the sealed copy stage one runs from.
	pid, err := forkInPidNS(e.pid, func() (int, error) {
		return syscall.ForkExec("/proc/self/exe", []string{"crier", "init"}, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
	})
	if err != nil {
		return fmt.Errorf("exec: fork into the container's namespaces: %w", err)
	}
	_, err = report.WriteString("pid " + strconv.Itoa(pid) + "\n")
	return err
}

// forkInPidNS runs fork on a thread that has joined the pid namespace fd
// (unless it is -1). The thread is never unlocked: the runtime discards it
// when its goroutine ends.
func forkInPidNS(fd int, fork func() (int, error)) (int, error) {
	if fd < 0 {
		return fork()
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
			done <- result{0, os.NewSyscallError("exec: join the container's pid namespace: setns", err)}
			return
		}
		pid, err := fork()
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// execStageTwo enters the container's root, takes the process's terminal,
// limits and identity, and execs it.
func execStageTwo(e execStageEnv) error {
	cfg, err := readExecConfig(os.NewFile(uintptr(e.report+1), "exec-config"))
	if err != nil {
		return err
	}
	p := cfg.Process
	filter, err := seccomp.Compile(cfg.Seccomp)
	if err != nil {
		return err
	}
	if err := enterExecMount(e.report+2, e.mountKind); err != nil {
		return err
	}
	if err := execTerminal(cfg); err != nil {
		return err
	}
	if err := setupProcessEarly(p); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := applyProcessExtras(&specs.Spec{Process: p, Linux: &specs.Linux{Personality: cfg.Personality}}); err != nil {
		return err
	}
	p.Env = withHome(p.Env, p.User.UID)
	return execProcess(p, filter, nil)
}

func readExecConfig(f *os.File) (*ExecConfig, error) {
	defer f.Close()
	var cfg ExecConfig
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("exec: read the process config: %w", err)
	}
	if cfg.Process == nil {
		return nil, errors.New("exec: the process config has no process")
	}
	return &cfg, nil
}

// enterExecMount joins the container's mount namespace, or chroots to the
// init's root when it has none of its own. Threads share their filesystem
// context, and setns into a mount namespace refuses a shared one: this
// thread, which execs, gets its own.
func enterExecMount(fd int, kind string) error {
	defer unix.Close(fd)
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("exec: unshare CLONE_FS", err)
	}
	if kind == "root" {
		if err := unix.Fchdir(fd); err != nil {
			return os.NewSyscallError("exec: fchdir to the container's root", err)
		}
		if err := unix.Chroot("."); err != nil {
			return os.NewSyscallError("exec: chroot to the container's root", err)
		}
	} else if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("exec: join the container's mount namespace: setns", err)
	}
	return os.Chdir("/")
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
	master, name, err := openPtyIn("/")
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	defer master.Close()
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(sock, []byte(master.Name()), rights, nil, 0); err != nil {
		return fmt.Errorf("console socket: send: %w", err)
	}
	if err := attachTerminal(name); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}

// withHome sets HOME, when env has none or an empty one, from the
// container's /etc/passwd entry for uid, else "/", as runc does.
func withHome(env []string, uid uint32) []string {
	out := env[:0:0]
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "HOME=")
		if ok && v != "" {
			return env
		}
		if !ok {
			out = append(out, kv)
		}
	}
	env = out
	home := "/"
	if f, err := os.Open("/etc/passwd"); err == nil {
		home = passwdHome(f, uid, home)
		f.Close()
	}
	return append(env, "HOME="+home)
}

// passwdHome returns the home directory of uid in a passwd file.
func passwdHome(f *os.File, uid uint32, dflt string) string {
	sc := bufio.NewScanner(f)
	want := strconv.FormatUint(uint64(uid), 10)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[2] == want && fields[5] != "" {
			return fields[5]
		}
	}
	return dflt
}
