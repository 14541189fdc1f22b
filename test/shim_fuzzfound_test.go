package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// What the live fuzzer (make fuzz-live, docs/reliability.md) found, each
// on a real shim.

// answerWithin is how long a shim that is not stuck takes, at most, to
// answer a hello here: a stuck one never does (or only after the 30 s idle
// limit frees it).
const answerWithin = 5 * time.Second

// fdCount returns how many descriptors pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitRead waits until the shim has read everything c sent (its unread
// bytes, SIOCOUTQ, are none), descriptors included.
func waitRead(t *testing.T, c *net.UnixConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangDeadline)
	for {
		var n int
		var ierr error
		raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
		if ierr != nil {
			t.Fatal(ierr)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shim has not read %d bytes after %v", n, hangDeadline)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestShimDescriptorsOfUnfinishedLines: clients that send descriptors with
// pieces of lines they never end cannot fill the shim's descriptor table:
// it holds at most 253 for one line and 1024 in all, closes the rest at
// once, and refuses the lines they came with. A new client is answered at
// once meanwhile, and the shim is back to its descriptors when the
// clients go. (It used to keep them all: with its limit lowered to 2048,
// ten clients sending 253 each made it unable to accept anyone until the
// idle limit closed them, 30 s later.)
func TestShimDescriptorsOfUnfinishedLines(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	sub, _ := e.startRunning(id)
	pid := e.shimState(id).ShimPid
	lim := &unix.Rlimit{Cur: 2048, Max: 2048}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, lim, nil); err != nil {
		t.Fatal(err)
	}
	before := fdCount(t, pid)
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	fds := make([]int, protocol.MaxExecFiles)
	for i := range fds {
		fds[i] = int(null.Fd())
	}
	var hoarders []*rawConn
	for range 10 {
		c := e.rawDial(id)
		if _, _, err := c.c.WriteMsgUnix([]byte(`{"op":`), unix.UnixRights(fds...), nil); err != nil {
			t.Fatal(err)
		}
		waitRead(t, c.c)
		hoarders = append(hoarders, c)
	}
	// The kernel gives the shim every descriptor that came, and the
	// shim closes those past its bounds right after: wait for that.
	for deadline := time.Now().Add(answerWithin); ; time.Sleep(time.Millisecond) {
		held := fdCount(t, pid) - before
		if held <= 1024+len(hoarders) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shim holds %d more descriptors than before, want at most 1024 and the connections", held)
		}
	}
	c := e.rawDial(id)
	if err := c.send(`{"op":"hello"}`); err != nil {
		t.Fatal(err)
	}
	if r, line, err := c.reply(time.Now().Add(answerWithin)); err != nil || !r.OK {
		t.Fatalf("hello while clients send descriptors: %q, %v; want an answer at once", line, err)
	}
	c.hangUp(t)
	for i, h := range hoarders {
		if err := h.send(`"state"}`); err != nil {
			t.Fatal(err)
		}
		r, line, err := h.reply(time.Now().Add(hangDeadline))
		if err != nil || r.Code != protocol.CodeBadRequest || !strings.Contains(r.Error, "descriptors") {
			t.Errorf("client %d: the line its descriptors came with got %q, %v; want bad_request", i, line, err)
		}
		h.hangUp(t)
	}
	if after := fdCount(t, pid); after != before {
		t.Errorf("the shim has %d descriptors after the clients left, %d before", after, before)
	}
	e.stopWithTerm(id, sub)
}

// TestShimExecConfigPipe: an exec request whose config is a pipe, the
// pipe's write end being one of the process's descriptors, is refused at
// once. (The exec stage read the config to its end, and held that end
// itself: it, the request's connection and descriptors waited for good.)
func TestShimExecConfigPipe(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	sub, _ := e.startRunning(id)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	c := e.rawDial(id)
	line := `{"op":"exec","files":4}` + "\n"
	_, _, err = c.c.WriteMsgUnix([]byte(line), unix.UnixRights(int(r.Fd()), int(null.Fd()), int(w.Fd()), int(null.Fd())), nil)
	r.Close()
	w.Close()
	null.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, got, err := c.reply(time.Now().Add(answerWithin))
	if err != nil || rep.Code != protocol.CodeBadRequest || !strings.Contains(rep.Error, "pipe") {
		t.Fatalf("exec with a pipe for its config: %q, %v; want bad_request at once", got, err)
	}
	c.hello(t, "after the refused exec")
	c.hangUp(t)
	e.stopWithTerm(id, sub)
}

// TestShimExecConfigAnonInode: an exec request whose config is an eventfd
// (or another anonymous inode: an epoll, a pidfd) is refused at once, the
// way the fuzzer sends it: alone, or first of several descriptors of every
// kind. Such a file's st_mode has no type bits, which os.FileMode reads as
// a regular file: the shim's check let it through, and the exec stage
// read its config from an empty eventfd, for good, holding the request's
// connection and descriptors (about 3% of the fuzzer's execs).
func TestShimExecConfigAnonInode(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	sub, _ := e.startRunning(id)
	pid := e.shimState(id).ShimPid
	before := fdCount(t, pid)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	nul := int(null.Fd())
	for i, fds := range [][]int{{efd}, {efd, nul, efd, nul}, {ep, efd}, {efd, efd, efd}} {
		c := e.rawDial(id)
		line := fmt.Sprintf(`{"op":"exec","files":%d,"execId":"anon%d"}`+"\n", len(fds), i)
		if _, _, err := c.c.WriteMsgUnix([]byte(line), unix.UnixRights(fds...), nil); err != nil {
			t.Fatal(err)
		}
		rep, got, err := c.reply(time.Now().Add(answerWithin))
		if err != nil || rep.Code != protocol.CodeBadRequest || !strings.Contains(rep.Error, "anon_inode") {
			t.Fatalf("exec with descriptors %v, an anonymous inode first: %q, %v; want bad_request at once", fds, got, err)
		}
		c.hello(t, "after the refused exec")
		c.hangUp(t)
	}
	for deadline := time.Now().Add(answerWithin); fdCount(t, pid) != before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shim has %d descriptors after the refused execs, %d before", fdCount(t, pid), before)
		}
	}
	e.stopWithTerm(id, sub)
}

// TestShimLineTooLongUnfinished: a line that passes 64 KiB by less than
// the decoder's 512-byte buffer, with no newline, from a client that then
// waits, is answered "line too long" at once and the connection closed.
// (The shim answered it only at its 30 s idle limit: the decoder waited
// for a newline or a full buffer before it looked at the length.)
func TestShimLineTooLongUnfinished(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	sub, _ := e.startRunning(id)
	for _, over := range []int{1, 300} {
		c := e.rawDial(id)
		line := `{"op":"state","pad":"` + strings.Repeat("a", protocol.MaxLine-len(`{"op":"state","pad":"`)+over)
		if _, err := c.c.Write([]byte(`{"op":"hello"}` + "\n" + line)); err != nil {
			t.Fatal(err)
		}
		if r, got, err := c.reply(time.Now().Add(answerWithin)); err != nil || !r.OK {
			t.Fatalf("hello before the long line: %q, %v", got, err)
		}
		r, got, err := c.reply(time.Now().Add(answerWithin))
		if err != nil || r.Code != protocol.CodeBadRequest || r.Error != protocol.ErrLineTooLong.Error() {
			t.Fatalf("a line %d bytes over MaxLine, unfinished: %q, %v; want line too long at once", over, got, err)
		}
		if _, _, err := c.reply(time.Now().Add(answerWithin)); !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
			t.Errorf("after line too long: %v, want the connection closed", err)
		}
	}
	e.stopWithTerm(id, sub)
}

// TestExecNeverFreezesTheShim: while an exec's stage is forked into the
// container's cgroups, no thread of the shim is ever in its freezer
// cgroup (cgroup v1). The forking thread used to join every v1 cgroup
// first: a pause that came meanwhile froze the thread wherever it was,
// and with it the whole shim, resume included, for good; an exec
// --ignore-paused into a paused container froze it on joining. The exec
// stage is the only new member here, and runs once the container is
// resumed.
func TestExecNeverFreezesTheShim(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	st := e.shimState(id)
	freezer := ""
	if st.Cgroup != nil {
		freezer = st.Cgroup.Paths["freezer"]
	}
	if freezer == "" {
		e.cliOK("delete", "--force", id)
		t.Skip("no cgroup v1 freezer here")
	}
	e.cliOK("pause", id)
	tasks := func() []string { return strings.Fields(readFile(t, filepath.Join(freezer, "tasks"))) }
	before := len(tasks())
	p := e.cliStart(nil, "exec", "--ignore-paused", id, "sh", "-c", "exit 5")
	for deadline := time.Now().Add(hangDeadline); len(tasks()) <= before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing of the exec joined %s", freezer)
		}
	}
	for _, tid := range tasks() {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%s", st.ShimPid, tid)); err == nil {
			t.Errorf("thread %s of the shim (pid %d) is in the container's freezer cgroup", tid, st.ShimPid)
		}
	}
	e.cliOK("resume", id)
	if res := p.wait(); res.code != 5 {
		t.Errorf("exec --ignore-paused: exit %d, want 5 (stderr %q)", res.code, res.stderr)
	}
	c := e.rawDial(id)
	c.hello(t, "after the exec")
	c.hangUp(t)
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
}
