package test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/protocol"
)

// Seccomp user notification (SCMP_ACT_NOTIFY), as runc's
// tests/integration/seccomp-notify.bats has it: the listener reaches the
// agent at linux.seccomp.listenerPath, with the process's state, before
// the process makes a call the filter notifies, for the init and for an
// exec'd process (forked by the shim, or by crier exec itself under a
// supervisor); the agent holds the only copy, so that its exit fails the
// notified calls with ENOSYS; and what runc refuses is refused.

// notifyAgent is a seccomp agent: it receives listeners as runc's agents
// do (one message, the state as JSON and the listener as SCM_RIGHTS) and
// answers each notified call: mkdir and mkdirat succeed without making
// anything, chmod fails with ENOMEDIUM, and the rest go on (CONTINUE).
type notifyAgent struct {
	t      *testing.T
	path   string
	ln     *net.UnixListener
	states chan specs.ContainerProcessState
	// stop, once closed, ends the goroutines that answer: they close
	// their listeners.
	stopR, stopW *os.File
	wg           sync.WaitGroup
	once         sync.Once
}

func startNotifyAgent(t *testing.T) *notifyAgent {
	t.Helper()
	// A path short enough for sun_path, whatever the test's name.
	dir, err := os.MkdirTemp("", "crier-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &notifyAgent{t: t, path: filepath.Join(dir, "agent.sock"), states: make(chan specs.ContainerProcessState, 8)}
	if a.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: a.path, Net: "unix"}); err != nil {
		t.Fatal(err)
	}
	if a.stopR, a.stopW, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	a.wg.Add(1)
	go a.accept()
	t.Cleanup(a.stop)
	return a
}

// stop closes the socket and every listener, and waits for the agent's
// goroutines: from then on, nobody answers.
func (a *notifyAgent) stop() {
	a.once.Do(func() {
		a.ln.Close()
		a.stopW.Close()
		a.wg.Wait()
		a.stopR.Close()
	})
}

func (a *notifyAgent) accept() {
	defer a.wg.Done()
	for {
		conn, err := a.ln.AcceptUnix()
		if err != nil {
			return
		}
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		conn.Close()
		if err != nil {
			a.t.Errorf("agent: read: %v", err)
			continue
		}
		listener, err := listenerOf(oob[:oobn])
		if err != nil {
			a.t.Errorf("agent: %v", err)
			continue
		}
		var st specs.ContainerProcessState
		if err := json.Unmarshal(buf[:n], &st); err != nil {
			a.t.Errorf("agent: the state %q: %v", buf[:n], err)
		}
		a.wg.Add(1)
		go a.answer(listener)
		a.states <- st
	}
}

// listenerOf returns the one descriptor that oob carries.
func listenerOf(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, err
	}
	if len(msgs) != 1 {
		return -1, &os.SyscallError{Syscall: "recvmsg: want one control message, got " + strconv.Itoa(len(msgs))}
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return -1, err
	}
	if len(fds) != 1 {
		return -1, &os.SyscallError{Syscall: "recvmsg: want one descriptor, got " + strconv.Itoa(len(fds))}
	}
	return fds[0], nil
}

// answer serves one listener until stop, or until no process uses its
// filter any more (POLLHUP).
func (a *notifyAgent) answer(listener int) {
	defer a.wg.Done()
	defer unix.Close(listener)
	for {
		fds := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}, {Fd: int32(a.stopR.Fd()), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err == unix.EINTR {
			continue
		} else if err != nil || fds[1].Revents != 0 || fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			return
		}
		n, err := seccomp.Receive(listener)
		if err != nil {
			continue // ENOENT: the caller died meanwhile
		}
		r := seccomp.NotifResp{ID: n.ID}
		switch n.Nr {
		case unix.SYS_MKDIR, unix.SYS_MKDIRAT:
			// Success, and nothing made.
		case unix.SYS_CHMOD, unix.SYS_FCHMOD, unix.SYS_FCHMODAT:
			r.Val, r.Error = -1, -int32(unix.ENOMEDIUM)
		default:
			r.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
		}
		seccomp.Respond(listener, r)
	}
}

// state returns the next state the agent received.
func (a *notifyAgent) state() specs.ContainerProcessState {
	a.t.Helper()
	select {
	case st := <-a.states:
		return st
	case <-a.t.Context().Done():
		a.t.Fatal("the agent received no listener")
	}
	return specs.ContainerProcessState{}
}

// noMoreStates checks that the agent received nothing more.
func (a *notifyAgent) noMoreStates() {
	a.t.Helper()
	select {
	case st := <-a.states:
		a.t.Errorf("the agent received another listener: %+v", st)
	default:
	}
}

// notifyProfile notifies names, with runc's bats' architectures and
// listenerMetadata.
func notifyProfile(listener string, names ...string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     listener,
		ListenerMetadata: "bar",
		Architectures:    []specs.Arch{specs.ArchX86, specs.ArchX32, specs.ArchX86_64},
		Syscalls:         []specs.LinuxSyscall{{Names: names, Action: specs.ActNotify}},
	}
}

// wantProcessState checks what the agent was told of a process.
func wantProcessState(t *testing.T, st specs.ContainerProcessState, id, bundle string, initPid int, status specs.ContainerState) {
	t.Helper()
	if st.Version != specs.Version || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName || st.Metadata != "bar" || st.Pid <= 0 {
		t.Errorf("process state %+v: want ociVersion %s, fds [seccompFd], metadata bar, a pid", st, specs.Version)
	}
	s := st.State
	if s.Version != specs.Version || s.ID != id || s.Bundle != bundle || s.Pid != initPid || s.Status != status || s.Annotations["org.crier.test"] != "notify" {
		t.Errorf("container state %+v: want id %s, bundle %s, pid %d, status %s, the annotation", s, id, bundle, initPid, status)
	}
}

// TestParitySeccompNotify: a notified mkdir is the agent's to answer (it
// says yes and makes nothing, for mkdir(1)), and chmod fails with the
// agent's ENOMEDIUM, wherever init loads the filter (before dropping
// capabilities, or last with no_new_privs); the agent learns the state.
// The same with the calls init itself makes after the filter is on
// (execve, openat, read, close, fcntl: runc's "important syscalls"),
// which the agent lets through.
func TestParitySeccompNotify(t *testing.T) {
	t.Parallel()
	for _, nnp := range []bool{false, true} {
		t.Run("noNewPrivileges="+strconv.FormatBool(nnp), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := startNotifyAgent(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", `mkdir /tmp/foo; echo mkdir=$?; [ -e /tmp/foo ] && echo made=yes || echo made=no
				touch /tmp/f; chmod 777 /tmp/f 2>&1; echo chmod=$?`}, func(s *specs.Spec) {
				s.Process.NoNewPrivileges = nnp
				s.Annotations = map[string]string{"org.crier.test": "notify"}
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
				s.Linux.Seccomp = notifyProfile(a.path, "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat")
			})
			var pid int
			out, ev := e.run(id, b, func() { pid = e.state(id).Pid })
			if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
				t.Fatalf("container exited %+v; output:\n%s", ev, out)
			}
			kv := keyValues(out)
			wantKV(t, kv, "mkdir", "0")
			wantKV(t, kv, "made", "no")
			wantKV(t, kv, "chmod", "1")
			if !strings.Contains(out, "No medium found") {
				t.Errorf("chmod's error: want the agent's ENOMEDIUM, got:\n%s", out)
			}
			st := a.state()
			wantProcessState(t, st, id, b, pid, specs.StateCreated)
			if st.Pid != pid {
				t.Errorf("process state pid %d, want the init's %d", st.Pid, pid)
			}
			a.noMoreStates()
		})
		t.Run("init's calls/noNewPrivileges="+strconv.FormatBool(nnp), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := startNotifyAgent(t)
			b := e.bundle([]string{"sh", "-c", "echo ran=yes"}, func(s *specs.Spec) {
				s.Process.NoNewPrivileges = nnp
				s.Linux.Seccomp = notifyProfile(a.path, "execve", "openat", "open", "read", "close", "fcntl")
			})
			_, kv := e.runOK(e.id(), b, nil)
			wantKV(t, kv, "ran", "yes")
			a.state()
		})
	}
}

// TestParitySeccompNotifyExec: an exec'd process sends its own listener,
// to the same agent, before it runs, whether the shim forks it or crier
// exec itself (supervisor mode); the agent is told the container runs.
func TestParitySeccompNotifyExec(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "on"} {
		t.Run("supervisor="+mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := startNotifyAgent(t)
			id := execTarget(t, e, func(s *specs.Spec) {
				s.Process.NoNewPrivileges = mode == "on"
				s.Annotations = map[string]string{"org.crier.test": "notify"}
				s.Linux.Seccomp = notifyProfile(a.path, "mkdir", "mkdirat")
			})
			initPid := e.state(id).Pid
			a.state() // the init's
			r := e.cliOK("--supervisor", mode, "exec", id, "sh", "-c", `mkdir /tmp/bar; echo mkdir=$?; [ -e /tmp/bar ] && echo made=yes || echo made=no`)
			kv := keyValues(r.stdout)
			wantKV(t, kv, "mkdir", "0")
			wantKV(t, kv, "made", "no")
			st := a.state()
			wantProcessState(t, st, id, e.state(id).Bundle, initPid, specs.StateRunning)
			if st.Pid == initPid {
				t.Errorf("exec's process state names the init (%d)", initPid)
			}
			a.noMoreStates()
			e.cliOK("delete", "--force", id)
		})
	}
}

// TestParitySeccompNotifyAgentGone: the agent holds the only copy of the
// listener (nor the shim, nor the process keep one): once it has closed
// it, a notified call fails with ENOSYS ("kill seccompagent" in runc's
// bats).
func TestParitySeccompNotifyAgentGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := startNotifyAgent(t)
	shared := filepath.Join(e.dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(shared, "go"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := e.id()
	b := e.bundle([]string{"sh", "-c", `read x < /shared/go; mkdir /tmp/foo 2>&1; echo mkdir=$?`}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
			specs.Mount{Destination: "/shared", Type: "bind", Source: shared, Options: []string{"bind"}})
		s.Linux.Seccomp = notifyProfile(a.path, "mkdir", "mkdirat")
	})
	out := e.create(id, b)
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	a.state()
	a.stop()
	// The container waits on the fifo until the agent is gone.
	f, err := os.OpenFile(filepath.Join(shared, "go"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	kv := keyValues(readFile(t, out))
	wantKV(t, kv, "mkdir", "1")
	if s := readFile(t, out); !strings.Contains(s, "Function not implemented") {
		t.Errorf("mkdir after the agent's exit: want ENOSYS, got:\n%s", s)
	}
}

// TestParitySeccompNotifyRefused: what runc refuses fails create, with
// its words, and leaves nothing; a listenerPath without a notify rule is
// ignored.
func TestParitySeccompNotifyRefused(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		edit func(*specs.LinuxSeccomp)
		want string
	}{
		"no listenerPath":  {func(s *specs.LinuxSeccomp) { s.ListenerPath = "" }, "SCMP_ACT_NOTIFY needs a listenerPath"},
		"write":            {func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = []string{"write"} }, "SCMP_ACT_NOTIFY cannot be used for the write syscall"},
		"default notifies": {func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify }, "SCMP_ACT_NOTIFY cannot be used as default action"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wantCreateFails(t, func(s *specs.Spec) {
				s.Linux.Seccomp = notifyProfile("/run/crier-test-agent.sock", "mkdir")
				tc.edit(s.Linux.Seccomp)
			}, tc.want)
		})
	}
	t.Run("listenerPath alone", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kv := e.runScript("mkdir /tmp/foo && echo made=yes", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/nonexistent.sock", ListenerMetadata: "bar"}
		})
		wantKV(t, kv, "made", "yes")
	})
}

// TestParitySeccompNotifyNoAgent: with no agent at listenerPath (a path
// with nothing there, an abstract name nobody listens on, an agent whose
// backlog is full and so would never take the listener), start fails at
// once, with runc's words, the init is gone, and delete leaves nothing.
func TestParitySeccompNotifyNoAgent(t *testing.T) {
	t.Parallel()
	full := func(t *testing.T) string {
		dir, err := os.MkdirTemp("", "crier-agent-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "full.sock")
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(s) })
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		// A backlog of 0 holds one connection, never accepted.
		if err := unix.Listen(s, 0); err != nil {
			t.Fatal(err)
		}
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(c) })
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for name, listener := range map[string]func(*testing.T) string{
		"nothing there": func(*testing.T) string { return "/some-non-existing-listener-path.sock" },
		"abstract":      func(*testing.T) string { return "@crier-test-nobody-listens-" + strconv.Itoa(os.Getpid()) },
		"backlog full":  full,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			path := listener(t)
			id := e.id()
			b := e.bundle([]string{"true"}, func(s *specs.Spec) {
				s.Linux.Seccomp = notifyProfile(path, "mkdir")
			})
			e.create(id, b)
			sub := e.subscribe(id, true)
			r := e.cliRun("start", id)
			if r.code == 0 || !strings.Contains(r.stderr, "failed to connect with seccomp agent") || !strings.Contains(r.stderr, path) {
				t.Errorf("start: exit %d, stderr %q: want a failure to connect to %s", r.code, r.stderr, path)
			}
			// The init, left waiting for the listener to be taken, is
			// killed.
			if ev := next(t, sub, protocol.EventStopped); ev.Signal != "SIGKILL" {
				t.Errorf("the init's exit %+v: want SIGKILL", ev)
			}
			e.cliOK("delete", "--force", id)
			e.assertGone(id)
		})
	}
}

// TestParitySeccompNotifyWaitKillable: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
// goes with NEW_LISTENER, and --debug says so in runc's words, "seccomp
// filter flags: 40" (seccomp-notify.bats, which runc skips here for its
// libseccomp).
func TestParitySeccompNotifyWaitKillable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := startNotifyAgent(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "mkdir /tmp/foo && [ ! -e /tmp/foo ]"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		s.Linux.Seccomp = notifyProfile(a.path, "mkdir", "mkdirat")
		s.Linux.Seccomp.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
	})
	r := e.cliRun("--debug", "run", "--bundle", b, id)
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `"seccomp filter flags: 40"`) {
		t.Errorf("--debug run: want runc's \"seccomp filter flags: 40\", got:\n%s", r.stderr)
	}
	a.state()
}
