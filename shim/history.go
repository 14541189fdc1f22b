package shim

import (
	"slices"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
	"golang.org/x/sys/unix"
)

// The events a shim keeps for late subscribers. A container has at most
// one of each lifecycle event, and only the last pause and resume are
// kept, but it has as many exec events as it runs execs
// (a health check every few seconds, for days): those are kept only up to
// maxRepeated, the oldest dropped first, so that an idle shim's memory
// stays bounded. The lifecycle events are always kept: `crier event
// --event created` must find created however many execs came after it. A
// subscriber tells a dropped event by the gap in seq.
const maxRepeated = 64

// appendHistory appends ev to h, dropping the oldest repeated event when
// there are more than maxRepeated.
func appendHistory(h []protocol.Event, ev protocol.Event) []protocol.Event {
	if ev.Type == protocol.EventPaused {
		// Only the last pause and resume are kept: a container paused
		// and resumed many times keeps a lifecycle's history.
		h = slices.DeleteFunc(h, func(e protocol.Event) bool {
			return e.Type == protocol.EventPaused || e.Type == protocol.EventResumed
		})
	}
	h = append(h, ev)
	if lifecycle(ev.Type) {
		return h
	}
	n, oldest := 0, -1
	for i := range h {
		if !lifecycle(h[i].Type) {
			if oldest < 0 {
				oldest = i
			}
			n++
		}
	}
	if n <= maxRepeated {
		return h
	}
	return append(h[:oldest], h[oldest+1:]...)
}

// numLifecycle is how many lifecycle types there are (lifecycle).
const numLifecycle = 4

// lifecycle reports whether t is one of the container's own lifecycle
// events, which happen at most once each.
func lifecycle(t string) bool {
	switch t {
	case protocol.EventCreated, protocol.EventStarted, protocol.EventStopped, protocol.EventDeleted:
		return true
	}
	return false
}

// deliverAwaited gives the whole history, deleted included, to the waiters
// that took a ticket for this container's ID before it existed
// (statedir.Await), and to the `event --all` streams not subscribed to it
// (statedir.AwaitAll): one that had not subscribed by now, because it was
// off the CPU for the container's whole life, gets the events all the
// same. Gaps are told with missed lines, as to a subscriber resuming from
// seq 0. With nobody waiting it costs two stats.
func (s *server) deliverAwaited() {
	one, all := statedir.Awaited(s.rec.Root, s.rec.ID), statedir.AwaitedAll(s.rec.Root)
	if !one && !all {
		return
	}
	var b []byte
	zero := uint64(0)
	s.replayLines(protocol.Request{Since: &zero}, func(_ uint64, line []byte) { b = append(b, line...) })
	if one {
		s.deliver(b)
	}
	if all {
		pids := s.subscriberPids()
		err := statedir.DeliverAll(s.rec.Root, b, container.Alive, func(pid int) bool { return pids[pid] })
		if err != nil {
			s.log.Printf("event streams' tickets: %v", err)
		}
	}
}

// subscriberPids returns the processes subscribed now, by their
// connections' peer credentials: a stream among them gets the events
// from its subscription rather than its ticket.
func (s *server) subscriberPids() map[int]bool {
	pids := map[int]bool{}
	for sub := range s.subs {
		raw, err := sub.conn.SyscallConn()
		if err != nil {
			continue
		}
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				pids[int(cred.Pid)] = true
			}
		})
	}
	return pids
}

// deliverRefusal tells the waiters that took a ticket (deliverAwaited)
// why the container they wait for will not be: its create failed. They
// get the error reply a subscriber would have got.
func (s *server) deliverRefusal(err error) {
	if !statedir.Awaited(s.rec.Root, s.rec.ID) {
		return
	}
	if line, merr := protocol.Marshal(protocol.ErrorReply(err)); merr == nil {
		s.deliver(line)
	}
}

func (s *server) deliver(b []byte) {
	if err := statedir.Deliver(s.rec.Root, s.rec.ID, b, container.Alive); err != nil {
		s.log.Printf("waiters' tickets: %v", err)
	}
}
