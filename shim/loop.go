package shim

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// server is the loop's state. Every field is owned by the loop goroutine
// unless its comment says otherwise.
type server struct {
	cfg  *Config // the create image's, read-only; nil in the serving image
	log  *log.Logger
	ops  ops // read-only after newServer or Resume
	spec *specs.Spec
	dir  *statedir.Dir
	ln   *net.UnixListener

	rec   record
	phase phase                // the only state the table (phase.go) reads
	c     *container.Container // nil until created
	exit  *exitStatus          // the init's exit, once collected
	subs  map[*subscriber]bool

	// busy counts goroutines running child processes (create, hooks);
	// orphans are reaped with wait4(-1) only when it is zero, so that we
	// never steal a hook's exit status from os/exec.
	busy int
	// deleting is the delete request to answer once the container is
	// torn down.
	deleting *request
	// nsReleased is closed once the container's namespaces are let go
	// (releaseNamespaces).
	nsReleased chan struct{}
	// execs are the exec'd processes not yet reaped, by pid (exec.go);
	// execsStarting counts those being started, whose pids the loop
	// does not know yet.
	execs         map[int]*execProc
	execsStarting int
	// execIDs are the names of the exec'd processes, those being started
	// included, so that no two share one; execSeq numbers the names the
	// shim makes up.
	execIDs map[string]bool
	execSeq uint64
	// journal is the events' copy on disk (journal.go).
	journal journal
	// paused: the container has been paused at some time, so its
	// teardown thaws the cgroup (teardown.Remains.Thaw). Not the phase's
	// business: a container that stopped while frozen is in stopped.
	paused bool
	// oom is the OOM watch's state (oom.go).
	oom oomState

	// trimTimer fires once the clients have been quiet for a while;
	// untrimmed counts their requests since the last trim (see trim.go).
	trimTimer *time.Timer
	untrimmed int

	// heldFiles counts the descriptors the connections hold for
	// lines not yet complete (fdconn.go); the connections' goroutines
	// share it, not the loop.
	heldFiles fileBudget

	// slots bounds the connections served (limits.go); conns counts
	// them, subscribers included. Both are shared with the connections'
	// goroutines.
	slots *connSlots
	conns atomic.Int32

	// The create image re-executes into the serving image once it is
	// idle (idle.go): reexec says it is still to, and the rest is how.
	reexec      bool
	reexecTimer *time.Timer
	reexecDelay time.Duration
	busySince   time.Time     // when the re-exec first waited for a CPU
	parking     atomic.Bool   // the loop asked accept to park
	unpark      chan struct{} // accept waits on it while parked
	// onMain, when set, runs a function on the goroutine that called
	// serve, which holds the main thread: the re-exec
	// must come from there.
	onMain chan func()
	// handed is what the create image handed over that the loop sets up
	// as it starts: its subscribers, and its OOM watch (oom.go).
	handed    []handedSub
	oomHanded *cgroup.OOMWatchState
	oomOff    bool // the init had exited: no watch to start

	// msgs carries messages from every other goroutine to the loop;
	// quit is closed when the loop has finished.
	msgs    chan any
	quit    chan struct{}
	writers sync.WaitGroup // subscriber writers
	// answering counts the requests read and not answered yet: once the
	// loop has finished, each is told the container is gone before the
	// shim exits, rather than left to find its connection closed.
	answering pending
}

type exitStatus struct {
	Status  int
	Signal  unix.Signal
	Unknown bool // the process exited, with a status the shim cannot learn
	// OOMKilled: the OOM killer killed it (oom.go).
	OOMKilled bool
	At        time.Time
}

// record writes the exit into a state, as the stopped event carries it.
func (e *exitStatus) record(st *protocol.State) {
	if e.Unknown {
		st.ExitUnknown = true
	} else {
		status := e.Status
		st.ExitStatus = &status
	}
	if e.Signal != 0 {
		st.Signal = protocol.SignalName(e.Signal)
	}
	st.OOMKilled = e.OOMKilled
	st.ExitedAt = protocol.FormatTime(e.At)
}

// Messages to the loop.
type (
	request struct {
		req   protocol.Request
		conn  *net.UnixConn
		reply chan protocol.Reply
		// written is closed once the reply is on the wire, so that the
		// shim does not exit under the answer to the final delete.
		written chan struct{}
		sub     *subscriber // set by the loop for a successful subscribe
		// watch makes the subscriber a relayed event's (relay_event.go).
		watch *relayWatch
		// files came with an exec request; exit, set by the loop for
		// an exec with wait, carries its second reply (exec.go).
		files []*os.File
		exit  chan protocol.Reply
		// own: the loop's own delete (deleteWhenStopped), whose reply
		// also carries the init's exit status.
		own bool
	}
	startDone struct {
		req *request
		err error
	}
	poststartDone struct {
		req *request
		err error
	}
	tornDown    struct{ err error }
	unsubscribe struct{ sub *subscriber }
	trimDue     struct{}
)

// loop serves the created container until it is deleted.
func (s *server) loop() error {
	s.msgs = make(chan any)
	s.quit = make(chan struct{})
	exits := s.ops.exits()
	s.subs = map[*subscriber]bool{}
	s.slots = newConnSlots()
	s.unpark = make(chan struct{})
	if !s.oomOff {
		s.watchOOM()
	}
	s.takeHanded()
	go s.accept()
	// Started first: a container started at once may have run and
	// exited already (container.Config.StartAtOnce), and an exit reaped
	// while starting is held until the start is recorded, where one
	// reaped before would stop the container and refuse the start.
	s.startAtOnce()
	// The container may have exited before SIGCHLD was being watched.
	s.reap()
	s.deleteWhenStopped()
	s.reexecSoon(nil)
	for s.phase != phaseDeleted {
		var m any
		select {
		case <-exits:
			s.reap()
		case m = <-s.msgs:
			s.oomRecheck()
			s.handle(m)
		}
		s.deleteWhenStopped()
		s.reexecSoon(m)
	}
	s.shutdown()
	return nil
}

func (s *server) handle(m any) {
	switch m := m.(type) {
	case *request:
		if s.exit == nil && (s.rec.Supervised || s.rec.Adopted) && m.req.Op != protocol.OpHello && m.req.Op != protocol.OpSubscribe {
			// Another process reaps the container, and may act on
			// the exit (a supervisor deleting right after its reap)
			// before its wake-up of the pidfd's watcher reaches
			// the loop: look now. When the shim is the parent no
			// one else can see the exit first.
			s.reap()
		}
		s.request(m)
		s.trimSoon()
	case startDone:
		s.started(m)
	case poststartDone:
		s.busy--
		s.poststartDone(m)
		s.reap()
	case tornDown:
		s.busy--
		if m.err != nil {
			s.log.Printf("delete: %v", m.err)
		}
		s.step(inTornDown, nil)
	case unsubscribe:
		s.drop(m.sub)
	case caughtUp:
		s.catchUp(m.sub)
	case trimDue:
		s.trim()
	case execDone:
		s.execDone(m)
	case execMaybeExited:
		s.reap()
	case oomMaybe:
		s.oomNotified()
		close(m.done)
	case oomWatching:
		s.watching(m.err)
	case reexecDue:
		s.reexecIfIdle()
	case acceptParked:
		s.parked()
	}
}

// step moves the phase as the table says input in does, and reports
// whether it did. A request the phase does not allow is answered with a
// refusal; an event the phase cannot have is logged and changes nothing.
func (s *server) step(in input, r *request) (cell, bool) {
	c, ok := s.lookup(in, r)
	if ok {
		s.enter(c.to)
	}
	return c, ok
}

// lookup is step without the move, for a request whose work must succeed
// before the phase changes (pause, resume): the table's cell, with the
// refusal answered.
func (s *server) lookup(in input, r *request) (cell, bool) {
	c := transitions[s.phase][in]
	switch {
	case c.refuse != allowed:
		r.reply <- protocol.ErrorReply(&refusal{id: s.rec.ID, phase: s.phase, req: in, why: c.refuse})
		return c, false
	case c.to == noPhase:
		s.log.Printf("internal error: %v in phase %v ignored", in, s.phase)
		return c, false
	}
	return c, true
}

// then handles the input that a move queues behind it: an exit held while
// start was in flight, once start's outcome has been recorded.
func (s *server) then(c cell) {
	if c.then != inNone {
		s.step(c.then, nil)
	}
}

// enter moves to phase p. A change of status is announced, and the phases
// that start work start it.
func (s *server) enter(p phase) {
	from := s.phase
	s.phase = p
	if st := p.status(); st != from.status() {
		s.announce(from.status(), st)
	}
	switch p {
	case phaseDeleting:
		s.runTeardown()
	case phaseDeleted:
		s.finishDelete()
	}
}

// announce records a new status and emits its event: state file first, so
// that a subscriber woken by the event reads the new state.
func (s *server) announce(from, st protocol.Status) {
	ev, at := protocol.Event{Pid: s.c.Pid}, time.Now()
	switch {
	case from == protocol.StatusPaused && st != protocol.StatusStopped:
		ev.Type = protocol.EventResumed
	case st == protocol.StatusPaused:
		ev.Type = protocol.EventPaused
	case st == protocol.StatusCreated:
		ev.Type = protocol.EventCreated
	case st == protocol.StatusRunning:
		ev.Type = protocol.EventStarted
	case st == protocol.StatusStopped:
		// An OOM kill is counted before its victim gets the SIGKILL:
		// looking now publishes the oom event before the stopped it
		// caused, and tells whether it was the init's.
		s.checkOOM(s.exit.At, true)
		s.stopOOM()
		if !s.exit.Unknown {
			s.exit.OOMKilled = s.initOOMKilled(s.exit.Signal)
		}
		s.ops.release()
		// Stamped in order (emit), and the state file says the same.
		if s.exit.At.Before(s.rec.LastAt) {
			s.exit.At = s.rec.LastAt
		}
		ev.Type, ev.ExitStatus, at = protocol.EventStopped, &s.exit.Status, s.exit.At
		if s.exit.Unknown {
			ev.ExitStatus, ev.ExitUnknown = nil, true
		}
		if s.exit.Signal != 0 {
			ev.Signal = protocol.SignalName(s.exit.Signal)
		}
		ev.OOMKilled = s.exit.OOMKilled
	}
	s.saveState()
	s.emit(ev, at)
	if st == protocol.StatusStopped {
		s.releaseNamespaces()
	}
	if st == protocol.StatusRunning {
		// An oom event held while the container was created.
		s.publishOOM(at)
	}
}

func (s *server) emit(ev protocol.Event, at time.Time) {
	// An exit reaped while start was still in flight happened before we
	// recorded started; events are stamped in order all the same.
	if at.Before(s.rec.LastAt) {
		at = s.rec.LastAt
	}
	s.rec.LastAt = at
	s.rec.Seq++
	ev.Seq = s.rec.Seq
	ev.ID = s.rec.ID
	ev.Timestamp = protocol.FormatTime(at)
	if s.rec.Buffer == nil || s.rec.Buffer[ev.Type] {
		s.rec.History = appendHistory(s.rec.History, ev)
	}
	line, err := protocol.Marshal(ev)
	if err != nil {
		return
	}
	// On disk before anyone hears of it.
	s.journalEvent(ev, line)
	for sub := range s.subs {
		sub.send(ev.Seq, line)
	}
}

// reap collects the container process's exit, and orphans' when the shim is
// their subreaper.
func (s *server) reap() {
	// Around again, once, when the orphans' reaper met the init's
	// exit, which came after its wait.
	for range 2 {
		if s.exit == nil {
			if ws, known, ok := s.ops.wait(); ok {
				s.exited(ws, known)
			}
		}
		s.reapExecs()
		if s.busy != 0 || !s.ops.reapOrphans() {
			return
		}
	}
}

func (s *server) exited(ws unix.WaitStatus, known bool) {
	s.exit = &exitStatus{At: time.Now(), Status: ws.ExitStatus(), Unknown: !known}
	if known && ws.Signaled() {
		s.exit.Signal = ws.Signal()
		s.exit.Status = 128 + int(s.exit.Signal)
	}
	s.step(inExited, nil)
}

func (s *server) request(r *request) {
	switch r.req.Op {
	case protocol.OpHello:
		r.reply <- protocol.Reply{OK: true, Protocol: protocol.Version}
	case protocol.OpState:
		st := s.state().State
		r.reply <- protocol.Reply{OK: true, State: &st}
	case protocol.OpSubscribe:
		s.subscribe(r)
	case protocol.OpStart:
		s.start(r)
	case protocol.OpKill:
		s.kill(r)
	case protocol.OpDelete:
		s.delete(r)
	case protocol.OpExec:
		s.exec(r)
	case protocol.OpAdopt:
		s.adopt(r)
	case protocol.OpPause:
		s.pause(r)
	case protocol.OpResume:
		s.resume(r)
	default:
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "unknown op %q", r.req.Op))
	}
}

// startAtOnce starts the container the shim has just created, when its
// Config asks for it (StartAtOnce): the request is the loop's own, and its
// reply goes to that channel.
func (s *server) startAtOnce() {
	if s.cfg == nil || s.cfg.StartAtOnce == nil {
		return
	}
	reply := s.cfg.StartAtOnce
	s.cfg.StartAtOnce = nil
	s.start(&request{req: protocol.Request{Op: protocol.OpStart}, reply: reply})
}

// deleteWhenStopped deletes the container once it has stopped, when its
// Config asks for it (DeleteWhenStopped): the request is the loop's own,
// and its reply goes to that channel. A delete that came first (another's
// `delete --force`, say) is left to finish: finishDelete answers the
// loop's own with it.
func (s *server) deleteWhenStopped() {
	if s.cfg == nil || s.cfg.DeleteWhenStopped == nil || s.deleting != nil ||
		s.phase.status() != protocol.StatusStopped {
		return
	}
	reply := s.cfg.DeleteWhenStopped
	s.cfg.DeleteWhenStopped = nil
	s.delete(&request{req: protocol.Request{Op: protocol.OpDelete}, reply: reply, own: true})
}

func (s *server) start(r *request) {
	if _, ok := s.step(inStart, r); ok {
		go func() {
			s.oomReady()
			s.post(startDone{req: r, err: s.ops.start()})
		}()
	}
}

func (s *server) started(m startDone) {
	in := inStarted
	if m.err != nil {
		in = inStartFailed
	}
	c, ok := s.step(in, nil)
	if !ok {
		return
	}
	switch {
	case m.err != nil:
		if errors.Is(m.err, container.ErrNoProcess) {
			// Nothing can ever run in it: let it stop rather than
			// sit in created for good.
			s.send(unix.SIGKILL, false)
		}
		err := m.err
		if !errors.Is(err, protocol.ErrExecFailed) {
			// An execve failure is the process's own error, in
			// the words runc's init gives it (`exec PATH: ...`).
			err = fmt.Errorf("start: %w", err)
		}
		m.req.reply <- protocol.ErrorReply(err)
	case s.spec.Hooks == nil || len(s.spec.Hooks.Poststart) == 0:
		// Nothing to wait for: answer now, before an exit held
		// back during start is written out below.
		m.req.reply <- protocol.Reply{OK: true}
	default:
		s.busy++
		st := s.c.HookState(protocol.StatusRunning)
		go func() { s.post(poststartDone{req: m.req, err: s.ops.poststart(st)}) }()
	}
	s.then(c)
}

func (s *server) kill(r *request) {
	sig := unix.Signal(r.req.Signal)
	in := inKill
	if sig == unix.SIGKILL && s.rec.SharedPidNS {
		in = inKillCgroup
	}
	frozen := s.phase.frozen()
	if _, ok := s.step(in, r); !ok {
		return
	}
	var err error
	if in == inKillCgroup {
		err = s.killCgroup(frozen)
	} else {
		err = s.send(sig, r.req.All)
	}
	if err != nil {
		r.reply <- protocol.ErrorReply(fmt.Errorf("kill: %w", err))
		return
	}
	if sig == unix.SIGKILL && s.phase.frozen() {
		// As runc: on cgroup v1 a frozen task dies only once thawed.
		if err := s.ops.freeze(false); err != nil {
			r.reply <- protocol.ErrorReply(fmt.Errorf("kill: SIGKILL sent, but the container stays frozen: %w", err))
			return
		}
		s.step(inThawed, nil)
	}
	r.reply <- protocol.Reply{OK: true}
}

// poststartDone answers start once its poststart hooks have run. One that
// failed fails start, and the container is killed: runtime-spec 1.3
// (runtime.md, lifecycle step 9) has the runtime generate an error and
// stop the container, as runc does; the rest of the hooks do not run.
// The kill goes to every process of the cgroup, as a forced delete's, and
// the init's exit then moves the container to stopped.
func (s *server) poststartDone(m poststartDone) {
	if m.err == nil {
		m.req.reply <- protocol.Reply{OK: true}
		return
	}
	s.log.Printf("start: %v; killing the container", m.err)
	s.send(unix.SIGKILL, true)
	s.send(unix.SIGKILL, false)
	m.req.reply <- protocol.ErrorReply(m.err)
}

// releaseNamespaces lets the container's namespaces go, which the
// container held so that the init's exit was heard of sooner (container.
// Container.HoldNamespaces): the kernel's teardown of them, an expedited
// RCU grace period among it, runs on a goroutine of its own once the
// subscribers' writers have had the P (runtime.Gosched: the serving image
// has one), beside what the loop does next (a delete, whose teardown
// waits for it before the poststop hooks).
func (s *server) releaseNamespaces() {
	runtime.Gosched()
	done := make(chan struct{})
	s.nsReleased = done
	go func() {
		// This kernel wakes the subscriber on the waker's CPU: let it
		// run before the teardown takes this one.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		s.ops.releaseNamespaces()
		close(done)
	}()
}

// send signals the container's init, or with all every process of its
// cgroup. Before a SIGKILL it settles which OOM kills counted so far were
// the init's (oomSendingKill).
func (s *server) send(sig unix.Signal, all bool) error {
	if sig == unix.SIGKILL {
		s.oomSendingKill()
	}
	return s.ops.signal(sig, all)
}

// killCgroup sends SIGKILL to every process of the container's cgroup,
// the init or not. As runc does, the cgroup is frozen meanwhile (unless
// paused already; the caller thaws it then), so that no process forks a
// child past the list, nor exits and has its pid reused before it is
// signalled; a freeze that fails is logged and the kill goes on.
func (s *server) killCgroup(frozen bool) error {
	if !frozen {
		if err := s.ops.freeze(true); err != nil {
			s.log.Printf("kill: %v; killing unfrozen", err)
		} else {
			defer func() {
				if err := s.ops.freeze(false); err != nil {
					s.log.Printf("kill: %v", err)
				}
			}()
		}
	}
	return s.send(unix.SIGKILL, true)
}

// pause freezes the container, and moves it to paused once every process
// is frozen. The freeze is bounded (cgroup.freezeTimeout) and done on the
// loop: nothing else may change the container while it runs.
func (s *server) pause(r *request) {
	c, ok := s.lookup(inPause, r)
	if !ok {
		return
	}
	s.paused = true
	if err := s.ops.freeze(true); err != nil {
		r.reply <- protocol.ErrorReply(fmt.Errorf("pause: %w", err))
		return
	}
	s.enter(c.to)
	r.reply <- protocol.Reply{OK: true}
}

// resume thaws the container, and moves it back to what it was paused
// from.
func (s *server) resume(r *request) {
	c, ok := s.lookup(inResume, r)
	if !ok {
		return
	}
	if err := s.ops.freeze(false); err != nil {
		r.reply <- protocol.ErrorReply(fmt.Errorf("resume: %w", err))
		return
	}
	s.enter(c.to)
	r.reply <- protocol.Reply{OK: true}
}

func (s *server) delete(r *request) {
	in := inDelete
	if r.req.Force {
		in = inForceDelete
	}
	frozen := s.phase.frozen()
	c, ok := s.step(in, r)
	if !ok {
		return
	}
	s.deleting = r
	if c.to.killing() {
		// Forced: kill everything; the init's exit moves the
		// delete on to the teardown. A paused container is thawed
		// after the SIGKILL, so that its processes die rather than
		// run on.
		s.send(unix.SIGKILL, true)
		s.send(unix.SIGKILL, false)
		if frozen {
			if err := s.ops.freeze(false); err != nil {
				s.log.Printf("delete: %v", err)
			}
		}
	}
}

// runTeardown removes the container's remains off the loop: the cgroup,
// the poststop hooks, the state directory.
func (s *server) runTeardown() {
	s.busy++
	go func() { s.post(tornDown{err: s.ops.teardown()}) }()
}

// finishDelete answers the delete once everything is gone; the loop then
// ends.
func (s *server) finishDelete() {
	s.ln.Close()
	s.emit(protocol.Event{Type: protocol.EventDeleted}, time.Now())
	s.deliverAwaited()
	if s.deleting.own {
		s.deleting.reply <- s.ownDeleteReply()
		return
	}
	s.deleting.reply <- protocol.Reply{OK: true}
	// The loop's own delete that another's came before: the container
	// is gone all the same, and a foreground run ends with its status
	// however it went, as runc's does (137 after another's `delete
	// --force`).
	if s.cfg != nil && s.cfg.DeleteWhenStopped != nil {
		s.cfg.DeleteWhenStopped <- s.ownDeleteReply()
		s.cfg.DeleteWhenStopped = nil
	}
}

// ownDeleteReply is the reply to the loop's own delete: it carries the
// init's exit status, when known.
func (s *server) ownDeleteReply() protocol.Reply {
	rep := protocol.Reply{OK: true}
	if s.exit != nil && !s.exit.Unknown {
		status := s.exit.Status
		rep.ExitStatus = &status
	}
	return rep
}

// state is the state file's content now.
func (s *server) state() *State {
	st := s.rec.state(s.phase, s.c, s.spec)
	if s.exit != nil && st.Status == protocol.StatusStopped {
		s.exit.record(&st.State)
	}
	return st
}

func (s *server) saveState() {
	if err := s.dir.WriteState(s.state()); err != nil {
		s.log.Printf("state file: %v", err)
	}
}
