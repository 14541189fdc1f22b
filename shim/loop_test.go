package shim

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// The loop driven through its socket, as the CLI drives it, with the
// kernel faked (fake_test.go).

// TestLoopLifecycle: create, start, kill, exit, delete; what each client
// sees, and what the state file and pid file say.
func TestLoopLifecycle(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := newHarness(t, testSpec(), func(c *Config) { c.PidFile = pidFile }).created()
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file %q", b)
	}
	c := h.dial()
	st, err := c.State(ctx(t))
	if err != nil || st.Status != protocol.StatusCreated || st.Pid != os.Getpid() || st.ID != "c1" {
		t.Fatalf("state %+v, %v", st, err)
	}
	if r, err := c.Do(ctx(t), protocol.Request{Op: protocol.OpHello}); err != nil || r.Protocol != protocol.Version {
		t.Errorf("hello: %+v, %v", r, err)
	}
	sub := h.subscribe(true)
	next(t, sub, protocol.EventCreated)
	h.k.start.open(nil)
	if err := c.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	next(t, sub, protocol.EventStarted)
	if err := c.Kill(ctx(t), unix.SIGTERM, true); err != nil {
		t.Fatal(err)
	}
	if got := h.k.nextSignal(t); got != (sent{unix.SIGTERM, true}) {
		t.Errorf("signal %+v", got)
	}
	h.k.setSignalErr(errors.New("no such process"))
	if err := c.Kill(ctx(t), unix.SIGTERM, false); err == nil || !strings.Contains(err.Error(), "kill: no such process") {
		t.Errorf("failed kill: %v", err)
	}
	h.k.nextSignal(t)
	h.k.exit(killedBy(unix.SIGTERM))
	ev := next(t, sub, protocol.EventStopped)
	if ev.ExitStatus == nil || *ev.ExitStatus != 128+15 || ev.Signal != "SIGTERM" || ev.Pid != os.Getpid() {
		t.Errorf("stopped %+v", ev)
	}
	if st, err := statedir.ReadState(h.cfg.Root, "c1"); err != nil || st.Status != protocol.StatusStopped || st.Pid != 0 {
		t.Errorf("state file after exit: %+v, %v", st, err)
	}
	h.k.teardown.open(nil)
	if err := c.Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	next(t, sub, protocol.EventDeleted)
	if _, err := sub.Next(ctx(t)); err != io.EOF {
		t.Errorf("after deleted: %v, want EOF", err)
	}
	if err := h.served(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := os.Stat(statedir.DirPath(h.cfg.Root, "c1")); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}

// TestLoopExitBeforeStartReturns: an exit reaped while start is in flight
// is held: kill then says stopped, the state stays created, and the events
// come out as started, then stopped, in order.
func TestLoopExitBeforeStartReturns(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	sub := h.subscribe(false)
	c := h.dial()
	started := async(func() error { return c.Start(ctx(t)) })
	h.k.start.called(t, "start")
	h.k.exit(exitedWith(7))
	other := h.dial()
	wantRefused(t, "kill with the exit held", other.Kill(ctx(t), unix.SIGKILL, false), "container c1 is stopped: container not running")
	wantRefused(t, "second start", other.Start(ctx(t)), "container c1 is already starting")
	if st, err := other.State(ctx(t)); err != nil || st.Status != protocol.StatusCreated {
		t.Errorf("state with the exit held: %+v, %v", st, err)
	}
	h.k.start.open(nil)
	if err := waitErr(t, "start", started); err != nil {
		t.Fatal(err)
	}
	s := next(t, sub, protocol.EventStarted)
	e := next(t, sub, protocol.EventStopped)
	if e.Seq != s.Seq+1 || e.Timestamp < s.Timestamp || *e.ExitStatus != 7 {
		t.Errorf("started %+v then stopped %+v", s, e)
	}
	h.k.teardown.open(nil)
	if err := other.Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	next(t, sub, protocol.EventDeleted)
	h.served()
}

// TestLoopExitDuringPoststart: the start reply waits for the poststart
// hooks, and an exit meanwhile is announced at once.
func TestLoopExitDuringPoststart(t *testing.T) {
	spec := testSpec()
	spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}}}
	h := newHarness(t, spec).created()
	sub := h.subscribe(false)
	c := h.dial()
	h.k.start.open(nil)
	started := async(func() error { return c.Start(ctx(t)) })
	h.k.poststart.called(t, "poststart hooks")
	next(t, sub, protocol.EventStarted)
	h.k.exit(exitedWith(0))
	next(t, sub, protocol.EventStopped)
	select {
	case err := <-started:
		t.Fatalf("start answered (%v) before its poststart hooks ended", err)
	default:
	}
	h.k.poststart.open(errors.New("hook failed"))
	if err := waitErr(t, "start", started); err == nil || err.Error() != "hook failed" {
		t.Errorf("start: %v; a failed poststart hook fails start (runtime-spec 1.3)", err)
	}
	if !strings.Contains(h.log.String(), "start: hook failed; killing the container") {
		t.Errorf("log %q lacks the kill", h.log)
	}
	h.k.teardown.open(nil)
	if err := h.dial().Delete(ctx(t), true); err != nil {
		t.Fatal(err)
	}
	h.served()
}

// TestLoopKillAfterExit: a stopped container refuses kill and start; the
// refusal is ErrInvalidState across the socket.
func TestLoopKillAfterExit(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	sub := h.subscribe(false)
	h.k.exit(exitedWith(1))
	next(t, sub, protocol.EventStopped)
	c := h.dial()
	wantRefused(t, "kill", c.Kill(ctx(t), unix.SIGKILL, false), "container c1 is stopped: container not running")
	wantRefused(t, "kill --all", c.Kill(ctx(t), unix.SIGKILL, true), "container c1 is stopped: container not running")
	wantRefused(t, "start", c.Start(ctx(t)), "container c1 is stopped, not created")
	h.k.noSignal(t)
	h.k.teardown.open(nil)
	if err := c.Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	h.served()
}

// TestLoopExitUnknown: an exit whose status cannot be learnt (a supervised
// container on an old kernel) says so in stopped, with no status at all.
func TestLoopExitUnknown(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	sub := h.subscribe(false)
	h.k.mu.Lock()
	h.k.exitUnknown = true
	h.k.mu.Unlock()
	h.k.exit(exitedWith(3))
	ev := next(t, sub, protocol.EventStopped)
	if ev.ExitStatus != nil || !ev.ExitUnknown || ev.Signal != "" {
		t.Errorf("stopped %+v, want exitUnknown and no status", ev)
	}
	h.k.teardown.open(nil)
	if err := h.dial().Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	h.served()
}

// TestLoopDeleteDuringStart: delete without --force is refused while start
// is in flight; with --force it kills the container, and answers once
// start, the exit and the teardown are through.
func TestLoopDeleteDuringStart(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	sub := h.subscribe(false)
	starter, deleter := h.dial(), h.dial()
	started := async(func() error { return starter.Start(ctx(t)) })
	h.k.start.called(t, "start")
	wantRefused(t, "delete", deleter.Delete(ctx(t), false), "container c1 is created: stop it first or use --force")
	deleted := async(func() error { return deleter.Delete(ctx(t), true) })
	for _, w := range killAll {
		if got := h.k.nextSignal(t); got != w {
			t.Errorf("signal %+v, want %+v", got, w)
		}
	}
	wantRefused(t, "second delete", h.dial().Delete(ctx(t), true), "container c1 is already being deleted")
	h.k.exit(killedBy(unix.SIGKILL))
	h.k.teardown.open(nil)
	h.k.start.open(nil)
	if err := waitErr(t, "start", started); err != nil {
		t.Errorf("start: %v", err)
	}
	next(t, sub, protocol.EventStarted)
	next(t, sub, protocol.EventStopped)
	next(t, sub, protocol.EventDeleted)
	if err := waitErr(t, "delete", deleted); err != nil {
		t.Errorf("delete: %v", err)
	}
	h.served()
}

// TestLoopSubscribeDuringDelete: a subscriber that joins while the
// teardown runs gets the history, then deleted, then EOF.
func TestLoopSubscribeDuringDelete(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	h.stop()
	c := h.dial()
	deleted := async(func() error { return c.Delete(ctx(t), false) })
	h.k.teardown.called(t, "teardown")
	sub := h.subscribe(true)
	next(t, sub, protocol.EventCreated)
	next(t, sub, protocol.EventStopped)
	wantRefused(t, "delete while deleting", h.dial().Delete(ctx(t), true), "container c1 is already being deleted")
	h.k.teardown.open(nil)
	next(t, sub, protocol.EventDeleted)
	if _, err := sub.Next(ctx(t)); err != io.EOF {
		t.Errorf("after deleted: %v, want EOF", err)
	}
	if err := waitErr(t, "delete", deleted); err != nil {
		t.Error(err)
	}
	h.served()
}

// TestLoopTeardownFails: a teardown error is logged; the delete still
// ends the shim.
func TestLoopTeardownFails(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	sub := h.subscribe(false)
	h.k.exit(exitedWith(0))
	next(t, sub, protocol.EventStopped)
	h.k.teardown.open(errors.New("cgroup busy"))
	if err := h.dial().Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	h.served()
	if !strings.Contains(h.log.String(), "delete: cgroup busy") {
		t.Errorf("log %q", h.log)
	}
}

// TestLoopSubscriberHangsUp: a subscriber that keeps talking is ignored;
// one that goes away is dropped, and the loop goes on.
func TestLoopSubscriberHangsUp(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	conn, err := net.Dial("unix", h.sock())
	if err != nil {
		t.Fatal(err)
	}
	dec := protocol.NewDecoder(conn)
	conn.Write([]byte(`{"op":"subscribe"}` + "\n"))
	for _, want := range []string{`"ok":true`, `"type":"created"`} {
		if line, err := dec.Line(); err != nil || !strings.Contains(string(line), want) {
			t.Fatalf("subscriber read %q, %v; want %s", line, err, want)
		}
	}
	conn.Write([]byte(`{"op":"hello"}` + "\n"))
	conn.Close()
	h.k.start.open(nil)
	if err := h.dial().Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h.delete(false)
}

// TestLoopBadRequest: a line that is no request gets bad_request, and the
// connection goes on.
func TestLoopBadRequest(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	conn, err := protocol.Dial(ctx(t), h.sock())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Do(ctx(t), protocol.Request{Op: "frobnicate"}); !errors.Is(err, protocol.ErrBadRequest) {
		t.Errorf("unknown op: %v", err)
	}
	if _, err := conn.State(ctx(t)); err != nil {
		t.Errorf("state after a bad request: %v", err)
	}
	h.stop()
	h.delete(false)
}

// TestServeCreateFails: a failed create is reported, answers the clients
// that connected meanwhile with why, and leaves no state directory.
func TestServeCreateFails(t *testing.T) {
	h := newHarness(t, testSpec())
	// The socket listens from before create: a client that connects
	// meanwhile waits in the backlog, its request unread.
	h.k.create.called(t, "create")
	conn, err := net.Dial("unix", h.sock())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(`{"op":"state"}` + "\n"))
	h.k.create.open(errors.New("no cgroup for you"))
	if err := h.served(); err == nil || err.Error() != "no cgroup for you" {
		t.Errorf("serve: %v", err)
	}
	h.waitReport()
	if r := h.report.String(); r != `{"error":"no cgroup for you","shim":`+strconv.Itoa(os.Getpid())+"}\n" {
		t.Errorf("report %q", r)
	}
	if line, err := protocol.NewDecoder(conn).Line(); err != nil || !strings.Contains(string(line), "create failed: no cgroup for you") {
		t.Errorf("client waiting during create read %q, %v", line, err)
	}
	if _, err := os.Stat(statedir.DirPath(h.cfg.Root, "c1")); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}

// TestServeRefusesTakenID: a second shim for an ID fails before create.
func TestServeRefusesTakenID(t *testing.T) {
	h := newHarness(t, testSpec()).created()
	second := newHarness(t, testSpec(), func(c *Config) { c.Root = h.cfg.Root })
	if err := second.served(); err == nil || !strings.Contains(err.Error(), `container "c1" already exists`) {
		t.Errorf("second serve: %v", err)
	}
	second.waitReport()
	if r := second.report.String(); !strings.Contains(r, "already exists") {
		t.Errorf("report %q", r)
	}
	h.stop()
	h.delete(true)
}

// TestServeBadConfig: a config that does not decode fails with its error.
func TestServeBadConfig(t *testing.T) {
	spec := testSpec()
	spec.Root = nil
	h := newHarness(t, spec)
	if err := h.served(); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("serve: %v", err)
	}
}

// TestServeNotesLabels: with --debug the shim says what became of the
// config's LSM labels.
func TestServeNotesLabels(t *testing.T) {
	spec := testSpec()
	spec.Process.ApparmorProfile = "prof"
	spec.Process.SelinuxLabel = "lab"
	spec.Linux.MountLabel = "mnt"
	spec.Linux.Namespaces = spec.Linux.Namespaces[1:] // no pid namespace: a subreaper
	h := newHarness(t, spec, func(c *Config) { c.Debug = true }).created()
	for _, w := range []string{`apparmorProfile "prof"`, `selinuxLabel "lab"`, `mountLabel "mnt"`} {
		if !strings.Contains(h.log.String(), w) {
			t.Errorf("log %q lacks %s", h.log, w)
		}
	}
	h.k.mu.Lock()
	sub := h.k.subreaper
	h.k.mu.Unlock()
	if !sub {
		t.Error("a container without a pid namespace did not make the shim its subreaper")
	}
	h.stop()
	h.delete(true)
}

// TestLoopStartAtOnce: with Config.StartAtOnce the loop starts the
// container as soon as it is created, no client asking, and sends the
// start's reply to the channel: OK, or the start's error.
func TestLoopStartAtOnce(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		wantErr string
	}{
		{name: "started"},
		{name: "failed", err: errors.New("no such file"), wantErr: "start: no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan protocol.Reply, 1)
			h := newHarness(t, testSpec(), func(c *Config) { c.StartAtOnce = started }).created()
			h.k.start.called(t, "start, with no client")
			h.k.start.open(tc.err)
			rep := <-started
			if err := rep.Err(); tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("start's reply: %v, want %q", err, tc.wantErr)
			}
			c := h.dial()
			st, err := c.State(ctx(t))
			want := protocol.StatusRunning
			if tc.err != nil {
				want = protocol.StatusCreated
			}
			if err != nil || st.Status != want {
				t.Errorf("state %+v, %v, want %s", st, err, want)
			}
			sub := h.subscribe(false)
			h.k.exit(exitedWith(0))
			next(t, sub, protocol.EventStopped)
			h.k.teardown.open(nil)
			if err := c.Delete(ctx(t), false); err != nil {
				t.Fatal(err)
			}
			h.served()
		})
	}
}

// TestLoopStartAtOnceExitedFirst: a container the init started at once
// may have run and exited before the loop runs (container.Config's
// StartAtOnce). The loop's start still comes first, and the exit after
// it: started, then stopped with the status, not a start refused.
func TestLoopStartAtOnceExitedFirst(t *testing.T) {
	started := make(chan protocol.Reply, 1)
	h := newHarness(t, testSpec(), func(c *Config) { c.StartAtOnce = started })
	h.k.exit(exitedWith(7))
	h.created()
	h.k.start.called(t, "start, with no client")
	h.k.start.open(nil)
	if rep := <-started; !rep.OK {
		t.Fatalf("start's reply: %+v, want OK", rep)
	}
	sub := h.subscribe(true)
	next(t, sub, protocol.EventCreated)
	next(t, sub, protocol.EventStarted)
	if ev := next(t, sub, protocol.EventStopped); ev.ExitStatus == nil || *ev.ExitStatus != 7 {
		t.Errorf("stopped event %+v, want status 7", ev)
	}
	h.delete(false)
}

// TestLoopDeleteWhenStopped: with Config.DeleteWhenStopped the loop
// deletes the container once it has stopped, after the stopped event,
// no client asking, and sends the delete's reply, with the init's exit
// status, to the channel; when a client's delete came first, the loop
// makes none, and the channel gets the same reply once the client's is
// done.
func TestLoopDeleteWhenStopped(t *testing.T) {
	cases := []struct {
		name   string
		forced bool // a client's delete --force while it runs
		status int
	}{
		{name: "stopped", status: 3},
		{name: "client deleted first", forced: true, status: 137},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			deleted := make(chan protocol.Reply, 1)
			h := newHarness(t, testSpec(), func(c *Config) { c.DeleteWhenStopped = deleted }).created()
			h.k.start.open(nil)
			if err := h.dial().Start(ctx(t)); err != nil {
				t.Fatal(err)
			}
			sub := h.subscribe(false)
			select {
			case rep := <-deleted:
				t.Fatalf("deleted while running: %+v", rep)
			default:
			}
			h.k.teardown.open(nil)
			if tc.forced {
				forced := async(func() error { return h.dial().Delete(ctx(t), true) })
				// Its SIGKILLs (the cgroup's, the init's) say the
				// loop took it while the container ran.
				h.k.nextSignal(t)
				h.k.nextSignal(t)
				h.k.exit(exitedWith(137))
				if err := waitErr(t, "forced delete", forced); err != nil {
					t.Fatal(err)
				}
			} else {
				h.k.exit(exitedWith(3))
			}
			if ev := next(t, sub, protocol.EventStopped); ev.ExitStatus == nil {
				t.Errorf("stopped event without a status: %+v", ev)
			}
			next(t, sub, protocol.EventDeleted)
			rep := <-deleted
			if !rep.OK || rep.ExitStatus == nil || *rep.ExitStatus != tc.status {
				t.Errorf("the loop's delete: %+v, want OK with exit status %d", rep, tc.status)
			}
			if err := h.served(); err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}

// TestLoopReleasesNamespacesAfterStopped: the container's namespaces,
// held so that the init's exit is heard of sooner, are let go once the
// stopped event is out, off the loop, and the delete's teardown waits for
// that (Remains.Released).
func TestLoopReleasesNamespacesAfterStopped(t *testing.T) {
	// The release runs on a goroutine of its own: a wrong order shows
	// only in some runs.
	for range 20 {
		releasesAfterStopped(t)
	}
}

func releasesAfterStopped(t *testing.T) {
	t.Helper()
	k := newFakeOps()
	s, sub := cellServer(t, phaseRunning, k)
	// How many lines the subscriber had been given when the namespace
	// was let go.
	released := make(chan int, 1)
	s.ops.releaseNamespaces = func() { released <- len(sub.ch) }
	k.exit(exitedWith(0))
	s.reap()
	select {
	case queued := <-released:
		if queued != 1 {
			t.Errorf("namespaces let go with %d events given to the subscriber, want once stopped was", queued)
		}
	case <-time.After(testWait):
		t.Fatal("the namespaces were never let go")
	}
	if ev := nextEvent(t, sub); ev.Type != protocol.EventStopped {
		t.Fatalf("event %+v, want stopped", ev)
	}
	if r := s.remains(); r.Released == nil {
		t.Error("the teardown does not wait for the namespaces")
	} else {
		<-r.Released
	}
}
