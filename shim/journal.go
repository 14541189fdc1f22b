package shim

import (
	"github.com/crier-runtime/crier/protocol"
	"golang.org/x/sys/unix"
)

// The journal is the events' copy on disk (statedir.JournalFile): each
// event is appended, one write, before any subscriber is sent it, so that
// a shim that comes back after this one died can go on from it: the same
// seq, the same history. It is kept small: once appending would take it
// past journalMax it is rewritten with the history the shim keeps
// (history.go: the lifecycle events and the newest exec events, some
// 16 kB at most), and the event itself when it was not buffered, so that
// its seq survives.
const journalMax = 64 << 10

// journal is the open journal; the zero value is not open yet (each image
// opens it at its first event: the descriptor does not survive reexec).
type journal struct {
	fd     int
	open   bool
	size   int64
	broken bool // a failure has been logged; events go on without it
}

// journalEvent appends ev, whose line is line, to the journal.
func (s *server) journalEvent(ev protocol.Event, line []byte) {
	j := &s.journal
	if j.broken {
		return
	}
	if !j.open {
		fd, err := s.dir.OpenJournal()
		if err != nil {
			s.journalFailed(err)
			return
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		j.fd, j.open, j.size = fd, true, st.Size
	}
	if j.size+int64(len(line)) > journalMax {
		s.compactJournal(ev, line)
		return
	}
	for b := line; len(b) > 0; {
		n, err := unix.Write(j.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.journalFailed(err)
			return
		}
		b = b[n:]
		j.size += int64(n)
	}
}

// compactJournal rewrites the journal as the history, then ev if the
// history did not keep it, and appends from there.
func (s *server) compactJournal(ev protocol.Event, line []byte) {
	var b []byte
	h := s.rec.History
	for _, kept := range h {
		l, err := protocol.Marshal(kept)
		if err == nil {
			b = append(b, l...)
		}
	}
	if len(h) == 0 || h[len(h)-1].Seq != ev.Seq {
		b = append(b, line...)
	}
	if err := s.dir.WriteJournal(b); err != nil {
		s.journalFailed(err)
		return
	}
	unix.Close(s.journal.fd)
	s.journal = journal{}
	fd, err := s.dir.OpenJournal()
	if err != nil {
		s.journalFailed(err)
		return
	}
	s.journal = journal{fd: fd, open: true, size: int64(len(b))}
}

func (s *server) journalFailed(err error) {
	s.log.Printf("event journal: %v; events are still published, but a new shim could not go on from them", err)
	if s.journal.open {
		unix.Close(s.journal.fd)
	}
	s.journal = journal{broken: true}
}
