package shim

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// server is the loop's state. Every field is owned by the loop goroutine
// unless its comment says otherwise.
type server struct {
	cfg       *Config // read-only after newServer
	spec      *specs.Spec
	dir       *statedir.Dir
	ln        *net.UnixListener
	createdAt time.Time
	shimStart uint64
	owner     string

	status   protocol.Status
	c        *container.Container // nil until created
	pidStart uint64
	seq      uint64
	lastAt   time.Time // timestamp of the last event
	history  []protocol.Event
	subs     map[*subscriber]bool

	// starting is true while a start goroutine runs; exit holds an exit
	// reaped meanwhile, so that stopped never precedes started.
	starting bool
	exit     *exitStatus
	reaped   bool
	// busy counts goroutines running child processes (create, hooks);
	// orphans are reaped with wait4(-1) only when it is zero, so that we
	// never steal a hook's exit status from os/exec.
	busy int
	// deleting holds the pending delete request, if any; once it is set the
	// loop finishes the delete as soon as the container is stopped.
	deleting  *request
	deleteRun bool
	subreaper bool
	done      bool

	// trimTimer fires once the clients have been quiet for a while;
	// untrimmed counts their requests since the last trim (see trim.go).
	trimTimer *time.Timer
	untrimmed int

	// msgs carries messages from every other goroutine to the loop;
	// quit is closed when the loop has finished.
	msgs    chan any
	quit    chan struct{}
	writers sync.WaitGroup // subscriber writers
}

type exitStatus struct {
	status int
	signal unix.Signal
	at     time.Time
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
	}
	startDone struct {
		req *request
		err error
	}
	poststartDone struct{ req *request }
	deleteDone    struct{}
	unsubscribe   struct{ sub *subscriber }
	trimDue       struct{}
)

// loop serves the created container until it is deleted.
func (s *server) loop() error {
	s.msgs = make(chan any)
	s.quit = make(chan struct{})
	exits := s.childExits()
	s.subs = map[*subscriber]bool{}
	go s.accept()
	// The container may have exited before SIGCHLD was being watched.
	s.reap()
	for !s.done {
		select {
		case <-exits:
			s.reap()
		case m := <-s.msgs:
			s.handle(m)
		}
	}
	s.shutdown()
	return nil
}

func (s *server) handle(m any) {
	switch m := m.(type) {
	case *request:
		s.request(m)
		s.trimSoon()
	case startDone:
		s.started(m)
	case poststartDone:
		s.busy--
		m.req.reply <- protocol.Reply{OK: true}
		s.reap()
	case deleteDone:
		s.busy--
		s.finishDelete()
	case unsubscribe:
		s.drop(m.sub)
	case trimDue:
		s.trim()
	}
}

// transition records a new status and emits its event: state file first,
// so that a subscriber woken by the event reads the new state.
func (s *server) transition(status protocol.Status, ev protocol.Event) {
	s.status = status
	s.saveState()
	s.emit(ev, time.Now())
}

func (s *server) emit(ev protocol.Event, at time.Time) {
	// An exit reaped while start was still in flight happened before we
	// recorded started; events are stamped in order all the same.
	if at.Before(s.lastAt) {
		at = s.lastAt
	}
	s.lastAt = at
	s.seq++
	ev.Seq = s.seq
	ev.ID = s.cfg.ID
	ev.Timestamp = protocol.FormatTime(at)
	if s.cfg.Buffer == nil || s.cfg.Buffer[ev.Type] {
		s.history = append(s.history, ev)
	}
	line, err := protocol.Marshal(ev)
	if err != nil {
		return
	}
	for sub := range s.subs {
		if !sub.send(line) {
			delete(s.subs, sub)
		}
	}
}

// reap collects the container process's exit, and orphans' when the shim is
// their subreaper.
func (s *server) reap() {
	if s.c != nil && !s.reaped {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(s.c.Pid, &ws, unix.WNOHANG, nil)
		if err == nil && pid == s.c.Pid {
			s.reaped = true
			s.exited(ws)
		}
	}
	if s.subreaper && s.busy == 0 {
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func (s *server) exited(ws unix.WaitStatus) {
	e := &exitStatus{at: time.Now(), status: ws.ExitStatus()}
	if ws.Signaled() {
		e.signal = ws.Signal()
		e.status = 128 + int(e.signal)
	}
	if s.starting {
		s.exit = e
		return
	}
	s.stopped(e)
}

func (s *server) stopped(e *exitStatus) {
	s.c.Close()
	s.status = protocol.StatusStopped
	s.saveState()
	ev := protocol.Event{Type: protocol.EventStopped, Pid: s.c.Pid, ExitStatus: &e.status}
	if e.signal != 0 {
		ev.Signal = protocol.SignalName(e.signal)
	}
	s.emit(ev, e.at)
	if s.deleting != nil && !s.deleteRun {
		s.runDelete()
	}
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
	default:
		r.reply <- protocol.ErrorReply(fmt.Errorf("%w: unknown op %q", protocol.ErrBadRequest, r.req.Op))
	}
}

func invalidState(format string, args ...any) protocol.Reply {
	return protocol.ErrorReply(fmt.Errorf("%w: "+format, append([]any{protocol.ErrInvalidState}, args...)...))
}

func (s *server) start(r *request) {
	switch {
	case s.starting:
		r.reply <- invalidState("container %s is already starting", s.cfg.ID)
		return
	case s.status != protocol.StatusCreated || s.deleting != nil:
		r.reply <- invalidState("container %s is %s, not created", s.cfg.ID, s.status)
		return
	}
	s.starting = true
	go func() { s.post(startDone{req: r, err: s.c.Start()}) }()
}

func (s *server) started(m startDone) {
	s.starting = false
	if m.err != nil {
		if errors.Is(m.err, container.ErrNoProcess) {
			// Nothing can ever run in it: let it stop rather than
			// sit in created for good.
			s.c.Signal(unix.SIGKILL, false)
		}
		m.req.reply <- protocol.ErrorReply(fmt.Errorf("start: %w", m.err))
	} else {
		s.transition(protocol.StatusRunning, protocol.Event{Type: protocol.EventStarted, Pid: s.c.Pid})
		if s.spec.Hooks == nil || len(s.spec.Hooks.Poststart) == 0 {
			// Nothing to wait for: answer now, before an exit held
			// back during start is written out below.
			m.req.reply <- protocol.Reply{OK: true}
			s.stopHeldExit()
			return
		}
		s.busy++
		st := s.c.HookState(protocol.StatusRunning)
		go func() {
			if err := container.RunHooks(s.spec, container.HookPoststart, st); err != nil {
				s.cfg.Log.Printf("warning: %v", err)
			}
			s.post(poststartDone{req: m.req})
		}()
	}
	s.stopHeldExit()
}

// stopHeldExit handles an exit that came while start was in flight.
func (s *server) stopHeldExit() {
	if s.exit != nil {
		e := s.exit
		s.exit = nil
		s.stopped(e)
	}
}

func (s *server) kill(r *request) {
	if s.status != protocol.StatusCreated && s.status != protocol.StatusRunning {
		r.reply <- invalidState("container %s is %s, not running", s.cfg.ID, s.status)
		return
	}
	if s.reaped {
		r.reply <- invalidState("container %s is stopped", s.cfg.ID)
		return
	}
	if err := s.c.Signal(unix.Signal(r.req.Signal), r.req.All); err != nil {
		r.reply <- protocol.ErrorReply(fmt.Errorf("kill: %w", err))
		return
	}
	r.reply <- protocol.Reply{OK: true}
}

func (s *server) delete(r *request) {
	switch {
	case s.deleting != nil:
		r.reply <- invalidState("container %s is already being deleted", s.cfg.ID)
		return
	case s.status == protocol.StatusCreating:
		r.reply <- invalidState("container %s is still being created", s.cfg.ID)
		return
	case s.status != protocol.StatusStopped && !r.req.Force:
		r.reply <- invalidState("container %s is %s: stop it first or use --force", s.cfg.ID, s.status)
		return
	}
	s.deleting = r
	if s.status == protocol.StatusStopped && !s.starting {
		s.runDelete()
		return
	}
	// Forced: kill everything; stopped() resumes the delete once the
	// init process has been reaped.
	s.c.Signal(unix.SIGKILL, true)
	s.c.Signal(unix.SIGKILL, false)
}

// runDelete removes the container's resources, then runs the poststop
// hooks, off the loop.
func (s *server) runDelete() {
	s.deleteRun = true
	s.busy++
	c, st := s.c, s.c.HookState(protocol.StatusStopped)
	go func() {
		if c.Cgroup != nil {
			c.Signal(unix.SIGKILL, true)
			if err := c.Cgroup.Destroy(); err != nil {
				s.cfg.Log.Printf("delete: %v", err)
			}
		}
		if err := container.RunHooks(s.spec, container.HookPoststop, st); err != nil {
			s.cfg.Log.Printf("warning: %v", err)
		}
		s.post(deleteDone{})
	}()
}

func (s *server) finishDelete() {
	s.ln.Close()
	if err := s.dir.Remove(); err != nil {
		s.cfg.Log.Printf("delete: %v", err)
	}
	s.emit(protocol.Event{Type: protocol.EventDeleted}, time.Now())
	s.deleting.reply <- protocol.Reply{OK: true}
	s.done = true
}
