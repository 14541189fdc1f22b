package test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// This file tests --pidfd-socket on create, run and exec (runc's
// pidfd-socket.bats): the socket receives a pidfd of the container's
// process, with which the receiver signals it.

// pidfdListener listens on a socket in the test's directory; recv
// returns the pidfd and the name of the one message a runtime sends.
type pidfdListener struct {
	t    *testing.T
	ln   *net.UnixListener
	path string
}

func listenPidfd(t *testing.T, e *env) *pidfdListener {
	t.Helper()
	path := filepath.Join(e.dir, "pidfd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &pidfdListener{t: t, ln: ln, path: path}
}

func (l *pidfdListener) recv() (int, string) {
	l.t.Helper()
	// A runtime that never connects must fail the test, not hang it.
	l.ln.SetDeadline(time.Now().Add(hangDeadline / 3))
	conn, err := l.ln.AcceptUnix()
	if err != nil {
		l.t.Fatal(err)
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		l.t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		l.t.Fatalf("control messages %d, err %v; want one", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		l.t.Fatalf("descriptors %v, err %v; want one", fds, err)
	}
	l.t.Cleanup(func() { unix.Close(fds[0]) })
	return fds[0], string(buf[:n])
}

// pidOfPidfd reads the pid a pidfd refers to from its fdinfo.
func pidOfPidfd(t *testing.T, fd int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(v))
			return pid
		}
	}
	t.Fatalf("fd %d is not a pidfd:\n%s", fd, b)
	return 0
}

// TestParityPidfdSocketCreate: create sends a pidfd of the init before
// it returns; a signal through it stops the container.
func TestParityPidfdSocketCreate(t *testing.T) {
	for _, verb := range []string{"create", "run"} {
		t.Run(verb, func(t *testing.T) {
			e := newEnv(t)
			l := listenPidfd(t, e)
			id := e.id()
			b := e.bundle([]string{"sleep", "100"}, nil)
			args := []string{verb, "--pidfd-socket", l.path, "--bundle", b, id}
			if verb == "run" {
				args = []string{verb, "-d", "--pidfd-socket", l.path, "--bundle", b, id}
			}
			p := e.cliStart(nil, args...)
			fd, name := l.recv()
			p.waitOK()
			st := e.state(id)
			if got := pidOfPidfd(t, fd); got != st.Pid || name != "pidfd:"+strconv.Itoa(st.Pid) {
				t.Errorf("pidfd of pid %d named %q; want the init, %d", got, name, st.Pid)
			}
			sub := e.subscribe(id, true)
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
				t.Fatal(err)
			}
			next(t, sub, protocol.EventStopped)
			e.cliOK("delete", id)
		})
	}
}

// TestParityPidfdSocketExec: exec sends a pidfd of the exec'd process,
// the one in the pid file.
func TestParityPidfdSocketExec(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.cliOK("run", "-d", "--bundle", e.bundle([]string{"sleep", "100"}, nil), id)
	l := listenPidfd(t, e)
	pidFile := filepath.Join(e.dir, "exec.pid")
	p := e.cliStart(nil, "exec", "-d", "--pid-file", pidFile, "--pidfd-socket", l.path, id, "sleep", "100")
	fd, _ := l.recv()
	p.waitOK()
	want, _ := strconv.Atoi(readFile(t, pidFile))
	if got := pidOfPidfd(t, fd); got != want || want == 0 {
		t.Errorf("pidfd of pid %d; want the exec'd process, %d", got, want)
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	if !pidfdExited(fd, hangDeadline) {
		t.Error("the exec'd process outlived SIGKILL through its pidfd")
	}
	if st := e.state(id); st.Status != protocol.StatusRunning {
		t.Errorf("container %s after the exec'd process was killed, want running", st.Status)
	}
	e.cliOK("delete", "--force", id)
}

// TestParityPidfdSocketMissing: a socket nobody listens on fails create
// and exec at once, naming the flag, and leaves nothing behind.
func TestParityPidfdSocketMissing(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	missing := filepath.Join(e.dir, "nobody.sock")
	b := e.bundle([]string{"sleep", "100"}, nil)
	wantCLIError(t, "create", e.cliRun("create", "--pidfd-socket", missing, "--bundle", b, id), "--pidfd-socket")
	e.assertGone(id)
	e.cliOK("run", "-d", "--bundle", b, id)
	wantCLIError(t, "exec", e.cliRun("exec", "--pidfd-socket", missing, id, "true"), "--pidfd-socket")
	e.cliOK("delete", "--force", id)
}
