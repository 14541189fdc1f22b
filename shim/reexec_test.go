package shim

import (
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/statedirtest"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// createdServer makes a server as Serve's create image has it just before
// it re-executes itself: created, not yet looping.
func createdServer(t *testing.T, k *fakeOps) *server {
	t.Helper()
	h := &harness{t: t, k: k, report: newSyncBuffer()}
	h.cfg = &Config{
		Root: t.TempDir() + "/root", ID: "c1", Bundle: writeBundle(t, testSpec()),
		Report: h.report, Log: log.New(io.Discard, "", 0), Buffer: map[string]bool{"created": true, "stopped": true},
	}
	s, ccfg, err := newServer(h.cfg, k.ops)
	if err != nil {
		t.Fatal(err)
	}
	k.create.open(nil)
	if err := s.create(ccfg); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHandoffServes: the create image's state survives the handoff to the
// serving image (the memfd, the listening socket, the record), and the
// serving image goes on where the create image stopped: same state file,
// same history, events numbered on.
func TestHandoffServes(t *testing.T) {
	k := newFakeOps()
	before := createdServer(t, k)
	fd, undo, err := before.writeHandoff()
	if err != nil {
		t.Fatal(err)
	}
	// The exec: the create image's listener goes, its socket stays.
	before.ln.SetUnlinkOnClose(false)
	before.ln.Close()

	h, err := readHandoff(fd)
	if err != nil {
		t.Fatal(err)
	}
	// This test is both images: the serving one gets a descriptor of
	// its own, and the create image's goes as its exec would take it.
	if h.ListenFD, err = unix.Dup(h.ListenFD); err != nil {
		t.Fatal(err)
	}
	undo()
	after, err := resume(h, k.ops)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.rec, utcRecord(before.rec)) {
		t.Errorf("record\n got %+v\nwant %+v", after.rec, before.rec)
	}
	if got, want := after.state().AppendJSON(nil), before.state().AppendJSON(nil); string(got) != string(want) {
		t.Errorf("state file\n got %s\nwant %s", got, want)
	}
	if after.phase != phaseCreated || after.c.Pid != before.c.Pid {
		t.Errorf("phase %v pid %d", after.phase, after.c.Pid)
	}
	done := async(after.loop)
	c, err := protocol.Dial(ctx(t), statedir.SocketPath(before.rec.Root, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx(t), protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, protocol.EventCreated); ev.Seq != 1 {
		t.Errorf("created %+v", ev)
	}
	k.start.open(nil)
	d := newClient(t, before.rec.Root)
	if err := d.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, protocol.EventStarted); ev.Seq != 2 {
		t.Errorf("started %+v", ev)
	}
	k.exit(exitedWith(0))
	next(t, c, protocol.EventStopped)
	k.teardown.open(nil)
	if err := d.Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, "loop", done); err != nil {
		t.Error(err)
	}
	// The buffer came across: only created and stopped are kept for
	// new subscribers.
	if hist := after.rec.History; len(hist) != 2 || hist[0].Type != "created" || hist[1].Type != "stopped" {
		t.Errorf("history %+v, want created, stopped", hist)
	}
}

func newClient(t *testing.T, root string) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial(ctx(t), statedir.SocketPath(root, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// utcRecord is rec as it comes out of the handoff: times in UTC.
func utcRecord(rec record) record {
	rec.CreatedAt, rec.LastAt = rec.CreatedAt.UTC(), rec.LastAt.UTC()
	return rec
}

func TestReadHandoffRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"garbage":      []byte("not a handoff"),
		"no container": (&handoff{}).marshal(),
	} {
		fd, err := unix.MemfdCreate("test", 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Pwrite(fd, b, 0)
		if _, err := readHandoff(fd); err == nil || !strings.HasPrefix(err.Error(), "handoff: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	notSocket, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resume(&handoff{ListenFD: notSocket}, newFakeOps().ops); err == nil || !strings.Contains(err.Error(), "listener") {
		t.Errorf("resume without a listener: %v", err)
	}
}

// TestResumeRealChild serves a real child process (not a container) with
// the real ops: signals go through its pidfd (or kill), its exit is heard
// through the pidfd (or SIGCHLD) and collected with wait4, and the
// teardown removes the state directory.
func TestResumeRealChild(t *testing.T) {
	for _, withPidFD := range []bool{true, false} {
		name := "pidfd"
		if !withPidFD {
			name = "SIGCHLD"
		}
		t.Run(name, func(t *testing.T) { resumeRealChild(t, withPidFD) })
	}
}

func resumeRealChild(t *testing.T, withPidFD bool) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to run: %v", err)
	}
	pid := cmd.Process.Pid
	// Through the pidfd os/exec holds: the shim reaps the child, and
	// its pid may be someone else's by then.
	t.Cleanup(func() { cmd.Process.Kill() })
	pidfd := -1
	if withPidFD {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Skipf("pidfd_open: %v", err)
		}
		pidfd = fd
	}
	root, lnFD := stateDirWithSocket(t)
	spec := servingSpec(testSpec())
	h := &handoff{
		Rec:      record{Root: root, ID: "c1", Bundle: "/b", CreatedAt: time.Now()},
		ListenFD: lnFD,
		Container: &container.Handoff{
			ID: "c1", Bundle: "/b", Spec: spec, Pid: pid, PidFD: pidfd, SyncFD: -1,
		},
		Phase: phaseCreated,
	}
	s, err := resume(h, containerOps)
	if err != nil {
		t.Fatal(err)
	}
	done := async(s.loop)
	sub := newClient(t, root)
	if err := sub.Subscribe(ctx(t), protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, root)
	if err := c.Start(ctx(t)); err == nil || !strings.Contains(err.Error(), "start: container init is gone") {
		t.Errorf("start without an init to start: %v", err)
	}
	if err := c.Kill(ctx(t), unix.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub, protocol.EventStopped)
	if ev.Pid != pid || ev.Signal != "SIGKILL" || *ev.ExitStatus != 137 {
		t.Errorf("stopped %+v", ev)
	}
	if err := c.Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, "loop", done); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(statedir.DirPath(root, "c1")); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}

// stateDirWithSocket makes ROOT/c1 with its socket listening, and returns
// the root and a descriptor of the listener, as the create image hands
// them over.
func stateDirWithSocket(t *testing.T) (string, int) {
	t.Helper()
	root := statedirtest.New(t, "c1")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: statedir.SocketPath(root, "c1"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	// A descriptor of our own: f's finalizer would close its own at
	// the next collection, under the server that listens on it.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return root, fd
}

// TestSlowSubscriberCatchesUp: a subscriber whose queue fills during its
// history replay is not dropped: once it has read what it was given, the
// rest follows, in order, none lost, and it goes on live; the others are
// not held up.
func TestSlowSubscriberCatchesUp(t *testing.T) {
	root, lnFD := stateDirWithSocket(t)
	rec := record{Root: root, ID: "c1", Bundle: "/b"}
	for i := range 3 * queueLen {
		rec.History = append(rec.History, protocol.Event{Type: "created", ID: "c1", Seq: uint64(i + 1)})
	}
	rec.Seq = uint64(len(rec.History))
	k := newFakeOps()
	s, err := resume(&handoff{Rec: rec, ListenFD: lnFD, Phase: phaseCreated, Container: &container.Handoff{ID: "c1", Spec: servingSpec(testSpec()), PidFD: -1, SyncFD: -1}}, k.ops)
	if err != nil {
		t.Fatal(err)
	}
	done := async(s.loop)
	c := newClient(t, root)
	if err := c.Subscribe(ctx(t), protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= rec.Seq; want++ {
		ev, err := c.Next(ctx(t))
		if err != nil || ev.Seq != want {
			t.Fatalf("event %d: %+v, %v", want, ev, err)
		}
	}
	// A subscriber without history is served.
	live := newClient(t, root)
	if err := live.Subscribe(ctx(t), protocol.SubscribeOptions{NoHistory: true}); err != nil {
		t.Fatal(err)
	}
	k.exit(exitedWith(0))
	next(t, live, protocol.EventStopped)
	if ev := next(t, c, protocol.EventStopped); ev.Seq != rec.Seq+1 {
		t.Errorf("the slow subscriber's stopped has seq %d, want %d", ev.Seq, rec.Seq+1)
	}
	k.teardown.open(nil)
	if err := newClient(t, root).Delete(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	waitErr(t, "loop", done)
}

// TestEmitLagsFullSubscriber: a live subscriber whose queue is full is
// kept, lagging (it is replayed to once its writer catches up), and the
// event still reaches the others.
func TestEmitLagsFullSubscriber(t *testing.T) {
	k := newFakeOps()
	s, ok := cellServer(t, phaseRunning, k)
	full := newSubscriber(nil)
	for len(full.ch) < cap(full.ch) {
		full.ch <- nil
	}
	s.subs[full] = true
	s.emit(protocol.Event{Type: "created"}, time.Now())
	if !s.subs[full] || !full.lagging.Load() {
		t.Errorf("full subscriber kept %v, lagging %v; want kept and lagging", s.subs[full], full.lagging.Load())
	}
	if got := drainEvents(t, ok); len(got) != 1 {
		t.Errorf("the other subscriber got %q", got)
	}
}

// TestHealPath: the serving image is told to heal the binary the Config
// names, the create image's own when it names HealSelf, and none without.
func TestHealPath(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		want string
	}{
		{name: "no config", want: ""},
		{name: "none", cfg: &Config{}, want: ""},
		{name: "a path", cfg: &Config{HealPath: "/usr/local/bin/crier"}, want: "/usr/local/bin/crier"},
		{name: "self", cfg: &Config{HealPath: HealSelf}, want: self},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&server{cfg: tc.cfg}).healPath(); got != tc.want {
				t.Errorf("healPath = %q, want %q", got, tc.want)
			}
		})
	}
}
