package container

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/container/seccomp"
)

// crier exec: a process started in a running container by its shim.
//
// The CLI builds the process (ExecConfig, JSON in a memfd) and sends it to
// the shim with the process's descriptors; the shim never decodes it (its
// serving image has no encoding/json). The shim forks the exec stage, in
// two steps, much as a two-stage init (nsenter_linux.go). (Under a
// supervisor crier exec itself takes the shim's place below, ExecFrom, so
// that the process is its child.)
//
//	shim     opens the init's namespaces (/proc/PID/ns/*, those that
//	         differ from its own) and forks stage one from the sealed
//	         binary, born in the container's cgroups (Cgroup.ForkInto)
//	stage 1  (pre-runtime) setns time, ipc, uts, net and cgroup; (Go) on
//	         a throwaway thread joins the pid namespace (a process whose
//	         pid namespace for children is not its own cannot make
//	         threads, and Go makes them at will) and the mount namespace
//	         (after unshare CLONE_FS), and forks stage two from it with
//	         CLONE_PARENT, so that stage two is born in the container's
//	         pid and mount namespaces, the shim's child; writes "pid N"
//	         to the report pipe and exits
//	stage 2  (pre-runtime) setns user: it was exec'd by the host's root,
//	         so, non-dumpable, nothing in the container can ptrace it;
//	         (Go) opens a pty if asked, applies rlimits, and execs the
//	         process as init would (execProcess: labels, seccomp,
//	         bounding set, user and groups, capabilities, no_new_privs)
//	shim     reads the report pipe to its end: "error MSG" from either
//	         stage, or nothing more once stage two has exec'd (the pipe
//	         is close-on-exec); it reaps stage two, its child, by pid.
//	         A "seccomp FD" line is the listener of a filter that
//	         notifies: the shim sends it to the agent and writes a byte
//	         back, which stage two waits for (seccomp_agent_linux.go).
//
// Stage two is exec'd as "self/fd/N" from the host's /proc (the thread's
// working directory, opened before the mount namespace was joined): the
// container's /proc does not show stage one. Its first act is chdir("/").
//
// Descriptors: 0..N-1 are the process's (stdio, the preserved ones, then
// the console socket if any), N the report pipe, N+1 the config. Stage one
// then has the mount namespace (or the init's root), and where ExecEnv
// says, the pid and user namespaces, the pre-runtime ones and the sealed
// binary; stage two has the sealed binary at N+2 and the user namespace
// at N+3.

// ExecEnv names the environment variable that makes "crier-shim init" an
// exec stage: "STAGE:N:MOUNT:NAMES:PID:USER:EXE", MOUNT "ns" or "root" (the
// descriptor N+2 in stage one), NAMES the namespaces joined before the
// runtime, PID, USER and EXE the descriptors of the pid and user
// namespaces (-1 when not joined) and of the sealed binary.
const ExecEnv = "_CRIER_EXEC"

// ExecConfig is what the exec stage needs, from the CLI.
type ExecConfig struct {
	Process *specs.Process `json:"process"`
	// Seccomp is the container's linux.seccomp, compiled by stage two.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// SeccompNoFlags: Seccomp's flags are an empty list (seccomp.NoFlags).
	SeccompNoFlags bool `json:"seccompNoFlags,omitempty"`
	// Personality is the container's linux.personality.
	Personality *specs.LinuxPersonality `json:"personality,omitempty"`
	// MemoryPolicy is the container's linux.memoryPolicy.
	MemoryPolicy *specs.LinuxMemoryPolicy `json:"memoryPolicy,omitempty"`
	// Files is how many of the descriptors are the process's (3 and the
	// preserved ones). With Console, the one after them is a connected
	// console socket, which gets the pty master.
	Files   int  `json:"files"`
	Console bool `json:"console,omitempty"`
	// ClearONLCR: the console socket is crier exec's own, proxying to a
	// pipe or a file; the pty's ONLCR is cleared before the master is
	// sent, so that none of the process's output is translated.
	ClearONLCR bool `json:"clearOnlcr,omitempty"`
}

// extrasSpec is what applyProcessExtras reads of an exec'd process.
func (cfg *ExecConfig) extrasSpec() *specs.Spec {
	return &specs.Spec{Process: cfg.Process, Linux: &specs.Linux{Personality: cfg.Personality, MemoryPolicy: cfg.MemoryPolicy}}
}

// NewExecConfig checks p for an exec into the container that spec made.
func NewExecConfig(spec *specs.Spec, p *specs.Process, preserve int) (*ExecConfig, error) {
	if err := validateProcess(p); err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	cfg := &ExecConfig{Process: p, Files: 3 + preserve, Console: p.Terminal}
	if spec.Linux != nil {
		cfg.Seccomp, cfg.Personality = spec.Linux.Seccomp, spec.Linux.Personality
		cfg.SeccompNoFlags = seccomp.NoFlags(spec.Linux.Seccomp)
		cfg.MemoryPolicy = spec.Linux.MemoryPolicy
	}
	if err := validateProcessExtras(cfg.extrasSpec()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// execNamespaces are the namespaces stage one joins before its runtime
// starts, all as the host's root (stage two joins the user namespace).
var execNamespaces = []string{"time", "ipc", "uts", "net", "cgroup"}

// Exec runs the process configured by the first of files (an ExecConfig),
// with the rest as its descriptors, in the container, as a child of the
// caller. It returns its pid once it has exec'd; the caller must reap it.
// ns are the init's namespaces (OpenExecNamespaces). sub, when not nil,
// puts the process in sub-cgroups of the container's (exec --cgroup,
// cgroup.ParseSubCgroups). The exec stage is the running binary, which
// must be crier-shim.
func (c *Container) Exec(files []*os.File, ns *ExecNamespaces, sub map[string]string) (int, error) {
	return c.ExecFrom("/proc/self/exe", files, ns, sub)
}

// ExecFrom is Exec with the exec stage taken from the crier-shim binary at
// shim: crier exec under a supervisor runs it itself, so that the process
// is its own child (docs/supervisors.md).
func (c *Container) ExecFrom(shim string, files []*os.File, ns *ExecNamespaces, sub map[string]string) (int, error) {
	cg := c.Cgroup
	if len(sub) > 0 {
		if cg == nil {
			return 0, errors.New("exec --cgroup: the container has no cgroup")
		}
		var err error
		if cg, err = cg.Sub(sub); err != nil {
			return 0, err
		}
	}
	exe, err := sealedExe(shim)
	if err != nil {
		return 0, err
	}
	defer exe.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socketpair", err)
	}
	report := os.NewFile(uintptr(fds[0]), "exec-report")
	defer report.Close()
	child := os.NewFile(uintptr(fds[1]), "exec-report-child")
	n := len(files) - 1
	list := make([]uintptr, 0, len(files)+len(ns.join)+4)
	for _, f := range files[1:] {
		list = append(list, f.Fd())
	}
	list = append(list, child.Fd(), files[0].Fd(), ns.mount.Fd())
	pidIndex, userIndex := -1, -1
	if ns.pid != nil {
		pidIndex = len(list)
		list = append(list, ns.pid.Fd())
	}
	if ns.user != nil {
		userIndex = len(list)
		list = append(list, ns.user.Fd())
	}
	args := []string{"crier", "init"}
	if len(ns.join) > 0 {
		args = append(args, setnsArg(len(list), len(ns.join)))
		for _, f := range ns.join {
			list = append(list, f.Fd())
		}
	}
	list = append(list, exe.Fd())
	sys := &syscall.SysProcAttr{}
	env := []string{fmt.Sprintf("%s=1:%d:%s:%s:%d:%d:%d", ExecEnv, n, ns.mountKind, strings.Join(ns.names, ","), pidIndex, userIndex, len(list)-1), "GOMAXPROCS=1"}
	pid, err := forkExecStage(cg, sys, execPathFor(len(list)-1), args, env, list)
	child.Close()
	if err != nil {
		return 0, fmt.Errorf("exec: start the exec stage: %w", err)
	}
	// Stage one is in the cgroups now (ForkInto may place it after the
	// fork): it may fork stage two.
	if _, err := report.Write([]byte{'\n'}); err != nil {
		unix.Kill(pid, unix.SIGKILL)
	}
	return c.readExecReport(report, pid)
}

// forkExecStage forks stage one into the cgroups cg (the container's, or
// sub-cgroups of them), from a throwaway thread (Cgroup.ForkInto).
func forkExecStage(cg *cgroup.Cgroup, sys *syscall.SysProcAttr, path string, args, env []string, files []uintptr) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		attr := &syscall.ProcAttr{Env: env, Files: files, Sys: sys}
		fork := func() (int, error) { return syscall.ForkExec(path, args, attr) }
		if cg == nil {
			pid, err := fork()
			done <- result{pid, err}
			return
		}
		pid, err := cg.ForkInto(sys, fork)
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// readExecReport reads what the stages report until both are gone, reaps
// stage one and, if the exec failed, stage two. A "seccomp FD" line is
// stage two's seccomp listener (seccomp_agent_linux.go): once stage one
// has said stage two's pid, it goes to the agent and stage two gets a
// byte back; if it cannot, stage two is killed (it waits for the byte,
// and its notified calls would wait for good) and that is the error.
func (c *Container) readExecReport(report *os.File, stage1 int) (int, error) {
	var (
		pid      int
		msgs     []string
		listener = -1
	)
	sc := bufio.NewScanner(report)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "pid "); ok {
			pid, _ = strconv.Atoi(v)
		} else if v, ok := strings.CutPrefix(line, "error "); ok {
			msgs = append(msgs, v)
		} else if v, ok := strings.CutPrefix(line, "seccomp "); ok && listener == -1 {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				n = -2
			}
			listener = n
		}
		if listener >= 0 && pid > 0 {
			if err := c.execListener(report, pid, listener); err != nil {
				msgs = append([]string{err.Error()}, msgs...)
				unix.Kill(pid, unix.SIGKILL)
			}
			listener = -2 // once
		}
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(stage1, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	if len(msgs) == 0 && pid > 0 {
		return pid, nil
	}
	if pid > 0 {
		for {
			if _, err := unix.Wait4(pid, nil, 0, nil); err != unix.EINTR {
				break
			}
		}
	}
	if len(msgs) == 0 {
		return 0, fmt.Errorf("exec: the exec stage exited (%s) without a report", exitText(ws))
	}
	return 0, errors.New(msgs[0])
}

// execListener sends stage two's listener, its descriptor fd, to the
// agent and lets stage two go on. Stage two is the caller's child, not
// yet reaped: its pid is certainly its own.
func (c *Container) execListener(report *os.File, pid, fd int) error {
	if err := c.handListener(pid, -1, fd, seccompStatusExec); err != nil {
		return err
	}
	if _, err := report.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("exec: let the process go on: %w", err)
	}
	return nil
}

func exitText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}

// ExecNamespaces are the init's namespaces an exec joins, opened while the
// init is certainly the one the caller knows (before it is reaped).
type ExecNamespaces struct {
	join      []*os.File // stage one's, in execNamespaces order
	names     []string
	pid       *os.File // the pid namespace, nil when it is ours
	user      *os.File // the user namespace, nil when it is ours
	mount     *os.File // the mount namespace, or the init's root
	mountKind string   // "ns" or "root"
}

// OpenExecNamespaces opens the namespaces of process pid that differ from
// the caller's.
func OpenExecNamespaces(pid int) (*ExecNamespaces, error) {
	ns := &ExecNamespaces{}
	for _, t := range execNamespaces {
		f, same, err := openNamespace(pid, t)
		if err != nil {
			ns.Close()
			return nil, err
		}
		if same {
			continue
		}
		ns.join, ns.names = append(ns.join, f), append(ns.names, t)
	}
	f, same, err := openNamespace(pid, "pid")
	if err != nil {
		ns.Close()
		return nil, err
	}
	if !same {
		ns.pid = f
	}
	if f, same, err = openNamespace(pid, "user"); err != nil {
		ns.Close()
		return nil, err
	}
	if !same {
		ns.user = f
	}
	f, same, err = openNamespace(pid, "mnt")
	if err != nil {
		ns.Close()
		return nil, err
	}
	ns.mount, ns.mountKind = f, "ns"
	if same {
		// The container shares our mount namespace and was chrooted
		// into its rootfs: so is the exec'd process.
		f.Close()
		path := fmt.Sprintf("/proc/%d/root", pid)
		if ns.mount, err = os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY, 0); err != nil {
			ns.Close()
			return nil, fmt.Errorf("exec: %w", err)
		}
		ns.mountKind = "root"
	}
	return ns, nil
}

// openNamespace opens /proc/PID/ns/t; same is true (and f closed) when it
// is the caller's own, or the kernel has no such namespace type.
func openNamespace(pid int, t string) (f *os.File, same bool, err error) {
	path := fmt.Sprintf("/proc/%d/ns/%s", pid, t)
	f, err = os.Open(path)
	if errors.Is(err, os.ErrNotExist) && t == "time" {
		if _, serr := os.Stat("/proc/self/ns/time"); errors.Is(serr, os.ErrNotExist) {
			return nil, true, nil // a kernel without time namespaces
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("exec: %w", err)
	}
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &theirs); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("exec: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	if err := unix.Stat("/proc/self/ns/"+t, &ours); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("exec: %w", &os.PathError{Op: "stat", Path: "/proc/self/ns/" + t, Err: err})
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		f.Close()
		return nil, true, nil
	}
	return f, false, nil
}

// Close closes the descriptors.
func (ns *ExecNamespaces) Close() {
	if ns == nil {
		return
	}
	closeFiles(ns.join)
	ns.join = nil
	for _, f := range []**os.File{&ns.pid, &ns.user} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	if ns.mount != nil {
		ns.mount.Close()
		ns.mount = nil
	}
}
