package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestEventSinceResumes: a subscriber killed after the event with seq N
// and resumed with `crier event --since N --monitor` gets every later event
// exactly once, in order, with no gap: those that happened while it was
// away from the shim's history, then the live ones until deleted.
func TestEventSinceResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	first := e.subscribe(id, true)
	created := next(t, first, protocol.EventCreated)
	first.Close() // the subscriber dies
	e.cliOK("start", id)
	e.cliOK("exec", "--exec-id", "while-away", id, "true")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	resumed := e.cliStart(func(c *exec.Cmd) { c.Stdout = pw }, "event", "--since", fmt.Sprint(created.Seq), "--monitor", id)
	pw.Close()
	out := newOutPipe(pr)
	// The events it missed come from the history; once it has printed
	// them it is subscribed, and gets the rest live.
	var lines []string
	for len(lines) < 3 {
		lines = append(lines, out.line(t))
	}
	e.cliOK("kill", id, "KILL")
	e.waitStopped(id)
	e.cliOK("delete", id)
	r := resumed.wait()
	if r.code != 0 {
		t.Fatalf("event --since: exit %d: %s", r.code, r.stderr)
	}
	rest, _ := io.ReadAll(pr)
	r.stdout = strings.Join(lines, "\n") + "\n" + string(rest)
	var got []string
	want := created.Seq + 1
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		ev := decodeEvent(t, line)
		if ev.Seq != want {
			t.Errorf("event %q has seq %d, want %d", line, ev.Seq, want)
		}
		want = ev.Seq + 1
		got = append(got, ev.Type)
	}
	if w := "started exec-started exec-stopped stopped deleted"; strings.Join(got, " ") != w {
		t.Errorf("resumed subscriber got %v, want %s", got, w)
	}
}

// TestEventSinceSaysMissed: events after --since that the shim did not
// keep (here, --event-buffer kept only created and stopped) are announced
// by a missed line naming their seqs, never skipped in silence; the
// filter of --event does not hide it.
func TestEventSinceSaysMissed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sh", "-c", "exit 4"}, nil), "--event-buffer", "created,stopped")
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	next(t, sub, protocol.EventStopped)
	out := e.cliOK("event", "--since", "1", "--event", "stopped", id).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("event --since 1 printed %q, want a missed line and stopped", out)
	}
	missed, stopped := decodeEvent(t, lines[0]), decodeEvent(t, lines[1])
	if missed.Type != protocol.EventMissed || missed.From != 2 || missed.To != 2 {
		t.Errorf("first line %q, want missed 2 to 2 (started was not kept)", lines[0])
	}
	wantExit(t, stopped, 4, "")
	e.cliOK("delete", id)
}
