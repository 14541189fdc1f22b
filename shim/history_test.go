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

// TestReplaySince: a subscription with since gets the kept events after
// it, and a missed line for each run of later events no longer kept
// (before an event, and after the last); without since, the whole
// history and no missed lines.
func TestReplaySince(t *testing.T) {
	// Kept: 1, 2, 4, 5; 3 dropped; 6 and 7 not buffered.
	history := []protocol.Event{
		{Type: protocol.EventCreated, Seq: 1}, {Type: protocol.EventStarted, Seq: 2},
		{Type: protocol.EventExecStarted, Seq: 4}, {Type: protocol.EventExecStopped, Seq: 5},
	}
	u := func(n uint64) *uint64 { return &n }
	no := false
	tests := []struct {
		name  string
		req   protocol.Request
		lines []string
	}{
		{"whole history", protocol.Request{}, []string{"created 1", "started 2", "exec-started 4", "exec-stopped 5"}},
		{"no history", protocol.Request{History: &no}, nil},
		{"since 0", protocol.Request{Since: u(0)}, []string{"created 1", "started 2", "missed 3-3", "exec-started 4", "exec-stopped 5", "missed 6-7"}},
		{"since 2", protocol.Request{Since: u(2)}, []string{"missed 3-3", "exec-started 4", "exec-stopped 5", "missed 6-7"}},
		{"since 4, over no history", protocol.Request{Since: u(4), History: &no}, []string{"exec-stopped 5", "missed 6-7"}},
		{"since 6", protocol.Request{Since: u(6)}, []string{"missed 7-7"}},
		{"since the last", protocol.Request{Since: u(7)}, nil},
		{"since the future", protocol.Request{Since: u(99)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{rec: record{ID: "c1", History: history, Seq: 7}}
			sub := newSubscriber(nil)
			s.replay(sub, tt.req)
			var got []string
			for len(sub.ch) > 0 {
				ev := nextEvent(t, sub)
				if ev.Type == protocol.EventMissed {
					got = append(got, fmt.Sprintf("missed %d-%d", ev.From, ev.To))
				} else {
					got = append(got, fmt.Sprintf("%s %d", ev.Type, ev.Seq))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.lines) {
				t.Errorf("replay: %v, want %v", got, tt.lines)
			}
		})
	}
}
