package shim

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/statedir"
)

// A shim lives as long as its container, mostly idle, so its resident
// memory matters more than anything it does once. Creating the container
// (parsing the config, forking, cgroups, hooks) leaves the Go heap and its
// metadata far larger than serving needs, and a Go heap does not shrink
// back. So once the container is created the shim execs itself afresh in
// serve mode, which keeps its pid, its children and the descriptors handed
// over, and starts from a small heap.

// handoff is what the serving image needs, written to a memfd (see
// handoff.go for the format): the record, and what this image holds of
// the container and the socket.
type handoff struct {
	Rec       record
	ListenFD  int
	Container *container.Handoff
	// Phase is the phase to serve in: where the create image was when it
	// became idle (idle.go), whatever the container was in for a shim
	// that comes back (recover.go), with the init's Exit if it was
	// collected.
	Phase phase
	Exit  *exitStatus
	// Paused: the container has been paused at some time (server.paused).
	Paused bool
	// ExecSeq is the last number the shim made up an exec id with.
	ExecSeq uint64
	// Subs are the subscribers, OOM the OOM watch if it is on (idle.go);
	// OOMOff says it is off for good (the init has exited).
	Subs   []handedSub
	OOM    *cgroup.OOMWatchState
	OOMOff bool
}

// reexecNow execs the shim binary in serve mode, handing over what the
// loop has (idle.go). It returns only on failure.
func (s *server) reexecNow() error {
	fd, undo, err := s.writeHandoff()
	if err != nil {
		return err
	}
	// We only come back if the exec failed, and then serve from this
	// image: its children (hooks) must not inherit what was handed over.
	defer undo()
	// --root and --id are only for people reading ps; the handoff says
	// it all.
	args := []string{"crier-shim", "--serve", strconv.Itoa(fd), "--root", s.rec.Root, "--id", s.rec.ID}
	if heal := s.healPath(); heal != "" {
		args = append(args, "--heal", heal)
	}
	// The environment configures the serving image's Go runtime from its
	// very start, sooner than main could: one P from the outset (more
	// would start threads, and fill per-P caches, that then stay), and no
	// heap profiling (its first sample would allocate the bucket table
	// for good). Hooks, the only programs the shim starts from here on,
	// get their environment from the config.
	path := "/proc/self/exe"
	if s.cfg != nil && s.cfg.ReexecPath != "" {
		path = s.cfg.ReexecPath
	}
	if s.onMain != nil {
		errc := make(chan error, 1)
		s.onMain <- func() { errc <- execServing(path, args) }
		err = <-errc
	} else {
		err = execServing(path, args)
	}
	unix.Close(fd)
	return fmt.Errorf("exec %s: %w", path, err)
}

// healPath is the binary the serving image is to heal (Config.HealPath),
// or "".
func (s *server) healPath() string {
	if s.cfg == nil {
		return ""
	}
	if s.cfg.HealPath != HealSelf {
		return s.cfg.HealPath
	}
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

// execServing execs the serving image with transparent huge pages off for
// the process (prctl PR_SET_THP_DISABLE, which execve keeps): the image
// imports internal/hugeheap, which would otherwise put the start of its
// heap on huge pages, and it must stay small. The serving image turns THP
// back on once its runtime has started (cmd/shim), so that nothing it
// starts inherits the setting. It returns only on failure, with THP on.
func execServing(path string, args []string) error {
	unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
	err := unix.Exec(path, args, servingEnv())
	unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0)
	return err
}

// servingEnv is the serving image's environment.
func servingEnv() []string {
	return append(os.Environ(), "GOMAXPROCS=1", "GODEBUG=memprofilerate=0")
}

// writeHandoff writes the handoff to a memfd, and makes it and every
// descriptor it names survive execve. undo makes those close-on-exec
// again, and closes the duplicates, for when the exec fails.
func (s *server) writeHandoff() (fd int, undo func(), err error) {
	ch, err := s.c.Handoff()
	if err != nil {
		return -1, nil, err
	}
	var kept []int      // made to survive execve
	var dups []*os.File // duplicates made for the handoff
	undo = func() {
		for _, fd := range kept {
			unix.CloseOnExec(fd)
		}
		for _, f := range dups {
			f.Close()
		}
	}
	for _, fd := range append([]int{ch.PidFD, ch.SyncFD}, ch.Held...) {
		if fd >= 0 {
			kept = append(kept, fd)
		}
	}
	fail := func(err error) (int, func(), error) {
		undo()
		return -1, nil, err
	}
	// keep duplicates f's descriptor so that it survives execve; the
	// duplicate is close-on-exec like every descriptor Go opens.
	keep := func(f *os.File, err error) (int, error) {
		if err != nil {
			return -1, err
		}
		dups = append(dups, f)
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
			return -1, os.NewSyscallError("fcntl F_SETFD", err)
		}
		return int(f.Fd()), nil
	}
	ch.Spec = servingSpec(s.spec)
	h := handoff{Rec: s.rec, Container: ch, Phase: s.phase, Exit: s.exit, Paused: s.paused, ExecSeq: s.execSeq}
	if h.ListenFD, err = keep(s.ln.File()); err != nil {
		return fail(err)
	}
	for sub := range s.subs {
		fd, err := keep(sub.conn.File())
		if err != nil {
			return fail(err)
		}
		h.Subs = append(h.Subs, handedSub{FD: fd, Queued: sub.queued, Watch: sub.watch})
	}
	switch {
	case s.oom.on && s.ops.oom.handoff != nil:
		st, fds := s.ops.oom.handoff()
		for _, fd := range fds {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return fail(os.NewSyscallError("fcntl F_SETFD", err))
			}
			kept = append(kept, fd)
		}
		h.OOM = &st
	case s.exit != nil:
		h.OOMOff = true
	}
	fd, err = unix.MemfdCreate("crier-shim-handoff", 0)
	if err != nil {
		return fail(os.NewSyscallError("memfd_create", err))
	}
	if _, err := unix.Pwrite(fd, h.marshal(), 0); err != nil {
		unix.Close(fd)
		return fail(os.NewSyscallError("pwrite", err))
	}
	return fd, undo, nil
}

// servingSpec keeps only what serving needs of the config. Decoding the
// whole config again would make encoding/json cache its layout for every
// runtime-spec type, which stays resident for the shim's life.
func servingSpec(spec *specs.Spec) *specs.Spec {
	out := &specs.Spec{Version: spec.Version, Root: spec.Root, Annotations: spec.Annotations}
	if spec.Process != nil {
		out.Process = &specs.Process{} // start only asks whether there is one
	}
	if h := spec.Hooks; h != nil && (len(h.Poststart) > 0 || len(h.Poststop) > 0) {
		out.Hooks = &specs.Hooks{Poststart: h.Poststart, Poststop: h.Poststop}
	}
	// Start sends a notifying filter's listener there (and exec, of a
	// process the shim forks).
	if l := spec.Linux; l != nil && l.Seccomp != nil && l.Seccomp.ListenerPath != "" {
		out.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{
			ListenerPath: l.Seccomp.ListenerPath, ListenerMetadata: l.Seccomp.ListenerMetadata,
		}}
	}
	return out
}

// Resume serves a container that an earlier image of this process created
// and handed over through the memfd at fd (see reexec).
func Resume(fd int) error {
	h, err := readHandoff(fd)
	if err != nil {
		return err
	}
	s, err := resume(h, containerOps)
	if err != nil {
		return err
	}
	return s.loop()
}

// readHandoff reads and closes the memfd that reexec wrote.
func readHandoff(fd int) (*handoff, error) {
	f := os.NewFile(uintptr(fd), "handoff")
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	f.Close()
	if err != nil {
		return nil, err
	}
	h, err := unmarshalHandoff(b)
	if err == nil && h.Container == nil {
		err = errors.New("no container")
	}
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return h, nil
}

// resume rebuilds the server that h describes, with the ops newOps makes.
func resume(h *handoff, newOps func(*server) ops) (*server, error) {
	lnFile := os.NewFile(uintptr(h.ListenFD), "listener")
	l, err := net.FileListener(lnFile)
	lnFile.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff: listener: %w", err)
	}
	logger := log.New(io.Discard, "", 0)
	if h.Rec.LogPath != "" {
		if lf, err := os.OpenFile(h.Rec.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			logger = log.New(lf, "crier-shim["+h.Rec.ID+"]: ", log.LstdFlags|log.Lmicroseconds)
		}
	}
	c := container.Resume(h.Container)
	ln := l.(*net.UnixListener)
	ln.SetUnlinkOnClose(false)
	s := &server{
		log: logger, spec: c.Spec, dir: statedir.At(h.Rec.Root, h.Rec.ID), ln: ln,
		rec: h.Rec, phase: h.Phase, c: c, exit: h.Exit,
		paused: h.Paused, execSeq: h.ExecSeq,
		handed: h.Subs, oomHanded: h.OOM, oomOff: h.OOMOff,
	}
	s.ops = newOps(s)
	if s.rec.Subreaper {
		s.ops.becomeSubreaper()
	}
	if s.rec.Adopted {
		// A shim that came back (recover.go): the state file names it
		// from now on. It cannot know whether the container was ever
		// paused: its teardown thaws, to be sure.
		s.paused = true
		s.saveState()
		s.log.Printf("took over container %s (pid %d) from its dead shim, at seq %d", s.rec.ID, c.Pid, s.rec.Seq)
	}
	return s, nil
}
