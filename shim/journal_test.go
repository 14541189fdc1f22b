package shim

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// TestJournal: every event is in the journal before it is published, in
// order; the journal stays under journalMax, rewritten with the kept
// history, and always ends with the newest event, buffered or not, so that
// a new shim learns the seq to go on from.
func TestJournal(t *testing.T) {
	for _, buffer := range []map[string]bool{nil, {protocol.EventCreated: true}} {
		k := newFakeOps()
		s, sub := cellServer(t, phaseRunning, k)
		s.rec.Buffer = buffer
		s.emit(protocol.Event{Type: protocol.EventCreated}, time.Now())
		<-sub.ch
		for i := 0; i < 1000; i++ {
			typ := protocol.EventExecStarted
			if i%2 == 1 {
				typ = protocol.EventExecStopped
			}
			s.emit(protocol.Event{Type: typ, Pid: 4242, ExecID: "exec-1"}, time.Now())
			// The line a subscriber gets is already on disk.
			line := <-sub.ch
			b, err := s.dir.ReadJournal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(b, line) {
				t.Fatalf("event %d published but not at the journal's end", i)
			}
			if len(b) > journalMax {
				t.Fatalf("journal is %d bytes, over %d", len(b), journalMax)
			}
		}
		b, _ := s.dir.ReadJournal()
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		var prev uint64
		for i, l := range lines {
			var ev protocol.Event
			if err := json.Unmarshal(l, &ev); err != nil {
				t.Fatalf("journal line %d %q: %v", i, l, err)
			}
			if ev.Seq <= prev {
				t.Fatalf("journal line %d has seq %d after %d", i, ev.Seq, prev)
			}
			if i == 0 && ev.Type != protocol.EventCreated {
				t.Errorf("buffer %v: the journal lost created: first line %q", buffer, l)
			}
			prev = ev.Seq
		}
		if prev != s.rec.Seq {
			t.Errorf("buffer %v: journal ends at seq %d, the shim is at %d", buffer, prev, s.rec.Seq)
		}
	}
}

// BenchmarkJournalEvent is the journal's cost on the path of every event
// (issue 13: at most 0.1 ms at the median of exit to subscriber).
func BenchmarkJournalEvent(b *testing.B) {
	s, _ := cellServer(b, phaseRunning, newFakeOps())
	line, _ := protocol.Marshal(protocol.Event{Type: protocol.EventStopped, ID: "c1", Timestamp: protocol.FormatTime(time.Now()), Seq: 3, Pid: 4242})
	ev := protocol.Event{Type: protocol.EventStopped, Seq: 3}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.journalEvent(ev, line)
	}
}
