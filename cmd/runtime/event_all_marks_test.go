package main

import (
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestPrintedMarks: a delivered history is passed on from after what a
// cut follow of the same container printed; a history of another
// container of the same ID (its own timestamps) is passed on whole, and
// so is one no follow printed anything of.
func TestPrintedMarks(t *testing.T) {
	ev := func(seq uint64, typ, at string) protocol.Event {
		return protocol.Event{ID: "c1", Seq: seq, Type: typ, Timestamp: at}
	}
	history := []protocol.Event{
		ev(1, protocol.EventCreated, "t1"), ev(2, protocol.EventStarted, "t2"),
		ev(3, protocol.EventStopped, "t3"), ev(4, protocol.EventDeleted, "t4"),
	}
	missed := protocol.Event{ID: "c1", Type: protocol.EventMissed, From: 1, To: 2, Timestamp: "tm"}
	for _, tc := range []struct {
		name    string
		printed []protocol.Event // what the follow passed on
		seq     uint64
		ok      bool
	}{
		{name: "printed the start", printed: history[:2], seq: 2, ok: true},
		{name: "last a missed line", printed: []protocol.Event{history[0], missed}, seq: 2, ok: true},
		{name: "another container of the ID", printed: []protocol.Event{ev(1, protocol.EventCreated, "other")}},
		{name: "printed nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p printedMarks
			m := p.add("c1")
			for _, e := range tc.printed {
				seq := e.Seq
				if e.Type == protocol.EventMissed {
					seq = e.To
				}
				p.note(m, e, seq)
			}
			seq, ok := p.printedOf("c1", history)
			if seq != tc.seq || ok != tc.ok {
				t.Errorf("printedOf = %d, %v; want %d, %v", seq, ok, tc.seq, tc.ok)
			}
			if _, again := p.printedOf("c1", history); again {
				t.Errorf("a mark matched a second history")
			}
		})
	}
}
