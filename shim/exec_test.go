package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// execReq is an exec request as serveConn hands it to the loop.
func execReq(wait bool) *request {
	r := newReq(protocol.OpExec)
	r.req.Files, r.req.Wait = 1, wait
	r.files = []*os.File{os.Stdin}
	return r
}

// TestExecWaitGetsExit: an exec with wait gets its pid, then, once the loop
// reaps that pid, its exit status; the init's exit is not touched.
func TestExecWaitGetsExit(t *testing.T) {
	k := newFakeOps()
	s, _ := cellServer(t, phaseRunning, k)
	exited := false
	s.ops.exec.wait = func(pid int) (unix.WaitStatus, bool) {
		if pid != 4242 || !exited {
			return 0, false
		}
		return unix.WaitStatus(9), true // killed by SIGKILL
	}
	r := execReq(true)
	s.handle(r)
	s.handle(<-s.msgs)
	if rep := <-r.reply; !rep.OK || rep.Pid != 4242 || r.exit == nil {
		t.Fatalf("exec reply %+v (exit channel %v), want ok with pid 4242 and a wait", rep, r.exit)
	}
	s.reap()
	select {
	case rep := <-r.exit:
		t.Fatalf("exit reply %+v before the process exited", rep)
	default:
	}
	exited = true
	s.handle(execMaybeExited{})
	rep := <-r.exit
	if rep.ExitStatus == nil || *rep.ExitStatus != 137 || rep.Signal != "SIGKILL" {
		t.Errorf("exit reply %+v, want 137 and SIGKILL", rep)
	}
	if len(s.execs) != 0 || s.phase != phaseRunning || s.exit != nil {
		t.Errorf("after the exec's exit: execs %v, phase %v, init exit %v; want none, running, none", s.execs, s.phase, s.exit)
	}
}

// TestExecFailureAndBadFiles: a failed exec stage is the reply's error and
// leaves nothing to reap; a request whose descriptor count is wrong is
// refused before anything runs.
func TestExecFailureAndBadFiles(t *testing.T) {
	k := newFakeOps()
	s, _ := cellServer(t, phaseRunning, k)
	s.ops.exec.run = func([]*os.File, *container.ExecNamespaces, map[string]string) (int, error) {
		return 0, errors.New("exec /x: no such file or directory")
	}
	r := execReq(false)
	s.handle(r)
	s.handle(<-s.msgs)
	if rep := <-r.reply; rep.OK || rep.Error != "exec /x: no such file or directory" || s.busy != 0 || len(s.execs) != 0 {
		t.Errorf("reply %+v, busy %d, execs %v; want the stage's error and nothing left", rep, s.busy, s.execs)
	}
	r = execReq(false)
	r.req.Files = 2
	s.handle(r)
	if rep := <-r.reply; rep.Code != protocol.CodeBadRequest || s.busy != 0 {
		t.Errorf("reply %+v, busy %d; want bad_request and nothing started", rep, s.busy)
	}
}

// TestAdopt: a process crier exec forked itself is adopted by its pidfd
// where an exec is legal, and refused where it is not; the shim reads its
// exit from the pidfd once reaped, closes the pidfd, and the init's exit
// and phase are untouched.
func TestAdopt(t *testing.T) {
	tests := []struct {
		name    string
		phase   phase
		files   int
		want    string // the reply's code; "" for ok
		adopted bool
	}{
		{"running", phaseRunning, 1, "", true},
		{"created", phaseCreated, 1, "", true},
		{"stopped", phaseStopped, 1, protocol.CodeInvalidState, false},
		{"no pidfd", phaseRunning, 0, protocol.CodeBadRequest, false},
		{"two files", phaseRunning, 2, protocol.CodeBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeOps()
			s, _ := cellServer(t, tt.phase, k)
			reaped := false
			s.ops.exec.exitOf = func(int) (unix.WaitStatus, bool, bool) {
				return unix.WaitStatus(5 << 8), true, reaped
			}
			r := newReq(protocol.OpAdopt)
			r.req.Files = 1
			var files []*os.File
			for i := 0; i < tt.files; i++ {
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			r.files = files
			s.handle(r)
			rep := <-r.reply
			if rep.Code != tt.want || rep.OK != (tt.want == "") {
				t.Fatalf("reply %+v, want code %q", rep, tt.want)
			}
			if got := len(s.execs) == 1; got != tt.adopted {
				t.Fatalf("execs %v, adopted %v", s.execs, tt.adopted)
			}
			if !tt.adopted {
				for _, f := range files {
					if _, err := f.Stat(); err == nil {
						t.Errorf("a refused adopt kept descriptor %d open", f.Fd())
					}
				}
				return
			}
			if rep.Pid != 4343 {
				t.Errorf("reply pid %d, want 4343", rep.Pid)
			}
			s.handle(execMaybeExited{})
			if len(s.execs) != 1 {
				t.Fatalf("the exec was taken for exited before its reap")
			}
			reaped = true
			s.handle(execMaybeExited{})
			if len(s.execs) != 0 || s.phase != tt.phase || s.exit != nil {
				t.Errorf("after the reap: execs %v, phase %v, init exit %v", s.execs, s.phase, s.exit)
			}
			if _, err := files[0].Stat(); err == nil {
				t.Errorf("the pidfd is still open after the exit was read")
			}
		})
	}
}

// TestAdoptTwice: a process already adopted is refused a second time,
// whatever exec id the request names: one exec-started, one entry, one
// pidfd kept; its exit then frees the first one's exec id. (A second entry
// used to replace the first: the process got two exec-started and one
// exec-stopped, and the first id stayed taken for good.)
func TestAdoptTwice(t *testing.T) {
	k := newFakeOps()
	s, sub := cellServer(t, phaseRunning, k)
	reaped := false
	s.ops.exec.exitOf = func(int) (unix.WaitStatus, bool, bool) {
		return 0, true, reaped
	}
	adopt := func(id string) (protocol.Reply, *os.File) {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		r := newReq(protocol.OpAdopt)
		r.req.Files, r.req.ExecID, r.files = 1, id, []*os.File{f}
		s.handle(r)
		return <-r.reply, f
	}
	if rep, _ := adopt("first"); !rep.OK {
		t.Fatalf("first adopt: %+v", rep)
	}
	if ev := nextEvent(t, sub); ev.Type != protocol.EventExecStarted || ev.ExecID != "first" {
		t.Fatalf("event %+v, want exec-started of first", ev)
	}
	rep, f := adopt("second")
	if rep.OK || rep.Code != protocol.CodeBadRequest {
		t.Fatalf("second adopt of pid 4343: %+v, want bad_request", rep)
	}
	if _, err := f.Stat(); err == nil {
		t.Errorf("the refused adopt's pidfd is still open")
	}
	if len(s.execs) != 1 || s.execs[4343].id != "first" || s.execIDs["second"] {
		t.Fatalf("execs %v, exec ids %v; want first alone", s.execs, s.execIDs)
	}
	reaped = true
	s.handle(execMaybeExited{})
	if ev := nextEvent(t, sub); ev.Type != protocol.EventExecStopped || ev.ExecID != "first" {
		t.Fatalf("event %+v, want exec-stopped of first", ev)
	}
	if len(s.execs) != 0 || len(s.execIDs) != 0 {
		t.Errorf("after the exit: execs %v, exec ids %v; want none", s.execs, s.execIDs)
	}
}

// TestExecIDs: an exec's events carry its exec id, the request's or one
// made up; an id in use is refused until its process has exited, and a
// bad one always.
func TestExecIDs(t *testing.T) {
	k := newFakeOps()
	s, sub := cellServer(t, phaseRunning, k)
	exited := false
	s.ops.exec.wait = func(pid int) (unix.WaitStatus, bool) { return unix.WaitStatus(3 << 8), exited && pid == 4242 }
	exec := func(id string) protocol.Reply {
		r := execReq(false)
		r.req.ExecID = id
		s.handle(r)
		if s.busy > 0 {
			s.handle(<-s.msgs)
		}
		return <-r.reply
	}
	if rep := exec(""); !rep.OK {
		t.Fatalf("exec: %+v", rep)
	}
	if rep := exec("exec-1"); rep.Code != protocol.CodeBadRequest {
		t.Errorf("exec with the made-up id in use: %+v, want bad_request", rep)
	}
	if rep := exec("../x"); rep.Code != protocol.CodeBadRequest {
		t.Errorf("exec id ../x: %+v, want bad_request", rep)
	}
	exited = true
	s.handle(execMaybeExited{})
	if rep := exec("exec-1"); !rep.OK {
		t.Errorf("exec-1 after its process exited: %+v, want ok", rep)
	}
	want := []string{"exec-started exec-1 4242", "exec-stopped exec-1 4242 3", "exec-started exec-1 4242"}
	for i, w := range want {
		ev := nextEvent(t, sub)
		got := fmt.Sprintf("%s %s %d", ev.Type, ev.ExecID, ev.Pid)
		if ev.ExitStatus != nil {
			got += fmt.Sprintf(" %d", *ev.ExitStatus)
		}
		if got != w {
			t.Errorf("event %d: %q, want %q", i, got, w)
		}
	}
}

// nextEvent decodes the next event sent to sub.
func nextEvent(t *testing.T, sub *subscriber) protocol.Event {
	t.Helper()
	select {
	case line := <-sub.ch:
		var ev protocol.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		return ev
	default:
		t.Fatal("no event")
	}
	return protocol.Event{}
}

// noEvent checks that nothing was sent to sub.
func noEvent(t *testing.T, sub *subscriber) {
	t.Helper()
	select {
	case line := <-sub.ch:
		t.Fatalf("event %q, want none yet", line)
	default:
	}
}

// TestExecConfigMustBeRegular: the exec stage is run only with a regular
// file (a memfd) for its config. A pipe whose write end came with the same
// request held the stage, its connection and descriptors for good (found
// by the live fuzzer); such requests are bad_request. So are anonymous
// inodes, whose st_mode has no type bits (os.FileMode calls them regular):
// a stage that read its config from an eventfd waited for good too.
func TestExecConfigMustBeRegular(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	eventfd := os.NewFile(uintptr(efd), "eventfd")
	defer eventfd.Close()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	epoll := os.NewFile(uintptr(ep), "epoll")
	defer epoll.Close()
	pfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pidfd := os.NewFile(uintptr(pfd), "pidfd")
	defer pidfd.Close()
	for _, f := range []*os.File{eventfd, epoll, pidfd} {
		err := checkExecConfig(f)
		if err == nil || protocol.ErrorReply(err).Code != protocol.CodeBadRequest || !strings.Contains(err.Error(), "anon_inode") {
			t.Errorf("config %s: %v, want bad_request naming the anon_inode", f.Name(), err)
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, f := range []*os.File{r, dir} {
		if err := checkExecConfig(f); protocol.ErrorReply(err).Code != protocol.CodeBadRequest {
			t.Errorf("config %s: %v, want bad_request", f.Name(), err)
		}
	}
	fd, err := unix.MemfdCreate("config", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(fd), "memfd")
	defer memfd.Close()
	if err := checkExecConfig(memfd); err != nil {
		t.Errorf("config memfd: %v, want nil", err)
	}
}
