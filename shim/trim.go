package shim

import (
	"runtime/debug"
	"time"
)

// A Go heap keeps the memory it grew to: until it has allocated 4 MB the
// runtime never collects, and afterwards it keeps about as much again for
// the next cycle. A shim that idles for days after a burst of clients
// (every connection leaves a few kB of garbage) would hold megabytes for
// nothing. So once the clients have been quiet for trimAfter, and they
// made at least trimClients requests since the last trim (each leaves a
// few kB), the shim collects and hands the free pages back. A shim that saw
// little traffic never pays for a collection: the first one leaves some
// 300 kB of runtime bookkeeping resident for good. (Counting requests
// rather than asking the runtime how much was allocated: reading its
// statistics flushes its per-P caches, which costs as much.)
const (
	trimAfter   = time.Second
	trimClients = 64
)

// trimSoon counts a request and (re)arms the trim timer.
func (s *server) trimSoon() {
	s.untrimmed++
	if s.trimTimer == nil {
		s.trimTimer = time.AfterFunc(trimAfter, func() { s.post(trimDue{}) })
		return
	}
	s.trimTimer.Reset(trimAfter)
}

// trim runs when the clients have been quiet for trimAfter. It reports
// whether it collected.
func (s *server) trim() bool {
	if s.untrimmed < trimClients {
		return false
	}
	s.untrimmed = 0
	// Off the loop: the collection and the madvise calls take a while,
	// and the loop must stay free to report an exit.
	go debug.FreeOSMemory()
	return true
}
