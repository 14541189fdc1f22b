package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// eventTap stands between one `crier event` and a container's shim, so a
// test knows when that subscriber is attached: `event` prints nothing until
// an event matches, and with --no-history perhaps nothing at all. The tap
// serves a socket where a state root of its own puts the container's, and
// relays bytes both ways to the real one; subscribed is closed once the
// shim has answered the client's first request (subscribe), which the shim
// does only after registering the subscriber.
type eventTap struct {
	root       string // pass as --root to the tapped `crier event`
	subscribed chan struct{}
	done       chan struct{} // closed when the relay ends
}

func (e *env) tap(id string) *eventTap {
	e.t.Helper()
	root, err := os.MkdirTemp(e.dir, "tap-")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, id), 0o700); err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, id, protocol.SocketName), Net: "unix"})
	if err != nil {
		e.t.Fatal(err)
	}
	tp := &eventTap{root: root, subscribed: make(chan struct{}), done: make(chan struct{})}
	// Connect to the shim now, while the container surely exists.
	upstream, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: shim.SocketPath(e.root, id), Net: "unix"})
	if err != nil {
		ln.Close()
		e.t.Fatalf("tap: %v", err)
	}
	e.t.Cleanup(func() {
		ln.Close()
		upstream.Close()
		os.RemoveAll(root)
	})
	go func() {
		defer close(tp.done)
		client, err := ln.AcceptUnix()
		ln.Close()
		if err != nil {
			return
		}
		defer client.Close()
		go func() {
			io.Copy(upstream, client)
			upstream.CloseWrite()
		}()
		r := bufio.NewReader(upstream)
		line, err := r.ReadBytes('\n')
		client.Write(line)
		if err != nil {
			return
		}
		close(tp.subscribed)
		io.Copy(client, r)
	}()
	return tp
}

// cli starts the CLI on the tap's root. It speaks the shim protocol
// itself (CRIER_RELAY=0): relayed, its command line would name the tap's
// root, which the shim at the other end declines (internal/relay).
func (tp *eventTap) cli(e *env, args ...string) *cliProc {
	e.t.Helper()
	return e.cliStart(func(c *exec.Cmd) { c.Env = append(os.Environ(), "CRIER_RELAY=0") }, append([]string{"--root", tp.root}, args...)...)
}

// waitSubscribed returns once the tapped client is subscribed.
func (tp *eventTap) waitSubscribed(t *testing.T) {
	t.Helper()
	select {
	case <-tp.subscribed:
	case <-tp.done:
		t.Fatal("tap: the connection ended before subscribe was answered")
	case <-time.After(hangDeadline):
		t.Fatal("tap: no subscriber came")
	}
}

// events parses `crier event` output, one JSON event per line.
func events(t *testing.T, out string) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line != "" {
			evs = append(evs, decodeEvent(t, line))
		}
	}
	return evs
}

// TestEventWaitsForContainer: `crier event` may run before the container,
// and before its state root (or the root's parents) exist.
func TestEventWaitsForContainer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		root func(e *env) string
	}{
		{name: "no root", root: func(e *env) string { return e.root }},
		{name: "no root nor its parents", root: func(e *env) string { return filepath.Join(e.dir, "a", "b", "root") }},
		{name: "empty root", root: func(e *env) string {
			os.Mkdir(e.root, 0o700)
			return e.root
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.root = tc.root(e)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", "exit 17"}, nil)
			created := e.cliStart(nil, "event", "--event", "created", id)
			started := e.cliStart(nil, "event", "--event", "started", id)
			stopped := e.cliStart(nil, "event", "--event", "stopped", id)
			e.create(id, b)
			r := created.waitOK()
			ev := decodeEvent(t, r.stdout)
			if ev.Type != protocol.EventCreated || ev.ID != id || ev.Seq != 1 || ev.Pid != e.state(id).Pid {
				t.Errorf("created event %+v, state pid %d", ev, e.state(id).Pid)
			}
			e.cliOK("start", id)
			if r := started.wait(); r.code != 0 || decodeEvent(t, r.stdout).Seq != 2 {
				t.Errorf("event --event started: exit %d: %q %q", r.code, r.stdout, r.stderr)
			}
			r = stopped.waitOK()
			wantExit(t, decodeEvent(t, r.stdout), 17, "")
			e.cliOK("delete", id)
			e.wantNoStateDir(id)
		})
	}
}

// TestEventCreatedThenStart is the README's workflow: create in the
// background, then `event --event created && start`.
func TestEventCreatedThenStart(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--event", "-e"} {
		t.Run(flag, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			create := e.cliStart(nil, "create", "--bundle", e.bundle([]string{"sh", "-c", "exit 17"}, nil), id)
			r := e.cliOK("event", flag, "created", id)
			if ev := decodeEvent(t, r.stdout); ev.Type != protocol.EventCreated || ev.Seq != 1 || strings.Count(r.stdout, "\n") != 1 {
				t.Errorf("event %s created printed %q", flag, r.stdout)
			}
			e.cliOK("start", id)
			create.waitOK()
			wantExit(t, decodeEvent(t, e.cliOK("event", flag, "stopped", id).stdout), 17, "")
			e.cliOK("delete", id)
		})
	}
}

// TestEventMonitor: -m prints every matching event in order and exits 0
// after deleted.
func TestEventMonitor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{name: "-m", args: []string{"-m"}, want: []string{"created", "started", "stopped", "deleted"}},
		{name: "--monitor", args: []string{"--monitor"}, want: []string{"created", "started", "stopped", "deleted"}},
		{name: "-m --event stopped", args: []string{"-m", "--event", "stopped"}, want: []string{"stopped"}},
		{name: "-m -e started -e deleted", args: []string{"-m", "-e", "started", "-e", "deleted"}, want: []string{"started", "deleted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", "exit 5"}, nil)
			monitor, mon := e.cliStartPiped(append(append([]string{"event"}, tc.args...), id)...)
			e.create(id, b)
			e.cliOK("start", id)
			wantExit(t, e.waitStopped(id), 5, "")
			// Its first line, an event from before delete, says that
			// the monitor is attached: delete may go on.
			out := mon.line(t) + "\n"
			e.cliOK("delete", id)
			out += mon.rest(t)
			monitor.waitOK()
			evs := events(t, out)
			if got := typesOf(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("event %v printed %q, want %q", tc.args, got, tc.want)
			}
			seq := map[string]uint64{"created": 1, "started": 2, "stopped": 3, "deleted": 4}
			for _, ev := range evs {
				if ev.Seq != seq[ev.Type] || ev.ID != id {
					t.Errorf("event %+v: want seq %d and id %s", ev, seq[ev.Type], id)
				}
				if ev.Type == protocol.EventStopped {
					wantExit(t, ev, 5, "")
				}
			}
		})
	}
}

// TestEventHistory: by default and with -H a subscriber first gets the
// buffered events; with --no-history only live ones.
func TestEventHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sh", "-c", "exit 0"}, nil))

	for _, args := range [][]string{
		{"--event", "created"},
		{"-H", "--event", "created"},
		{"--historic", "--event", "created"},
		{}, // the first event at all
	} {
		r := e.cliRun(append(append([]string{"event"}, args...), id)...)
		if evs := events(t, r.stdout); r.code != 0 || len(evs) != 1 || evs[0].Type != protocol.EventCreated || evs[0].Seq != 1 {
			t.Errorf("event %v: exit %d, printed %q (%s)", args, r.code, r.stdout, r.stderr)
		}
	}
	r := e.cliRun("event", "--no-history", "--event", "created", "--timeout", "200ms", id)
	wantCLIError(t, "event --no-history --event created", r, "timed out", "timeout")

	// Live subscribers, known to be attached before start.
	goLive := e.subscribe(id, false)
	tapLive, tapHist := e.tap(id), e.tap(id)
	cliLive := tapLive.cli(e, "event", "--no-history", "-m", id)
	cliHist := tapHist.cli(e, "event", "-H", "-m", id)
	tapLive.waitSubscribed(t)
	tapHist.waitSubscribed(t)

	e.cliOK("start", id)
	e.cliOK("event", "--event", "stopped", id)
	e.cliOK("delete", id)

	res := collect(goLive, nil)
	wantEOF(t, "Go client without history", res.end)
	if evs, got := res.events, seqsOf(res.events); !slices.Equal(typesOf(evs), []string{"started", "stopped", "deleted"}) || !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Errorf("Go client without history got %q %v, want started, stopped, deleted (2, 3, 4)", typesOf(evs), got)
	}
	r = cliLive.wait()
	if evs := events(t, r.stdout); r.code != 0 || !slices.Equal(typesOf(evs), []string{"started", "stopped", "deleted"}) {
		t.Errorf("event --no-history -m: exit %d, printed %q (%s)", r.code, r.stdout, r.stderr)
	}
	r = cliHist.wait()
	if evs := events(t, r.stdout); r.code != 0 || !slices.Equal(typesOf(evs), protocol.LifecycleEventTypes()) {
		t.Errorf("event -H -m: exit %d, printed %q (%s)", r.code, r.stdout, r.stderr)
	}
}

// TestEventTimeout: --timeout gives up with a message that says so.
func TestEventTimeout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string // before the ID
		setup   func(e *env, id string)
		printed int // lines printed before giving up
	}{
		{name: "no such container", args: []string{"--timeout", "200ms"}},
		{name: "never started", args: []string{"--event", "started", "--timeout", "200ms"}, setup: func(e *env, id string) {
			e.create(id, e.bundle([]string{"sleep", "100"}, nil))
		}},
		{name: "never stopped", args: []string{"--event", "stopped", "--timeout", "200ms"}, setup: func(e *env, id string) {
			e.create(id, e.bundle([]string{"sleep", "100"}, nil))
			e.cliOK("start", id)
		}},
		{name: "monitor, never deleted", args: []string{"-m", "--timeout", "200ms"}, printed: 1, setup: func(e *env, id string) {
			e.create(id, e.bundle([]string{"sleep", "100"}, nil))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			if tc.setup != nil {
				tc.setup(e, id)
			}
			r := e.cliRun(append(append([]string{"event"}, tc.args...), id)...)
			wantErrorLine(t, "event "+strings.Join(tc.args, " "), r, "timed out", "timeout")
			if n := len(events(t, r.stdout)); n != tc.printed {
				t.Errorf("printed %q, want %d events", r.stdout, tc.printed)
			}
			if r.elapsed < 200*time.Millisecond || r.elapsed > 5*time.Second {
				t.Errorf("gave up after %v, want about 200ms", r.elapsed)
			}
			if tc.setup != nil {
				e.cliOK("delete", "--force", id)
			}
		})
	}
}

// TestEventDeletedFirst: `event --event started` on a container deleted
// before it started fails and says so.
func TestEventDeletedFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	tp := e.tap(id)
	waiter := tp.cli(e, "event", "--event", "started", id)
	tp.waitSubscribed(t)
	e.cliOK("delete", "--force", id)
	wantCLIError(t, "event --event started on a container deleted first", waiter.wait(), "deleted")
}

// TestEventBuffer: --event-buffer chooses what a late subscriber gets from
// history; seq numbers show the gaps.
func TestEventBuffer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		buffer string
		kept   []string
	}{
		{buffer: "created,stopped", kept: []string{"created", "stopped"}},
		{buffer: "stopped", kept: []string{"stopped"}},
		{buffer: "none", kept: nil},
		{buffer: "all", kept: []string{"created", "started", "stopped"}},
	}
	seq := map[string]uint64{"created": 1, "started": 2, "stopped": 3, "deleted": 4}
	for _, tc := range cases {
		t.Run(tc.buffer, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"sh", "-c", "exit 9"}, nil), "--event-buffer", tc.buffer)
			live := e.subscribe(id, false)
			e.cliOK("start", id)
			wantExit(t, next(t, live, protocol.EventStopped), 9, "")

			for _, typ := range []string{"created", "started", "stopped"} {
				if slices.Contains(tc.kept, typ) {
					r := e.cliOK("event", "--event", typ, id)
					if ev := decodeEvent(t, r.stdout); ev.Type != typ || ev.Seq != seq[typ] {
						t.Errorf("event --event %s printed %q, want seq %d", typ, r.stdout, seq[typ])
					}
				} else {
					r := e.cliRun("event", "--event", typ, "--timeout", "200ms", id)
					wantCLIError(t, "event --event "+typ+" (not buffered)", r, "timed out", "timeout")
				}
			}

			late := e.subscribe(id, true)
			e.cliOK("delete", id)
			res := collect(late, nil)
			wantEOF(t, "late subscriber", res.end)
			evs := res.events
			want := append(slices.Clone(tc.kept), "deleted")
			if !slices.Equal(typesOf(evs), want) {
				t.Fatalf("late subscriber got %q, want %q", typesOf(evs), want)
			}
			for _, ev := range evs {
				if ev.Seq != seq[ev.Type] {
					t.Errorf("late subscriber: %s has seq %d, want %d", ev.Type, ev.Seq, seq[ev.Type])
				}
			}
		})
	}
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

// TestEventTimestamps: RFC 3339 in UTC with nanoseconds, the time of each
// transition, in order, the same for every subscriber.
func TestEventTimestamps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "exit 0"}, nil)
	monitor, mon := e.cliStartPiped("event", "-m", id)
	before := time.Now().Round(0)
	e.create(id, b)
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	// created and started come from history, stopped and deleted live.
	var goEvs []protocol.Event
	for _, typ := range []string{protocol.EventCreated, protocol.EventStarted, protocol.EventStopped} {
		goEvs = append(goEvs, next(t, sub, typ))
	}
	out := mon.line(t) + "\n" // the monitor is attached
	e.cliOK("delete", id)
	after := time.Now().Round(0)
	out += mon.rest(t)
	monitor.waitOK()
	evs := events(t, out)
	if !slices.Equal(typesOf(evs), protocol.LifecycleEventTypes()) {
		t.Fatalf("event -m printed %q", out)
	}
	rest := collect(sub, nil)
	wantEOF(t, "Go client", rest.end)
	goEvs = append(goEvs, rest.events...)
	if !slices.Equal(typesOf(goEvs), protocol.LifecycleEventTypes()) {
		t.Fatalf("Go client got %q", typesOf(goEvs))
	}
	var prev time.Time
	for i, ev := range evs {
		if !timestampRE.MatchString(ev.Timestamp) {
			t.Errorf("%s timestamp %q is not RFC 3339 UTC with nanoseconds", ev.Type, ev.Timestamp)
		}
		ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		if err != nil {
			t.Errorf("%s timestamp %q: %v", ev.Type, ev.Timestamp, err)
			continue
		}
		if ts.Before(before) || ts.After(after) {
			t.Errorf("%s at %v, outside the test's %v to %v", ev.Type, ts, before, after)
		}
		if ts.Before(prev) {
			t.Errorf("%s at %v, before the previous event at %v", ev.Type, ts, prev)
		}
		prev = ts
		// The same event has the same timestamp for every subscriber,
		// from history or live.
		if goEvs[i].Timestamp != ev.Timestamp {
			t.Errorf("%s: the CLI saw timestamp %s, the Go client %s", ev.Type, ev.Timestamp, goEvs[i].Timestamp)
		}
	}
}

// TestEventSubscribersDuringDelete: subscribers attached when a container
// is deleted get deleted, then EOF.
func TestEventSubscribersDuringDelete(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status string
		args   []string
		delete []string
		tail   []string // the last events every subscriber gets
	}{
		{status: "created", args: []string{"sleep", "100"}, delete: []string{"delete", "--force"}, tail: []string{"deleted"}},
		{status: "running", args: []string{"sleep", "100"}, delete: []string{"delete", "--force"}, tail: []string{"stopped", "deleted"}},
		{status: "stopped", args: []string{"sh", "-c", "exit 0"}, delete: []string{"delete"}, tail: []string{"stopped", "deleted"}},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle(tc.args, nil))
			if tc.status != "created" {
				e.cliOK("start", id)
			}
			if tc.status == "stopped" {
				e.waitStopped(id)
			}
			var subs []*protocol.Client
			for range 3 {
				subs = append(subs, e.subscribe(id, true))
			}
			// A CLI monitor, attached once it has printed created.
			monitor, mon := e.cliStartPiped("event", "-m", id)
			first := mon.line(t)

			e.cliOK(append(tc.delete, id)...)

			for i, sub := range subs {
				res := collect(sub, nil)
				wantEOF(t, "Go subscriber", res.end)
				evs := res.events
				types := typesOf(evs)
				if len(types) < len(tc.tail) || !slices.Equal(types[len(types)-len(tc.tail):], tc.tail) {
					t.Errorf("Go subscriber %d got %q, want it to end with %q", i, types, tc.tail)
				}
				if tc.status == "running" && len(evs) >= 2 {
					wantExit(t, evs[len(evs)-2], 137, "SIGKILL")
				}
				if !slices.IsSorted(seqsOf(evs)) {
					t.Errorf("Go subscriber %d: seqs %v out of order", i, seqsOf(evs))
				}
			}
			rest := mon.rest(t)
			r := monitor.wait()
			lines := events(t, first+"\n"+rest)
			if r.code != 0 || len(lines) == 0 || lines[len(lines)-1].Type != protocol.EventDeleted {
				t.Errorf("event -m: exit %d, printed %q (%s)", r.code, first+"\n"+rest, r.stderr)
			}
			e.wantNoStateDir(id)
		})
	}
}

// TestEventShimKilled: subscribers of a shim that is SIGKILLed learn it at
// once (an attached `crier event -m` exits with a message naming the
// shim), the next `crier event` brings a new shim back (shim_recover_test.go)
// and gets the history from it, and the container survives until delete
// --force. A created container's init gives up with its shim: it cannot
// be started.
func TestEventShimKilled(t *testing.T) {
	t.Parallel()
	for _, status := range []protocol.Status{protocol.StatusCreated, protocol.StatusRunning} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"sleep", "100"}, nil))
			sub := e.subscribe(id, true)
			if status == protocol.StatusRunning {
				e.cliOK("start", id)
				next(t, sub, protocol.EventStarted)
			} else {
				next(t, sub, protocol.EventCreated)
			}
			monitor, mon := e.cliStartPiped("event", "-m", id)
			mon.line(t) // attached

			st := e.shimState(id)
			killShim(t, st)

			if res := collect(sub, nil); len(res.events) > 0 || !errors.Is(res.end, io.ErrUnexpectedEOF) {
				t.Errorf("Go subscriber after the shim's SIGKILL: %q then %v, want io.ErrUnexpectedEOF", typesOf(res.events), res.end)
			}
			wantErrorLine(t, "attached event -m", monitor.wait(), "shim")

			if ev := decodeEvent(t, e.cliOK("event", id).stdout); ev.Type != protocol.EventCreated || ev.Seq != 1 {
				t.Errorf("event after the shim died: %+v, want created with seq 1 from a new shim", ev)
			}
			if status == protocol.StatusCreated {
				if r := e.cliRun("start", id); r.code == 0 {
					t.Errorf("start of a created container whose shim died succeeded")
				}
			}

			if status == protocol.StatusRunning {
				// The container lives on, and state says so from
				// the file.
				if got := e.state(id); got.Status != status || got.Pid != st.Pid || !processAlive(st.Pid) {
					t.Errorf("state after the shim died: status %q pid %d (was %d), alive %v", got.Status, got.Pid, st.Pid, processAlive(st.Pid))
				}
				wantCLIError(t, "delete without --force", e.cliRun("delete", id), "--force", string(status))
				if !processAlive(st.Pid) {
					t.Errorf("a refused delete killed the container")
				}
			} else if got := e.state(id); got.Status != status && got.Status != protocol.StatusStopped {
				// A created container cannot start without its
				// shim; it may stay created or end.
				t.Errorf("state after the shim died: status %q", got.Status)
			}
			e.cliOK("delete", "--force", id)
			e.wantNoStateDir(id)
			if processAlive(st.Pid) {
				t.Errorf("container process %d alive after delete --force", st.Pid)
			}
		})
	}
}

// TestSubscriberDuringFailedCreate: a client that connects while the
// container is being created waits in the shim's backlog; when create fails
// it gets the reason, not a reset it could take for a shim still to come.
func TestSubscriberDuringFailedCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	fifo := filepath.Join(e.dir, "release")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	b := e.bundle([]string{"true"}, nil)
	sh := filepath.Join(b, "rootfs", "bin", "sh")
	editBundle(t, b, func(s *specs.Spec) {
		// The hook holds create until the test has subscribed, then fails it.
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
			Path: sh, Args: []string{"sh", "-c", "read x < " + fifo + "; exit 3"},
		}}}
	})
	create := e.cliStart(nil, "create", "--bundle", b, id)
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	if err := shim.WaitExist(ctx, filepath.Join(e.root, id)); err != nil {
		t.Fatal(err)
	}
	// A raw connection, so the request is surely in the socket before the
	// hook lets create fail.
	conn, err := net.Dial("unix", shim.SocketPath(e.root, id))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hangDeadline))
	if _, err := conn.Write([]byte(`{"op":"subscribe"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("go\n"))
	f.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	var reply protocol.Reply
	if err := json.Unmarshal([]byte(line), &reply); err != nil || reply.OK || !strings.Contains(reply.Error, "create failed") {
		t.Errorf("answer during a failing create = %q, want an error saying create failed", line)
	}
	if r := create.wait(); r.code == 0 {
		t.Errorf("create succeeded: %+v", r)
	}
	e.wantNoStateDir(id)
}
