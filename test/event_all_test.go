package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// allProc is a running `crier event --all`, its stdout read line by line
// into events as they come.
type allProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *os.File
	lines  chan string // closed at EOF
	got    []protocol.Event
}

// startEventAll starts `crier event --all` with args. It is not bounded by
// hangDeadline (a churn outlasts it) but by churnDeadline; stop ends it.
func (e *env) startEventAll(args ...string) *allProc {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), churnDeadline)
	e.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, suite.crier, append([]string{"--root", e.root, "event", "--all"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	p := &allProc{t: e.t, cmd: cmd, lines: make(chan string, 1<<14)}
	if p.stderr, err = os.CreateTemp(e.dir, "event-all-stderr-"); err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

// churnDeadline bounds a churn test's stream.
const churnDeadline = 5 * time.Minute

// until reads events until done says the stream has what the test waits
// for, failing the test after d or at EOF.
func (p *allProc) until(d time.Duration, what string, done func(evs []protocol.Event) bool) {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !done(p.got) {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("event --all ended before %s; stderr %q; got %d lines", what, p.stderrText(), len(p.got))
			}
			var ev protocol.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				p.t.Fatalf("event --all printed %q: %v", line, err)
			}
			p.got = append(p.got, ev)
		case <-timer.C:
			p.t.Fatalf("no %s from event --all after %v; got %d lines, stderr %q", what, d, len(p.got), p.stderrText())
		}
	}
}

// untilEvent reads until an event of type typ of container id.
func (p *allProc) untilEvent(id, typ string) {
	p.t.Helper()
	p.until(hangDeadline, typ+" of "+id, func(evs []protocol.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].ID == id && evs[len(evs)-1].Type == typ
	})
}

// untilNth waits until the stream has given n events of type typ for id:
// an ID used again must not be taken for done by its last use's event.
func (p *allProc) untilNth(id, typ string, n int) {
	p.t.Helper()
	p.until(hangDeadline, fmt.Sprintf("%s #%d of %s", typ, n, id), func(evs []protocol.Event) bool {
		seen := 0
		for _, ev := range evs {
			if ev.ID == id && ev.Type == typ {
				seen++
			}
		}
		return seen >= n
	})
}

// stop ends a --monitor stream as a person would, with SIGINT, and reads
// what it printed before.
func (p *allProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	for line := range p.lines {
		var ev protocol.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			p.t.Fatalf("event --all printed %q: %v", line, err)
		}
		p.got = append(p.got, ev)
	}
}

func (p *allProc) stderrText() string {
	b, _ := os.ReadFile(p.stderr.Name())
	return string(b)
}

// byID groups events by container.
func byID(evs []protocol.Event) map[string][]protocol.Event {
	m := map[string][]protocol.Event{}
	for _, ev := range evs {
		m[ev.ID] = append(m[ev.ID], ev)
	}
	return m
}

// wantLifecycle checks that evs are one container's four lifecycle events
// in order, seqs 1 to 4, stopped with exit status 0.
func wantLifecycle(t *testing.T, id string, evs []protocol.Event) {
	t.Helper()
	want := "created,started,stopped,deleted"
	if got := strings.Join(typesOf(evs), ","); got != want {
		t.Errorf("container %s: event --all gave %s, want %s", id, got, want)
		return
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Errorf("container %s: %s has seq %d, want %d", id, ev.Type, ev.Seq, i+1)
		}
	}
	wantExit(t, evs[2], 0, "")
}

// cycle creates, starts and deletes container id of bundle through the CLI,
// waiting for its exit with a Go subscriber; it runs off the test's
// goroutine, so it returns its failure rather than failing the test.
func (e *env) cycle(id, bundle string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangDeadline)
	defer cancel()
	out, err := os.Create(filepath.Join(e.dir, id+".out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cli := func(args ...string) error {
		cmd := exec.CommandContext(ctx, suite.crier, append([]string{"--root", e.root}, args...)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("%s %s: %v: %s", args[0], id, err, b)
		}
		return nil
	}
	if err := cli("create", "--bundle", bundle, id); err != nil {
		return err
	}
	c, err := protocol.Dial(ctx, shim.SocketPath(e.root, id))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		return err
	}
	if err := cli("start", id); err != nil {
		return err
	}
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s to stop: %v", id, err)
		}
		if ev.Type == protocol.EventStopped {
			break
		}
	}
	return cli("delete", id)
}

// cycleSeen is cycle for a stream that must see the container, the nth
// of its ID: it is started only once the stream has its created. A
// relayed lifecycle can be over within milliseconds, before an event
// --all started just before it has even listed the root.
func (e *env) cycleSeen(all *allProc, id, bundle string, nth int) {
	e.t.Helper()
	e.create(id, bundle)
	all.untilNth(id, protocol.EventCreated, nth)
	e.cliOK("start", id)
	e.waitStopped(id)
	e.cliOK("delete", id)
	all.untilNth(id, protocol.EventDeleted, nth)
}

// TestEventAllChurn is issue 12's check: `crier event --all --monitor`
// runs while containers are created, started and deleted by 8 workers at
// once, and one made before it began waits; every container's four
// lifecycle events arrive, in order, exactly once, and nothing else.
func TestEventAllChurn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundle := e.bundle([]string{"true"}, nil)
	n, workers := 100, 8
	if testing.Short() {
		n = 24
	}
	before := e.id()
	e.create(before, bundle)
	all := e.startEventAll("--monitor")
	// Its created, from the history, says the stream is listening.
	all.untilEvent(before, protocol.EventCreated)

	ids := make(chan string)
	var (
		mu   sync.Mutex
		errs []error
		made []string
		wg   sync.WaitGroup
	)
	began := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				err := e.cycle(id, bundle)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		id := e.id()
		made = append(made, id)
		ids <- id
	}
	close(ids)
	wg.Wait()
	t.Logf("%d containers created, started and deleted by %d workers in %v", n, workers, time.Since(began))
	for _, err := range errs {
		t.Error(err)
	}
	e.cliOK("start", before)
	e.waitStopped(before)
	e.cliOK("delete", before)
	made = append(made, before)

	deleted := func(evs []protocol.Event) bool {
		d := 0
		for _, ev := range evs {
			if ev.Type == protocol.EventDeleted {
				d++
			}
		}
		return d >= len(made)
	}
	all.until(hangDeadline, "every deleted", deleted)
	all.stop()
	got := byID(all.got)
	for _, id := range made {
		wantLifecycle(t, id, got[id])
		delete(got, id)
	}
	for id, evs := range got {
		t.Errorf("event --all printed events of %q, which the test did not make: %v", id, typesOf(evs))
	}
	if s := all.stderrText(); s != "" {
		t.Errorf("event --all wrote to stderr: %q", s)
	}
}

// TestEventAllIDReused: a container deleted and made again under the same
// ID while the stream runs is followed again, from its own created.
func TestEventAllIDReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundle := e.bundle([]string{"true"}, nil)
	id := e.id()
	all := e.startEventAll("--monitor")
	for i := 0; i < 3; i++ {
		e.cycleSeen(all, id, bundle, i+1)
	}
	all.stop()
	evs := byID(all.got)[id]
	if len(evs) != 12 {
		t.Fatalf("event --all gave %v for an ID used three times, want three lifecycles", typesOf(evs))
	}
	for i := 0; i < 3; i++ {
		wantLifecycle(t, fmt.Sprintf("%s, use %d", id, i+1), evs[4*i:4*i+4])
	}
}

// TestEventAllFilters: --event keeps only the types asked for, from every
// container; without --monitor, event --all exits 0 after the first
// event that matches, from any container; --no-history leaves out what
// happened before the stream began.
func TestEventAllFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundle := e.bundle([]string{"true"}, nil)
	early := e.id()
	e.create(early, bundle)
	e.cliOK("start", early)
	e.waitStopped(early)

	stops := e.startEventAll("--monitor", "--event", "stopped", "--event", "deleted")
	// With history, the early container's created is the first event
	// that matches.
	r := e.cliOK("event", "--all", "--event", "created", "--timeout", "20s")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || decodeEvent(t, lines[0]).ID != early {
		t.Errorf("event --all --event created printed %q, want one line, %s's created", r.stdout, early)
	}
	// Without: the early container's stopped is old news; the first
	// stopped after the stream began is the next container's.
	first := e.cliStart(nil, "event", "--all", "--no-history", "--event", "stopped", "--timeout", "20s")
	waitSockets(t, first.cmd.Process.Pid, 1) // subscribed to early: listening
	ids := []string{early, e.id(), e.id()}
	for _, id := range ids[1:] {
		e.create(id, bundle)
		e.cliOK("start", id)
		e.waitStopped(id)
	}
	r = first.waitOK()
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || decodeEvent(t, lines[0]).ID != ids[1] {
		t.Errorf("event --all --no-history --event stopped printed %q, want one line, %s's stopped", r.stdout, ids[1])
	}
	for _, id := range ids {
		e.cliOK("delete", id)
		stops.untilEvent(id, protocol.EventDeleted)
	}
	stops.stop()
	got := byID(stops.got)
	for _, id := range ids {
		if types := strings.Join(typesOf(got[id]), ","); types != "stopped,deleted" {
			t.Errorf("event --all --event stopped --event deleted gave %s for %s, want stopped,deleted", types, id)
		}
	}
	if len(got) != len(ids) {
		t.Errorf("event --all gave events of %d containers, want %d", len(got), len(ids))
	}

	wantCLIError(t, "event --all with an ID", e.cliRun("event", "--all", early), "no container ID")
	wantCLIError(t, "event --all --since", e.cliRun("event", "--all", "--since", "3"), "--since")
	r = e.cliRun("event", "--all", "--monitor", "--timeout", "300ms")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("event --all --monitor --timeout on an idle root: exit %d, stdout %q; want 0 and nothing", r.code, r.stdout)
	}
	wantCLIError(t, "event --all --timeout with nothing coming", e.cliRun("event", "--all", "--timeout", "300ms"), "timed out")
}

// waitSockets waits until process pid holds n sockets: a `crier event`
// that holds one per container it follows is then listening.
func waitSockets(t *testing.T, pid, n int) {
	t.Helper()
	deadline := time.Now().Add(hangDeadline)
	for {
		have := socketCount(pid)
		if have >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d holds %d sockets after %v, want %d", pid, have, hangDeadline, n)
		}
		time.Sleep(5 * time.Millisecond) // /proc has no notification
	}
}

// TestEventAllShimGone: a container whose shim is SIGKILLed while the
// stream follows it gets exactly one shim-gone line, then the events of
// the shim the stream brings back; the stream goes on with the others and
// with new ones; so does one whose shim was dead before the stream began.
// A container whose create fails gets nothing.
func TestEventAllShimGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sleeper := e.bundle([]string{"sleep", "1000"}, nil)
	short := e.bundle([]string{"true"}, nil)
	deadBefore, victim, other := e.id(), e.id(), e.id()
	for _, id := range []string{deadBefore, victim, other} {
		e.create(id, sleeper)
	}
	killShim(t, e.shimState(deadBefore))

	all := e.startEventAll("--monitor")
	all.untilEvent(deadBefore, protocol.EventShimGone)
	e.cliOK("start", victim)
	all.untilEvent(victim, protocol.EventStarted)
	killShim(t, e.shimState(victim))
	all.untilEvent(victim, protocol.EventShimGone)

	// The stream goes on: the other container's events, and a new one's.
	e.cliOK("start", other)
	all.untilEvent(other, protocol.EventStarted)
	e.cliOK("delete", "--force", other)
	all.untilEvent(other, protocol.EventDeleted)
	later := e.id()
	if err := e.cycle(later, short); err != nil {
		t.Fatal(err)
	}
	all.untilEvent(later, protocol.EventDeleted)

	// A create that fails after its directory appeared: nothing for it.
	failing := e.id()
	e.createFails(failing, e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	}))
	// The dead shims' containers are removed; their directories go.
	e.cliOK("delete", "--force", victim)
	e.cliOK("delete", "--force", deadBefore)
	// A last container marks the end: whatever came before it is in.
	last := e.id()
	if err := e.cycle(last, short); err != nil {
		t.Fatal(err)
	}
	all.untilEvent(last, protocol.EventDeleted)
	all.stop()

	got := byID(all.got)
	// Each shim-gone is followed by a new shim's events: the stream
	// brought it back (shim_recover_test.go), and resumed after the last
	// event it had passed on. A created container's init gave up with its
	// shim: the new one reports it stopped.
	if types := strings.Join(typesOf(got[deadBefore]), ","); types != "shim-gone,created,stopped,deleted" {
		t.Errorf("container whose shim was dead before the stream: %s, want shim-gone,created,stopped,deleted", types)
	}
	if types := strings.Join(typesOf(got[victim]), ","); types != "created,started,shim-gone,stopped,deleted" {
		t.Errorf("container whose shim was killed: %s, want created,started,shim-gone,stopped,deleted", types)
	}
	for _, ev := range all.got {
		if ev.Type == protocol.EventShimGone && (ev.Seq != 0 || ev.Timestamp == "") {
			t.Errorf("shim-gone line %+v: want seq 0 and a timestamp", ev)
		}
	}
	if types := strings.Join(typesOf(got[other]), ","); types != "created,started,stopped,deleted" {
		t.Errorf("other container: %s, want its lifecycle", types)
	}
	wantLifecycle(t, later, got[later])
	wantLifecycle(t, last, got[last])
	if evs := got[failing]; len(evs) != 0 {
		t.Errorf("container whose create failed: %v, want nothing", typesOf(evs))
	}
	if s := all.stderrText(); s != "" {
		t.Errorf("event --all wrote to stderr: %q", s)
	}
}

// TestEventAllShimGoneThenDeleted: a container whose shim dies while the
// stream follows it, and which another command deletes before the stream
// could follow it again (the delete brings a shim back, which leaves its
// history in the stream's ticket), gets each of its events once: those
// the stream printed before the shim died are not printed again from the
// history. The stream is stopped (SIGSTOP) over the death and the delete,
// so that it cannot bring the shim back first.
func TestEventAllShimGoneThenDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	all := e.startEventAll("--monitor")
	all.untilEvent(id, protocol.EventCreated)
	e.cliOK("start", id)
	all.untilEvent(id, protocol.EventStarted)

	all.cmd.Process.Signal(syscall.SIGSTOP)
	killShim(t, e.shimState(id))
	e.cliOK("delete", "--force", id)
	all.cmd.Process.Signal(syscall.SIGCONT)

	// A last container marks the end: whatever came before it is in.
	last := e.id()
	if err := e.cycle(last, e.bundle([]string{"true"}, nil)); err != nil {
		t.Fatal(err)
	}
	all.untilEvent(last, protocol.EventDeleted)
	all.untilNth(id, protocol.EventDeleted, 1)
	all.stop()

	var types []string
	for _, ev := range byID(all.got)[id] {
		if ev.Type != protocol.EventShimGone {
			types = append(types, ev.Type)
		}
	}
	if got := strings.Join(types, ","); got != "created,started,stopped,deleted" {
		t.Errorf("container whose shim died and which was then deleted: %s (shim-gone aside), want created,started,stopped,deleted", got)
	}
	wantLifecycle(t, last, byID(all.got)[last])
	if s := all.stderrText(); s != "" {
		t.Errorf("event --all wrote to stderr: %q", s)
	}
}

// TestEventAllRootRefused: a root that fails statedir's checks is refused
// with the path and why; a container directory that does is named on
// stderr and not followed, and the stream goes on with the others.
func TestEventAllRootRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundle := e.bundle([]string{"true"}, nil)
	bad := e.id()
	e.create(bad, bundle)
	if err := os.Chmod(e.root, 0o777); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("state root %s: writable by group or others (mode 0777)", e.root)
	for _, args := range [][]string{{"--monitor"}, {"--timeout", "5s"}} {
		r := e.cliRun(append([]string{"event", "--all"}, args...)...)
		wantCLIError(t, "event --all "+strings.Join(args, " ")+" on a 0777 root", r, want)
	}
	os.Chmod(e.root, 0o700)

	dir := filepath.Join(e.root, bad)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	all := e.startEventAll("--monitor")
	good := e.id()
	e.cycleSeen(all, good, bundle, 1)
	all.stop()
	if evs := byID(all.got)[bad]; len(evs) != 0 {
		t.Errorf("container with a 0777 directory: %v, want nothing", typesOf(evs))
	}
	wantLifecycle(t, good, byID(all.got)[good])
	wantDir := fmt.Sprintf("state directory %s: writable by group or others (mode 0777)", dir)
	if s := all.stderrText(); strings.Count(s, "\n") != 1 || !strings.Contains(s, wantDir) {
		t.Errorf("event --all stderr %q, want one line %q", s, wantDir)
	}
	os.Chmod(dir, 0o700)
	e.cliOK("delete", "--force", bad)
}

// TestEventAllBeginsDuringCreates: the stream begins while containers are
// being made: each is followed once, from its created, whether its first
// listing of the root or inotify found it (or both: the window is too
// short to hit at will, and the main loop's unit test covers it).
func TestEventAllBeginsDuringCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundle := e.bundle([]string{"sleep", "1000"}, nil)
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, e.id())
	}
	var wg sync.WaitGroup
	created := make(chan string, len(ids))
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(ids); i += 4 {
				cmd := exec.Command(suite.crier, "--root", e.root, "create", "--bundle", bundle, ids[i])
				if cmd.Run() == nil {
					created <- ids[i]
				}
			}
		}(w)
	}
	<-created // the root exists: the stream and the creates race
	all := e.startEventAll("--monitor")
	wg.Wait()
	close(created)
	n := 1
	for range created {
		n++
	}
	if n != len(ids) {
		t.Fatalf("%d of %d creates failed", len(ids)-n, len(ids))
	}
	for _, id := range ids {
		e.cliOK("delete", "--force", id)
		all.untilEvent(id, protocol.EventDeleted)
	}
	all.stop()
	got := byID(all.got)
	for _, id := range ids {
		evs := got[id]
		if types := strings.Join(typesOf(evs), ","); types != "created,stopped,deleted" {
			t.Errorf("container %s: event --all gave %s, want created,stopped,deleted", id, types)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq != evs[i-1].Seq+1 {
				t.Errorf("container %s: seq %d follows %d", id, evs[i].Seq, evs[i-1].Seq)
			}
		}
	}
}
