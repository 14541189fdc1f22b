package shim

import (
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// A waiter that began before the container existed may not have
// subscribed by the time the container is deleted: it took a ticket
// instead (statedir.Await, statedir.AwaitAll; docs/protocol.md §1), and
// the shim leaves the history there as it goes.

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
