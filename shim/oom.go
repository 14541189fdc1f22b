package shim

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
)

// OOM kills. The serving image watches the container's memory cgroup as
// its loop starts (off create's path, which has reported by then; start
// waits for the watch, so it is on before the container's process runs): an eventfd on cgroup v1, an inotify watch on v2 (cgroup.OOMWatch),
// waited on through the netpoller by one goroutine, which tells the loop to
// look and waits until it has. The loop alone reads the counters, so they
// are read in order with everything else it does:
//
//   - on a notification it publishes an oom event for what it finds, held
//     while the container is still created (an oom never precedes started);
//     a look that counts no new kill right after an oom event is folded
//     into the next one instead (oomState.held): the kernel may invoke
//     the OOM killer thousands of times while one victim exits (cgroup
//     v1, on some machines), and each invocation notifies;
//   - when it publishes stopped it looks first, synchronously: the kernel
//     counts an OOM kill before it sends the SIGKILL, so the kill of an
//     init is always seen, and its oom event published, before the
//     stopped it caused. That stopped has oomKilled when the init died of
//     SIGKILL and an OOM kill was counted that the shim has not seen the
//     init survive (oomState.unclaimed). An exec'd process's exit is
//     judged the same way. The init is seen to survive when it is neither
//     exiting nor sent a SIGKILL as the loop handles a notification, or,
//     as it handles any later message while kills are unclaimed (on v1,
//     whose notification precedes the kill, also the first message after
//     it): a `crier kill -9` after a child's OOM kill is no OOM kill of
//     the init.
//
// The watch ends with the init's exit (stopped).

// oomOps is the kernel side of the OOM watch, behind ops so that the
// loop's tests fake it.
type oomOps struct {
	// watch starts watching; notify is called on another goroutine when
	// an OOM may have happened, and the watch waits for it to return
	// before it waits again. An error leaves nothing to stop.
	watch func(notify func()) error
	// check reports, without blocking, what happened since the previous
	// check.
	check func() (cgroup.OOM, error)
	// stop ends the watch.
	stop func()
	// dying reports whether pid is on its way out (container.Dying).
	dying func(pid int) bool
	// handoff takes the watch apart for the serving image (idle.go):
	// its state, and the descriptors to keep across execve. The watch
	// resumes from s.oomHanded when that is set.
	handoff func() (cgroup.OOMWatchState, []int)
}

// oomState is the loop's view of the watch.
type oomState struct {
	on bool
	// ready is closed once the loop knows whether the watch is on.
	ready chan struct{}
	// held is an oom event not yet published: it came before started,
	// or it counts no new kill and the last event published is an oom
	// event (seq). It is published with the next oom event, and before
	// any stopped or exec-stopped.
	held *protocol.Event
	// seq is the seq of the last oom event published.
	seq uint64
	// unclaimed counts OOM kills no process's exit has been given yet,
	// and that may still be the init's or an exec'd process's.
	unclaimed uint64
	// recheck: a notification came before its kill was counted (cgroup
	// v1 notifies, then kills); the loop looks again at its next
	// message, by when the kill is done, to see who survived it.
	recheck bool
	// sentKill: the shim has sent the init a SIGKILL itself
	// (oomSendingKill); initOOM: an OOM kill was counted before it, as
	// the init was dying already.
	sentKill, initOOM bool
}

// oomMaybe tells the loop to look at the OOM watch; done is closed once
// it has. oomWatching tells it the watch is on (or why not).
type (
	oomMaybe    struct{ done chan struct{} }
	oomWatching struct{ err error }
)

func containerOOMOps(s *server) oomOps {
	var w *cgroup.OOMWatch
	var f *os.File // w's descriptor, duplicated onto the netpoller
	return oomOps{
		watch: func(notify func()) error {
			if s.c.Cgroup == nil {
				return cgroup.ErrNoMemoryCgroup
			}
			var err error
			if st := s.oomHanded; st != nil {
				w, s.oomHanded = cgroup.ResumeOOMWatch(*st), nil
			} else if w, err = s.c.Cgroup.WatchOOM(); err != nil {
				return err
			}
			if f, err = pollable(w.FD(), "oom"); err != nil {
				w.Close()
				w = nil
				return err
			}
			go waitReadable(f, notify)
			return nil
		},
		check: func() (cgroup.OOM, error) { return w.Check() },
		stop: func() {
			f.Close() // ends waitReadable
			w.Close()
		},
		dying:   container.Dying,
		handoff: func() (cgroup.OOMWatchState, []int) { return w.State() },
	}
}

// pollable returns a non-blocking duplicate of fd on the netpoller.
func pollable(fd int, name string) (*os.File, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return os.NewFile(uintptr(dup), name), nil
}

// waitReadable calls notify each time f polls readable, until f is
// closed. It never reads f: the loop drains it (check), in order, and
// notify returns only once it has, so a readable f is never reported
// twice for one notification.
func waitReadable(f *os.File, notify func()) {
	raw, err := f.SyscallConn()
	if err != nil {
		return
	}
	readable := func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		return err != nil || n > 0
	}
	for {
		if raw.Read(readable) != nil {
			return
		}
		notify()
	}
}

// watchOOM starts the OOM watch as the loop starts, off the loop: it
// takes a few hundred microseconds (cgroup v1: an eventfd registered on
// every level), which overlap the first requests. start waits for it
// (ready), so the watch is on before the container's process runs.
func (s *server) watchOOM() {
	ready := make(chan struct{})
	s.oom.ready = ready
	go func() {
		err := s.ops.oom.watch(func() {
			done := make(chan struct{})
			s.post(oomMaybe{done: done})
			select {
			case <-done:
			case <-s.quit:
			}
		})
		s.post(oomWatching{err: err})
		close(ready)
	}()
}

// watching records the outcome of watchOOM.
func (s *server) watching(err error) {
	switch {
	case err == nil:
		s.oom.on = true
	case errors.Is(err, cgroup.ErrNoMemoryCgroup):
	default:
		s.log.Printf("warning: no oom events: %v", err)
	}
}

// oomReady waits until the watch is on, or could not be (off the loop).
func (s *server) oomReady() {
	if s.oom.ready != nil {
		<-s.oom.ready
	}
}

// checkOOM looks at the watch and publishes an oom event for what it
// found, stamped at, or holds it while the container is not started yet,
// or, unless flush, when it counts no new kill and follows an oom event.
func (s *server) checkOOM(at time.Time, flush bool) cgroup.OOM {
	if !s.oom.on {
		return cgroup.OOM{}
	}
	o, err := s.ops.oom.check()
	if err != nil {
		s.log.Printf("warning: oom watch: %v", err)
		s.stopOOM()
		return cgroup.OOM{}
	}
	s.oom.unclaimed += o.Kills
	if o.Count > 0 {
		if s.oom.held == nil {
			s.oom.held = &protocol.Event{Type: protocol.EventOOM}
		}
		s.oom.held.Count += o.Count
		s.oom.held.Limit, s.oom.held.Cgroup = o.Limit, o.Cgroup
	}
	if !flush && o.Kills == 0 && s.oom.seq != 0 && s.oom.seq == s.rec.Seq {
		// The same OOM still at work, as far as anyone can tell.
		return o
	}
	if !flush && s.execsStarting > 0 {
		// An exec'd process being started may be what ran out of
		// memory: its exec-started comes first (execDone publishes
		// the event then), as it ran before it was killed.
		return o
	}
	s.publishOOM(at)
	return o
}

// publishOOM publishes the held oom event, stamped at, unless the
// container has yet to be announced started.
func (s *server) publishOOM(at time.Time) {
	switch s.phase.status() {
	case protocol.StatusCreating, protocol.StatusCreated:
		return
	}
	if ev := s.oom.held; ev != nil {
		s.oom.held = nil
		s.emit(*ev, at)
		s.oom.seq = s.rec.Seq
	}
}

// oomNotified handles a notification: the kills seen so far are nobody's
// exit when neither the init nor an exec'd process is dying, since the
// kernel sends the victim its SIGKILL right after counting the kill. An
// exec'd process being started may be a victim before the loop knows its
// pid: the kills are kept while one is.
func (s *server) oomNotified() {
	o := s.checkOOM(time.Now(), false)
	s.oom.recheck = o.Count > o.Kills
	if s.oom.unclaimed == 0 || s.exit != nil || s.execsStarting > 0 || s.ops.oom.dying(s.c.Pid) {
		return
	}
	for pid := range s.execs {
		if s.ops.oom.dying(pid) {
			return
		}
	}
	s.oom.unclaimed = 0
}

// oomRecheck looks again, before the loop handles a message, while kills
// are unclaimed or a notification came before its kill was counted
// (oomState.recheck): whoever is not dying by then survived them.
func (s *server) oomRecheck() {
	if s.oom.on && (s.oom.recheck || s.oom.unclaimed > 0) {
		s.oomNotified()
		s.oom.recheck = false
	}
}

// oomKilled reports whether the OOM killer killed a process that died of
// sig, once checkOOM has looked: that kill is then its, and no other
// exit's.
func (s *server) oomKilled(sig unix.Signal) bool {
	if sig != unix.SIGKILL || s.oom.unclaimed == 0 {
		return false
	}
	s.oom.unclaimed--
	return true
}

// oomSendingKill looks at the watch as the shim is about to send the init
// a SIGKILL of its own (a kill request, a forced delete). The kernel
// counts no OOM kill of a process that has a SIGKILL already (it only
// lets it use reserves to die), so a kill counted after this one is
// another process's, even when it comes before the init's exit: the
// kernel may kill a second process of the container while its first
// victim exits (cgroup v1), and a `crier kill -9` of the init then must
// not take that kill. Only a kill counted now, while the init is dying
// already, is the init's (initOOMKilled).
func (s *server) oomSendingKill() {
	if !s.oom.on || s.exit != nil || s.oom.sentKill {
		return
	}
	s.oomNotified()
	s.oom.sentKill = true
	s.oom.initOOM = s.oom.unclaimed > 0 && s.ops.oom.dying(s.c.Pid)
}

// initOOMKilled is oomKilled for the init's exit.
func (s *server) initOOMKilled(sig unix.Signal) bool {
	if !s.oom.sentKill {
		return s.oomKilled(sig)
	}
	if sig != unix.SIGKILL || !s.oom.initOOM || s.oom.unclaimed == 0 {
		return false
	}
	s.oom.unclaimed--
	return true
}

func (s *server) stopOOM() {
	if s.oom.on {
		s.oom.on = false
		s.ops.oom.stop()
	}
}
