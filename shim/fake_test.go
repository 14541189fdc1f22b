package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
	"github.com/crier-runtime/crier/teardown"
)

// The loop's unit tests replace its ops (ops.go) with fakeOps: no root, no
// namespaces, no real init. The container is a container.Container value
// whose pid is the test's own; its exit is whatever the test says, when it
// says so.

// testWait bounds every wait for something the loop does; a test that
// reaches it has failed.
const testWait = 10 * time.Second

// gate is a blocking op that the test controls: calls receives when the op
// begins, and the op returns the next error sent to results (open sends it
// ahead of time).
type gate struct {
	calls   chan struct{}
	results chan error
}

func newGate() gate { return gate{calls: make(chan struct{}, 16), results: make(chan error, 16)} }

func (g gate) run() error {
	g.calls <- struct{}{}
	return <-g.results
}

func (g gate) open(err error) { g.results <- err }

// called waits until the op has begun.
func (g gate) called(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.calls:
	case <-time.After(testWait):
		t.Fatalf("%s was never called", what)
	}
}

// notCalled checks that the op has not begun.
func (g gate) notCalled(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.calls:
		t.Errorf("%s was called", what)
	default:
	}
}

type sent struct {
	sig unix.Signal
	all bool
}

type fakeOps struct {
	mu      sync.Mutex
	pending *unix.WaitStatus // what wait returns next, once
	// exitUnknown makes wait report the exit without its status, as a
	// supervised container's on a kernel before 6.15.
	exitUnknown bool
	released    int
	orphans     int // reapOrphans calls
	subreaper   bool
	// busyCPU is what cpuBusy says.
	busyCPU atomic.Bool

	exits     chan struct{}
	signals   chan sent
	signalErr error
	freezes   chan bool // true for a freeze, false for a thaw
	freezeErr error
	create    gate
	createErr error
	start     gate
	poststart gate
	teardown  gate

	// The OOM watch: oomWatch makes watch succeed; check returns
	// oomPending (and clears it); oomDying says which pids dying
	// reports; oomNotify is the loop's notify once watched.
	oomWatch   bool
	oomPending cgroup.OOM
	oomDying   map[int]bool
	oomNotify  func()
	oomStops   int
}

func newFakeOps() *fakeOps {
	return &fakeOps{
		exits:     make(chan struct{}, 1),
		signals:   make(chan sent, 64),
		freezes:   make(chan bool, 64),
		create:    newGate(),
		start:     newGate(),
		poststart: newGate(),
		teardown:  newGate(),
	}
}

// ops returns the fake ops for s: it is what newServer and resume take.
func (k *fakeOps) ops(s *server) ops {
	return ops{
		create: func(cfg *container.Config) (*container.Container, error) {
			cfg.Load.Release()
			spec, err := cfg.Load.Wait()
			if err == nil {
				err = k.create.run()
			}
			if err != nil {
				return nil, err
			}
			return fakeContainer(cfg.ID, cfg.Bundle, spec), nil
		},
		forkAhead:       func(*container.Config) (*container.Forked, error) { return nil, nil },
		cpuBusy:         func() bool { return k.busyCPU.Load() },
		detachStdio:     func() {},
		becomeSubreaper: func() { k.mu.Lock(); k.subreaper = true; k.mu.Unlock() },
		start:           k.start.run,
		signal: func(sig unix.Signal, all bool) error {
			k.signals <- sent{sig, all}
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.signalErr
		},
		wait: func() (unix.WaitStatus, bool, bool) {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.pending == nil {
				return 0, false, false
			}
			ws := *k.pending
			k.pending = nil
			return ws, !k.exitUnknown, true
		},
		freeze: func(frozen bool) error {
			k.freezes <- frozen
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.freezeErr
		},
		reapOrphans:       func() bool { k.mu.Lock(); k.orphans++; k.mu.Unlock(); return false },
		exits:             func() <-chan struct{} { return k.exits },
		release:           func() { k.mu.Lock(); k.released++; k.mu.Unlock() },
		releaseNamespaces: func() {},
		poststart:         func(*specs.State) error { return k.poststart.run() },
		exec: execOps{
			namespaces: func() (*container.ExecNamespaces, error) { return nil, nil },
			run:        func([]*os.File, *container.ExecNamespaces, map[string]string) (int, error) { return 4242, nil },
			watch:      func(int, func()) {},
			wait:       func(int) (unix.WaitStatus, bool) { return 0, false },
			pid:        func(int) (int, error) { return 4343, nil },
			watchReap:  func(int, func()) {},
			exitOf:     func(int) (unix.WaitStatus, bool, bool) { return 0, false, false },
		},
		oom: oomOps{
			watch: func(notify func()) error {
				k.mu.Lock()
				defer k.mu.Unlock()
				if !k.oomWatch {
					return cgroup.ErrNoMemoryCgroup
				}
				k.oomNotify = notify
				return nil
			},
			check: func() (cgroup.OOM, error) {
				k.mu.Lock()
				defer k.mu.Unlock()
				o := k.oomPending
				k.oomPending = cgroup.OOM{}
				return o, nil
			},
			stop:  func() { k.mu.Lock(); k.oomStops++; k.mu.Unlock() },
			dying: func(pid int) bool { k.mu.Lock(); defer k.mu.Unlock(); return k.oomDying[pid] },
		},
		teardown: func() error {
			if err := k.teardown.run(); err != nil {
				return err
			}
			return teardown.Run(s.remains())
		},
	}
}

func (k *fakeOps) setSignalErr(err error) {
	k.mu.Lock()
	k.signalErr = err
	k.mu.Unlock()
}

// exit makes the init exit with ws, as the kernel would tell the loop.
func (k *fakeOps) exit(ws unix.WaitStatus) {
	k.mu.Lock()
	k.pending = &ws
	k.mu.Unlock()
	select {
	case k.exits <- struct{}{}:
	default:
	}
}

// oomKill makes the watch report o at its next check, as the kernel
// would count it; with notify, the watch also tells the loop, as the
// descriptor would poll readable.
func (k *fakeOps) oomKill(o cgroup.OOM, notify bool) {
	k.mu.Lock()
	k.oomPending.Count += o.Count
	k.oomPending.Kills += o.Kills
	k.oomPending.Limit, k.oomPending.Cgroup = o.Limit, o.Cgroup
	n := k.oomNotify
	k.mu.Unlock()
	if notify {
		n()
	}
}

// nextSignal returns the next signal sent.
func (k *fakeOps) nextSignal(t *testing.T) sent {
	t.Helper()
	select {
	case s := <-k.signals:
		return s
	case <-time.After(testWait):
		t.Fatal("no signal sent")
		return sent{}
	}
}

// freezesSent returns the freezes (true) and thaws (false) asked for so far.
func (k *fakeOps) freezesSent() []bool {
	var got []bool
	for {
		select {
		case f := <-k.freezes:
			got = append(got, f)
		default:
			return got
		}
	}
}

func (k *fakeOps) noSignal(t *testing.T) {
	t.Helper()
	select {
	case s := <-k.signals:
		t.Errorf("signal %v (all %v) sent", s.sig, s.all)
	default:
	}
}

// Wait statuses as wait4 reports them.
func exitedWith(code int) unix.WaitStatus      { return unix.WaitStatus(code << 8) }
func killedBy(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }

func fakeContainer(id, bundle string, spec *specs.Spec) *container.Container {
	return &container.Container{
		ID: id, Bundle: bundle, Rootfs: container.RootfsPath(bundle, spec),
		Spec: spec, Pid: os.Getpid(), PidFD: -1,
	}
}

// testSpec is a config the shim accepts. It has a pid namespace, so that
// the shim does not make the test process a subreaper.
func testSpec() *specs.Spec {
	return &specs.Spec{
		Version:     specs.Version,
		Root:        &specs.Root{Path: "rootfs"},
		Process:     &specs.Process{Args: []string{"sh"}, Cwd: "/"},
		Annotations: map[string]string{"a": "b"},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
		},
	}
}

func writeBundle(t *testing.T, spec *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncBuffer is a bytes.Buffer for a writer on another goroutine: the
// shim's log and its report.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{closed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Close() error { close(b.closed); return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// harness runs Serve's code (serve) with fake ops, and talks to it over
// its real socket.
type harness struct {
	t      *testing.T
	k      *fakeOps
	cfg    *Config
	log    *syncBuffer
	report *syncBuffer
	done   chan error
}

// newHarness starts serving a container with spec, and returns once it
// is created (or create failed).
func newHarness(t *testing.T, spec *specs.Spec, edit ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, k: newFakeOps(), log: newSyncBuffer(), report: newSyncBuffer(), done: make(chan error, 1)}
	h.cfg = &Config{
		Root: filepath.Join(t.TempDir(), "root"), ID: "c1", Bundle: writeBundle(t, spec),
		InitPath: "/nonexistent", Report: h.report,
	}
	h.cfg.Log = log.New(h.log, "", 0)
	for _, e := range edit {
		e(h.cfg)
	}
	go func() { h.done <- serve(h.cfg, h.k.ops) }()
	return h
}

// created lets create succeed and waits for its report.
func (h *harness) created() *harness {
	h.t.Helper()
	h.k.create.open(nil)
	h.waitReport()
	if r := h.report.String(); !strings.HasPrefix(r, `{"pid":`) {
		h.t.Fatalf("report %q, want a pid", r)
	}
	return h
}

func (h *harness) waitReport() {
	h.t.Helper()
	select {
	case <-h.report.closed:
	case <-time.After(testWait):
		h.t.Fatal("no report")
	}
}

func (h *harness) sock() string { return statedir.SocketPath(h.cfg.Root, h.cfg.ID) }

func (h *harness) dial() *protocol.Client {
	h.t.Helper()
	c, err := protocol.Dial(ctx(h.t), h.sock())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// subscribe returns a client that is subscribed.
func (h *harness) subscribe(history bool) *protocol.Client {
	h.t.Helper()
	c := h.dial()
	if err := c.Subscribe(ctx(h.t), protocol.SubscribeOptions{NoHistory: !history}); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// async runs fn, a request that only returns later, and returns its error
// on a channel.
func async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

func waitErr(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testWait):
		t.Fatalf("%s never returned", what)
		return nil
	}
}

// stop makes the init exit and waits for the stopped event.
func (h *harness) stop() {
	h.t.Helper()
	sub := h.subscribe(false)
	if st, err := h.dial().State(ctx(h.t)); err != nil || st.Status == protocol.StatusStopped {
		h.t.Fatalf("state before stop: %+v, %v", st, err)
	}
	h.k.exit(exitedWith(0))
	next(h.t, sub, protocol.EventStopped)
	sub.Close()
}

// delete deletes the container and waits for serve to return.
func (h *harness) delete(force bool) {
	h.t.Helper()
	h.k.teardown.open(nil)
	if err := h.dial().Delete(ctx(h.t), force); err != nil {
		h.t.Fatal(err)
	}
	if err := h.served(); err != nil {
		h.t.Errorf("serve: %v", err)
	}
}

// served waits for serve to return.
func (h *harness) served() error {
	h.t.Helper()
	return waitErr(h.t, "serve", h.done)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return c
}

// next reads the next event and checks its type.
func next(t *testing.T, c *protocol.Client, typ string) protocol.Event {
	t.Helper()
	ev, err := c.Next(ctx(t))
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	if ev.Type != typ {
		t.Fatalf("event %+v, want %s", ev, typ)
	}
	return ev
}

// wantRefused checks that err is the shim's refusal with exactly msg.
func wantRefused(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if !errors.Is(err, protocol.ErrInvalidState) || err.Error() != msg {
		t.Errorf("%s: %v, want invalid state: %s", what, err, msg)
	}
}
