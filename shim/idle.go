package shim

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The create image re-executes into the serving image (reexec.go) once it
// has been idle for reexecAfter, not as soon as the container is created.
// Starting a Go program again costs some milliseconds of page faults,
// most of them on a machine where page-table updates are dear, and a
// `start`, `state` or `delete` that came meanwhile waited for it in the
// listen backlog; a short-lived container (a CI step, a /bin/true) was
// often deleted before the shim was ever idle, and so never pays for it.
//
// Idle means nothing is in flight that the serving image could not take
// over from the handoff: the phase is one a request leaves it in
// (created, running, paused, stopped), no hook, exec or delete runs, every
// connection is a subscriber with nothing queued, and the OOM watch has
// nothing unsettled. Subscribers and the OOM watch go over with their
// descriptors, so nobody connected sees the re-exec. Connections that
// arrive meanwhile wait in the listen backlog: the loop parks the accept
// goroutine first, and looks once more before it execs.
//
// The re-exec also waits while the machine's CPUs are all taken
// (cpuBusy): it is a Go program's start, some 10-15 ms of CPU on the
// slow machines of issue 14, which a burst of creates (a node starting
// its pods, a CI runner its steps) would otherwise pay for in every
// container after the first few. It looks again every reexecAfter, and
// waits reexecBusyMax at most, so that a machine that stays busy still
// gets its shims small.
const (
	reexecAfter = 200 * time.Millisecond
	// reexecAfterMax bounds the back-off while the shim stays busy (an
	// exec that runs for hours, a lagging subscriber), so that waiting
	// costs no more than a wake-up every few seconds.
	reexecAfterMax = 5 * time.Second
	reexecBusyMax  = 10 * time.Second
)

type (
	reexecDue    struct{}
	acceptParked struct{}
)

// handedSub is a subscriber the create image hands over: its connection's
// descriptor, the seq of the last event it was given, and for a relayed
// event its watch.
type handedSub struct {
	FD     int
	Queued uint64
	// Watch is a relayed event's (relay_event.go).
	Watch *relayWatch
}

// reexecSoon (re)arms the re-exec timer after m, which the loop has just
// handled: the shim is idle only once reexecAfter passes with no message.
func (s *server) reexecSoon(m any) {
	if !s.reexec || s.parking.Load() {
		return
	}
	switch m.(type) {
	case reexecDue, acceptParked:
		return // they arm it themselves
	}
	s.armReexec(reexecAfter)
}

func (s *server) armReexec(d time.Duration) {
	s.reexecDelay = d
	if s.reexecTimer == nil {
		s.reexecTimer = time.AfterFunc(d, func() { s.post(reexecDue{}) })
		return
	}
	s.reexecTimer.Reset(d)
}

// reexecIfIdle parks the accept goroutine when the shim is idle; parked
// goes on from there. Otherwise it looks again later, less often each time.
func (s *server) reexecIfIdle() {
	if !s.reexec || s.parking.Load() {
		return
	}
	if !s.idle() {
		s.armReexec(min(2*s.reexecDelay, reexecAfterMax))
		return
	}
	if s.cpuTaken(time.Now()) {
		// Soon again: once the burst is over, the shim re-execs
		// within reexecAfter.
		s.armReexec(reexecAfter)
		return
	}
	s.parking.Store(true)
	// Accept returns at once with a timeout (accept, park).
	s.ln.SetDeadline(time.Now())
}

// cpuTaken reports whether the re-exec is to wait for a CPU: the machine
// is busy, and has not been for reexecBusyMax since the shim first found
// it so.
func (s *server) cpuTaken(now time.Time) bool {
	if !s.ops.cpuBusy() {
		s.busySince = time.Time{}
		return false
	}
	if s.busySince.IsZero() {
		s.busySince = now
	}
	return now.Sub(s.busySince) < reexecBusyMax
}

// cpuBusy reports whether more threads are runnable than there are CPUs
// this process may use, itself aside.
func cpuBusy() bool {
	b, err := os.ReadFile("/proc/loadavg")
	return err == nil && loadavgBusy(string(b), runtime.NumCPU())
}

// loadavgBusy reads /proc/loadavg's fourth field, the threads runnable as
// the kernel read it ("3/412"), one of which is the reader.
func loadavgBusy(loadavg string, cpus int) bool {
	f := strings.Fields(loadavg)
	if len(f) < 4 {
		return false
	}
	running, _, _ := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(running)
	return err == nil && n-1 >= cpus
}

// parked runs once the accept goroutine waits: the shim re-executes if it
// is still idle, and otherwise accepts again and looks later.
func (s *server) parked() {
	if s.idle() {
		// Returns only if the exec failed: serve from this image then.
		err := s.reexecNow()
		s.log.Printf("re-exec to serve: %v", err)
		s.reexec = false
	}
	s.ln.SetDeadline(time.Time{})
	s.parking.Store(false)
	s.unpark <- struct{}{}
	if s.reexec {
		s.armReexec(min(2*s.reexecDelay, reexecAfterMax))
	}
}

// park is the accept goroutine's side: it tells the loop that it accepts
// nothing, and waits to be let go.
func (s *server) park() {
	s.post(acceptParked{})
	select {
	case <-s.unpark:
	case <-s.quit:
	}
}

// idle reports whether everything the shim is doing can be handed over.
func (s *server) idle() bool {
	switch s.phase {
	case phaseCreated, phaseRunning, phasePausedCreated, phasePaused, phaseStopped:
	default:
		return false
	}
	if s.busy > 0 || s.deleting != nil || len(s.execs) > 0 || len(s.execIDs) > 0 {
		return false
	}
	if s.oom.held != nil || s.oom.unclaimed > 0 || s.oom.recheck {
		return false
	}
	if s.oom.ready != nil {
		select {
		case <-s.oom.ready:
		default:
			return false // the watch is still being set up
		}
	}
	if int(s.conns.Load()) != len(s.subs) {
		return false // a request in flight, or a client yet to send one
	}
	for sub := range s.subs {
		if sub.lagging.Load() || sub.pending.Load() > 0 {
			return false
		}
	}
	return true
}

// takeHanded sets up, as the serving image's loop starts, the subscribers
// the create image handed over.
func (s *server) takeHanded() {
	for _, hs := range s.handed {
		f := os.NewFile(uintptr(hs.FD), "subscriber")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			s.log.Printf("handoff: subscriber: %v", err)
			continue
		}
		conn, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		release, ok := s.takeSlot()
		if !ok {
			conn.Close()
			continue
		}
		sub := newSubscriber(conn)
		sub.queued, sub.release, sub.watch = hs.Queued, release, hs.Watch
		s.subs[sub] = true
		s.writers.Add(1)
		go s.write(sub)
		go s.serveConn(conn, release, sub)
	}
	s.handed = nil
}
