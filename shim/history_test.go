package shim

import (
	"fmt"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestAppendHistory: lifecycle events are always kept; exec events only
// up to maxRepeated, the oldest going first, and order is kept.
func TestAppendHistory(t *testing.T) {
	var h []protocol.Event
	seq := uint64(0)
	add := func(typ string) {
		seq++
		h = appendHistory(h, protocol.Event{Type: typ, Seq: seq})
	}
	add(protocol.EventCreated)
	add(protocol.EventStarted)
	for i := 0; i < 3*maxRepeated; i++ {
		add(protocol.EventExecStarted)
	}
	add(protocol.EventStopped)
	if len(h) != 3+maxRepeated {
		t.Fatalf("%d events kept, want %d", len(h), 3+maxRepeated)
	}
	got := fmt.Sprint(h[0].Type, h[1].Type, h[len(h)-1].Type)
	if want := fmt.Sprint(protocol.EventCreated, protocol.EventStarted, protocol.EventStopped); got != want {
		t.Errorf("lifecycle events kept: %s, want %s", got, want)
	}
	// The exec events kept are the newest, in order.
	if first := h[2].Seq; first != 2+3*maxRepeated-maxRepeated+1 {
		t.Errorf("oldest exec event kept has seq %d, want %d", first, 2+3*maxRepeated-maxRepeated+1)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Seq <= h[i-1].Seq {
			t.Fatalf("events out of order at %d: %d after %d", i, h[i].Seq, h[i-1].Seq)
		}
	}
}
