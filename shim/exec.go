package shim

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
)

// crier exec. Without a supervisor an exec'd process is the shim's child,
// like the init: the exec request brings the process's config and
// descriptors (SCM_RIGHTS, fdconn.go), the exec stage is forked off the
// loop (container.Container.Exec), and the loop keeps the exec'd pids and
// reaps each by its pid, never with wait4(-1) while one is pending, so it
// never takes the init's exit or an exec's from the other. An exec does not
// move the container's phase (phase.go has its column: where it is legal).
//
// An exec with wait gets a second reply on its connection with the exit
// status (serveConn). Exec'd processes have no events yet: execExited is
// where an exec-stopped event would be emitted.

// execOps is the kernel side of exec, behind ops so the loop's tests fake it.
type execOps struct {
	// namespaces opens the init's namespaces; the loop calls it, while
	// the init's pid is certainly its own (not yet reaped).
	namespaces func() (*container.ExecNamespaces, error)
	// run forks the exec stage and returns the process's pid once it
	// has exec'd (blocking: off the loop).
	run func(files []*os.File, ns *container.ExecNamespaces) (int, error)
	// watch calls notify, on another goroutine, once pid has exited.
	watch func(pid int, notify func())
	// wait reaps pid without blocking: ok is false while it runs.
	wait func(pid int) (ws unix.WaitStatus, ok bool)
}

func containerExecOps(s *server) execOps {
	return execOps{
		namespaces: func() (*container.ExecNamespaces, error) { return container.OpenExecNamespaces(s.c.Pid) },
		run:        func(files []*os.File, ns *container.ExecNamespaces) (int, error) { return s.c.Exec(files, ns) },
		watch: func(pid int, notify func()) {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				notify() // look now; SIGCHLD or the next reap finds it otherwise
				return
			}
			defer unix.Close(fd)
			if pidfd.Notify(fd, func(error) { notify() }) != nil {
				notify()
			}
		},
		wait: func(pid int) (unix.WaitStatus, bool) {
			var ws unix.WaitStatus
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			return ws, err == nil && got == pid
		},
	}
}

// execProc is an exec'd process the loop has yet to reap.
type execProc struct {
	exit chan protocol.Reply // for an exec with wait; buffered
}

// Messages to the loop about execs.
type (
	execDone struct {
		req *request
		pid int
		err error
	}
	execMaybeExited struct{}
)

func (s *server) exec(r *request) {
	files := r.files
	r.files = nil
	if len(files) != r.req.Files {
		closeFiles(files)
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "exec: %d descriptors came with the request, it says %d", len(files), r.req.Files))
		return
	}
	in := inExec
	if r.req.IgnorePaused {
		in = inExecIgnorePaused
	}
	if _, ok := s.step(in, r); !ok {
		closeFiles(files)
		return
	}
	ns, err := s.ops.exec.namespaces()
	if err != nil {
		closeFiles(files)
		r.reply <- protocol.ErrorReply(err)
		return
	}
	s.busy++
	go func() {
		pid, err := s.ops.exec.run(files, ns)
		ns.Close()
		closeFiles(files)
		s.post(execDone{req: r, pid: pid, err: err})
	}()
}

func (s *server) execDone(m execDone) {
	s.busy--
	if m.err != nil {
		m.req.reply <- protocol.ErrorReply(m.err)
		s.reap()
		return
	}
	p := &execProc{}
	if m.req.req.Wait {
		p.exit = make(chan protocol.Reply, 1)
		m.req.exit = p.exit
	}
	if s.execs == nil {
		s.execs = map[int]*execProc{}
	}
	s.execs[m.pid] = p
	s.log.Printf("exec: pid %d", m.pid)
	s.ops.exec.watch(m.pid, func() { s.post(execMaybeExited{}) })
	m.req.reply <- protocol.Reply{OK: true, Pid: m.pid}
	s.reap()
}

// reapExecs collects the exits of the exec'd processes, each by its pid.
func (s *server) reapExecs() {
	for pid := range s.execs {
		if ws, ok := s.ops.exec.wait(pid); ok {
			s.execExited(pid, ws)
		}
	}
}

// execExited records an exec'd process's exit: in the log, and in the
// second reply of an exec with wait. (An exec-stopped event would be
// emitted here.)
func (s *server) execExited(pid int, ws unix.WaitStatus) {
	p, ok := s.execs[pid]
	if !ok {
		return
	}
	delete(s.execs, pid)
	status, sig := ws.ExitStatus(), ""
	if ws.Signaled() {
		status, sig = 128+int(ws.Signal()), protocol.SignalName(ws.Signal())
	}
	s.log.Printf("exec: pid %d exited with status %d", pid, status)
	if p.exit != nil {
		p.exit <- protocol.Reply{OK: true, ExitStatus: &status, Signal: sig}
	}
}

// waitExecExit sends an exec's second reply, its exit status, once the
// loop has it. It reports whether the connection can go on.
func (s *server) waitExecExit(r *request) bool {
	select {
	case reply := <-r.exit:
		return s.reply(r.conn, reply)
	case <-s.quit:
		select {
		case reply := <-r.exit:
			return s.reply(r.conn, reply)
		default:
		}
		s.reply(r.conn, protocol.ErrorReply(fmt.Errorf("exec: container %q was deleted before the process's exit was collected", s.rec.ID)))
		return false
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
