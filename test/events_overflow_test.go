package test

import (
	"context"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestEventsFullSubscriberQueue: containerd lost exit events when its
// event channel filled (containerd #8892). A crier subscriber that stops
// reading while events pile up (paused and resumed, 1200 of them: far more
// than its socket's buffer and its queue hold) loses nothing the shim
// keeps: once it reads again it gets what it was queued, then a missed
// line for what the shim no longer holds, then every later event in order,
// the exit among them, exact. Nothing is out of order, nothing twice.
func TestEventsFullSubscriberQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	e.cliOK("start", id)
	stalled := e.subscribe(id, true)
	ctl := e.dial(id)
	ctx := context.Background()
	for i := 0; i < 600; i++ {
		if err := ctl.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ctl.Resume(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.cliOK("kill", id, "KILL")
	e.waitStopped(id)

	next := uint64(1)
	missed := 0
	var stopped *protocol.Event
	for stopped == nil {
		ev := nextOf(t, stalled)
		switch {
		case ev.Type == protocol.EventMissed:
			if ev.From != next || ev.To < ev.From {
				t.Fatalf("missed %d-%d, expected from %d", ev.From, ev.To, next)
			}
			missed++
			next = ev.To + 1
		case ev.Seq != next:
			t.Fatalf("%s with seq %d, want %d", ev.Type, ev.Seq, next)
		default:
			next = ev.Seq + 1
			if ev.Type == protocol.EventStopped {
				stopped = &ev
			}
		}
	}
	if missed == 0 {
		t.Errorf("no missed line: the subscriber's queue never filled; the test proves nothing")
	}
	wantExit(t, *stopped, 137, "SIGKILL")
	e.cliOK("delete", id)
	if ev := nextOf(t, stalled); ev.Type != protocol.EventDeleted || ev.Seq != next {
		t.Errorf("after stopped: %+v, want deleted with seq %d", ev, next)
	}
}
