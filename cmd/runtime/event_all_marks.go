package main

import (
	"sync"

	"github.com/crier-runtime/crier/protocol"
)

// A follow whose subscription was cut (its shim died) may find its
// container deleted before it could follow it again: the command that
// deleted it brought a shim back, which, the stream not being among its
// subscribers, left the container's whole history in the stream's ticket,
// the events the stream printed before the cut among them. So each follow
// keeps a mark of what it printed, and a delivered history is passed on
// from after the mark of the same container (passDelivered): each event
// is printed once, as docs/protocol.md promises.

// printedMark is what one follow of a container directory printed last:
// seq, the last seq it passed on (a missed line's To); atSeq and at, the
// seq and timestamp of its last event, which tell this container's
// history from that of another container of the same ID.
type printedMark struct {
	seq, atSeq uint64
	at         string
}

// printedMarks are the marks of the follows, by container ID: the
// follows write them, the taker of deliveries reads them.
type printedMarks struct {
	mu sync.Mutex
	m  map[string][]*printedMark
}

// add makes the mark of a follow of container id.
func (p *printedMarks) add(id string) *printedMark {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]*printedMark{}
	}
	m := &printedMark{}
	p.m[id] = append(p.m[id], m)
	return m
}

// note records that ev, with effective seq seq, was passed on.
func (p *printedMarks) note(m *printedMark, ev protocol.Event, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.seq = seq
	if ev.Type != protocol.EventMissed {
		m.atSeq, m.at = ev.Seq, ev.Timestamp
	}
}

// drop removes a follow's mark: it saw its container deleted (no history
// is delivered for it then), or printed nothing.
func (p *printedMarks) drop(id string, m *printedMark) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(id, m)
}

func (p *printedMarks) removeLocked(id string, m *printedMark) {
	ms := p.m[id]
	for i, x := range ms {
		if x == m {
			ms = append(ms[:i], ms[i+1:]...)
			break
		}
	}
	if len(ms) == 0 {
		delete(p.m, id)
	} else {
		p.m[id] = ms
	}
}

// printedOf returns the seq up to which history, the delivered events of
// container id, was printed by a follow already, and removes that
// follow's mark; ok is false when no follow printed any of them.
func (p *printedMarks) printedOf(id string, history []protocol.Event) (seq uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.m[id] {
		if m.at == "" {
			continue
		}
		for _, ev := range history {
			if ev.Type != protocol.EventMissed && ev.Seq == m.atSeq && ev.Timestamp == m.at {
				p.removeLocked(id, m)
				return m.seq, true
			}
		}
	}
	return 0, false
}
