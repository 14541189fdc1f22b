package shim

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
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
// status (serveConn). Each exec'd process has a name, its exec id (the
// request's, or one the shim makes up), and two events: exec-started once
// it runs and exec-stopped with its exit.
//
// Under a supervisor crier exec forks the exec stage itself, so that the
// process is the child of whatever reaps above it, as with runc
// (docs/supervisors.md); it then adopts the process into the shim with a
// pidfd (adopt). The shim learns that exit as it learns a supervised
// init's: from the pidfd once the reaper has reaped (supervisedExit).

// execOps is the kernel side of exec, behind ops so the loop's tests fake it.
type execOps struct {
	// namespaces opens the init's namespaces; the loop calls it, while
	// the init's pid is certainly its own (not yet reaped).
	namespaces func() (*container.ExecNamespaces, error)
	// run forks the exec stage and returns the process's pid once it
	// has exec'd (blocking: off the loop).
	// sub are the sub-cgroups the process goes to (exec --cgroup), nil
	// for the container's own.
	run func(files []*os.File, ns *container.ExecNamespaces, sub map[string]string) (int, error)
	// watch calls notify, on another goroutine, once pid has exited.
	watch func(pid int, notify func())
	// wait reaps pid without blocking: ok is false while it runs.
	wait func(pid int) (ws unix.WaitStatus, ok bool)

	// For adopted processes, which are not the shim's children: pid is
	// the process's pid, watchReap calls notify at its exit and at its
	// reap, and exitOf reads its exit once reaped (supervisedExit).
	pid       func(fd int) (int, error)
	watchReap func(fd int, notify func())
	exitOf    func(fd int) (ws unix.WaitStatus, known, ok bool)
}

func containerExecOps(s *server) execOps {
	return execOps{
		namespaces: func() (*container.ExecNamespaces, error) { return container.OpenExecNamespaces(s.c.Pid) },
		run: func(files []*os.File, ns *container.ExecNamespaces, sub map[string]string) (int, error) {
			if err := checkExecConfig(files[0]); err != nil {
				return 0, err
			}
			if s.cfg != nil && s.cfg.InitPath != "" {
				// The create image may be crier's own process
				// (internal/prefork): the stage is crier-shim's.
				return s.c.ExecFrom(s.cfg.InitPath, files, ns, sub)
			}
			return s.c.Exec(files, ns, sub)
		},
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
		pid: pidfd.Pid,
		watchReap: func(fd int, notify func()) {
			if pidfd.NotifyReap(fd, func(error) { notify() }) != nil {
				notify() // look now, and report what is found
			}
		},
		exitOf: supervisedExit,
	}
}

// checkExecConfig refuses an exec whose config descriptor is not a
// regular file (crier exec sends a memfd). The exec stage reads the config
// to its end: from a pipe or socket whose other end came with the request,
// and so is held by the stage itself as one of the process's descriptors,
// or from an eventfd, it would wait for good, with the request's
// connection and descriptors. The type is read from st_mode itself: an
// anonymous inode (eventfd, epoll, pidfd, signalfd, timerfd) has no type
// bits there, which os.FileMode reads as a regular file (found by make
// fuzz-live).
func checkExecConfig(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return protocol.Errorf(protocol.ErrBadRequest, "exec: the config descriptor: fstat: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return protocol.Errorf(protocol.ErrBadRequest, "exec: the config descriptor is a %s, not a regular file (a memfd)", fileKind(int(f.Fd()), st.Mode))
	}
	return nil
}

// fileKind names the type of the file fd, whose st_mode is mode.
func fileKind(fd int, mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "pipe"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symbolic link"
	case 0:
		// An anonymous inode: its name says which ("anon_inode:[eventfd]").
		if name, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
			return name
		}
		return "anonymous inode"
	}
	return "file of type " + strconv.FormatUint(uint64(mode&unix.S_IFMT), 8)
}

// execProc is an exec'd process the loop has yet to reap, or, adopted,
// to see reaped.
type execProc struct {
	id   string
	exit chan protocol.Reply // for an exec with wait; buffered
	// pidfd is an adopted process's; nil for the shim's own children.
	pidfd *os.File
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
	if _, ok := s.step(execInput(r), r); !ok {
		closeFiles(files)
		return
	}
	sub, err := execSubCgroups(r.req.Cgroup)
	if err != nil {
		closeFiles(files)
		r.reply <- protocol.ErrorReply(err)
		return
	}
	if !s.claimExecID(r) {
		closeFiles(files)
		return
	}
	ns, err := s.ops.exec.namespaces()
	if err != nil {
		closeFiles(files)
		delete(s.execIDs, r.req.ExecID)
		r.reply <- protocol.ErrorReply(err)
		return
	}
	s.busy++
	s.execsStarting++
	go func() {
		pid, err := s.ops.exec.run(files, ns, sub)
		ns.Close()
		closeFiles(files)
		s.post(execDone{req: r, pid: pid, err: err})
	}()
}

// execSubCgroups parses an exec request's Cgroup (exec --cgroup); the
// container's cgroups check the paths when the stage is forked (Sub).
func execSubCgroups(packed string) (map[string]string, error) {
	args, err := protocol.SplitArgs(packed)
	if err != nil {
		return nil, err
	}
	sub, err := cgroup.ParseSubCgroups(args)
	if err != nil {
		return nil, protocol.Errorf(protocol.ErrBadRequest, "%v", err)
	}
	return sub, nil
}

func (s *server) execDone(m execDone) {
	s.busy--
	s.execsStarting--
	if m.err != nil {
		delete(s.execIDs, m.req.req.ExecID)
		m.req.reply <- protocol.ErrorReply(m.err)
		s.releaseHeldOOM()
		s.reap()
		return
	}
	p := &execProc{id: m.req.req.ExecID}
	if m.req.req.Wait {
		p.exit = make(chan protocol.Reply, 1)
		m.req.exit = p.exit
	}
	if s.execs == nil {
		s.execs = map[int]*execProc{}
	}
	s.execs[m.pid] = p
	s.log.Printf("exec: pid %d", m.pid)
	s.emit(protocol.Event{Type: protocol.EventExecStarted, Pid: m.pid, ExecID: p.id}, time.Now())
	s.releaseHeldOOM()
	s.ops.exec.watch(m.pid, func() { s.post(execMaybeExited{}) })
	m.req.reply <- protocol.Reply{OK: true, Pid: m.pid}
	s.reap()
}

// releaseHeldOOM publishes the oom event checkOOM held while execs were
// starting, once none is.
func (s *server) releaseHeldOOM() {
	if s.execsStarting == 0 {
		s.publishOOM(time.Now())
	}
}

// execInput is the table's input for an exec or adopt request.
func execInput(r *request) input {
	if r.req.IgnorePaused {
		return inExecIgnorePaused
	}
	return inExec
}

// adopt takes in a process that crier exec forked itself: the request's
// one descriptor is a pidfd of it, which the shim keeps until it has read
// the exit. It is legal where an exec is.
func (s *server) adopt(r *request) {
	files := r.files
	r.files = nil
	if len(files) != 1 {
		closeFiles(files)
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "adopt: %d descriptors came with the request, want 1 (a pidfd)", len(files)))
		return
	}
	if _, ok := s.step(execInput(r), r); !ok {
		closeFiles(files)
		return
	}
	fd := files[0]
	pid, err := s.ops.exec.pid(int(fd.Fd()))
	if err != nil {
		fd.Close()
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "adopt: %v", err))
		return
	}
	if p, ok := s.execs[pid]; ok {
		// Adopted again (or the shim's own child): a second entry
		// would replace the first, whose exec-started would never get
		// its exec-stopped, nor its exec id be freed.
		fd.Close()
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "adopt: pid %d is already exec %q of this container", pid, p.id))
		return
	}
	if !s.claimExecID(r) {
		fd.Close()
		return
	}
	if s.execs == nil {
		s.execs = map[int]*execProc{}
	}
	s.execs[pid] = &execProc{id: r.req.ExecID, pidfd: fd}
	s.log.Printf("exec: adopted pid %d", pid)
	s.emit(protocol.Event{Type: protocol.EventExecStarted, Pid: pid, ExecID: r.req.ExecID}, time.Now())
	s.ops.exec.watchReap(int(fd.Fd()), func() { s.post(execMaybeExited{}) })
	r.reply <- protocol.Reply{OK: true, Pid: pid}
}

// reapExecs collects the exits of the exec'd processes: each of the
// shim's own by its pid, each adopted one from its pidfd.
func (s *server) reapExecs() {
	for pid, p := range s.execs {
		if p.pidfd != nil {
			if ws, known, ok := s.ops.exec.exitOf(int(p.pidfd.Fd())); ok {
				s.execExited(pid, ws, known)
			}
		} else if ws, ok := s.ops.exec.wait(pid); ok {
			s.execExited(pid, ws, true)
		}
	}
}

// execExited records an exec'd process's exit: in the log, and in the
// second reply of an exec with wait. known is false when the kernel could
// not say (an adopted process, before Linux 6.15). (An exec-stopped event
// would be emitted here.)
func (s *server) execExited(pid int, ws unix.WaitStatus, known bool) {
	p, ok := s.execs[pid]
	if !ok {
		return
	}
	delete(s.execs, pid)
	delete(s.execIDs, p.id)
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	ev := protocol.Event{Type: protocol.EventExecStopped, Pid: pid, ExecID: p.id}
	if !known {
		s.log.Printf("exec: pid %d exited; its status is unknown (the kernel has no PIDFD_INFO_EXIT)", pid)
		ev.ExitUnknown = true
		s.emit(ev, time.Now())
		return
	}
	status, sig := ws.ExitStatus(), ""
	if ws.Signaled() {
		status, sig = 128+int(ws.Signal()), protocol.SignalName(ws.Signal())
		if ws.Signal() == unix.SIGKILL {
			// Its oom event, if any, first (oom.go).
			s.checkOOM(time.Now(), true)
			ev.OOMKilled = s.oomKilled(ws.Signal())
		}
	}
	s.log.Printf("exec: pid %d exited with status %d", pid, status)
	ev.ExitStatus, ev.Signal = &status, sig
	s.emit(ev, time.Now())
	if p.exit != nil {
		p.exit <- protocol.Reply{OK: true, ExitStatus: &status, Signal: sig}
	}
}

// claimExecID names the exec of r, with the request's exec id or, when it
// has none, one made up ("exec-N"), and reserves the name until the
// process has exited. An exec id in use, or not a valid name, is refused.
func (s *server) claimExecID(r *request) bool {
	if s.execIDs == nil {
		s.execIDs = map[string]bool{}
	}
	id := r.req.ExecID
	if id == "" {
		for id == "" || s.execIDs[id] {
			s.execSeq++
			id = "exec-" + strconv.FormatUint(s.execSeq, 10)
		}
		r.req.ExecID = id
	}
	if err := container.ValidateID(id); err != nil {
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "exec id %q: use letters, digits and _.+- and start with a letter or digit", id))
		return false
	}
	if s.execIDs[id] {
		r.reply <- protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "exec id %q is in use", id))
		return false
	}
	s.execIDs[id] = true
	return true
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
