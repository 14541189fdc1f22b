package shim

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/teardown"
)

// ops is everything the loop asks of the kernel about its container: the
// seam between the loop's rules and the processes, signals, cgroups and
// hooks they act on. newServer and Resume set it (containerOps); the unit
// tests set functions of their own, and so drive the loop without root or
// a real container. The loop calls them on its goroutine, except start,
// poststart and teardown, which block and so run in goroutines of their
// own.
type ops struct {
	// create makes the container (container.Create): the init waits in
	// it to be started.
	create func(*container.Config) (*container.Container, error)
	// forkAhead forks the init before the shim claims the ID, where
	// that may come first (container.ForkAhead); create goes on from it.
	forkAhead func(*container.Config) (*container.Forked, error)
	// detachStdio points the shim's own stdio at /dev/null once the
	// container has its copies.
	detachStdio func()
	// becomeSubreaper makes the shim the reaper of the container's
	// orphans, for a container without a pid namespace of its own.
	becomeSubreaper func()
	// start lets the init exec the container's process (container.Start).
	start func() error
	// signal sends sig to the init, or with all to every process in the
	// container's cgroup.
	signal func(sig unix.Signal, all bool) error
	// wait collects the init's exit without blocking: ok is false while
	// the init runs; known is false when the exit came but its status
	// cannot be learnt (supervisedExit).
	wait func() (ws unix.WaitStatus, known, ok bool)
	// reapOrphans collects the exits of the orphans the shim is the
	// subreaper of; the loop calls it only while none of its own
	// children (hooks) runs, whose exits os/exec must get.
	reapOrphans func() (initExited bool)
	// exits returns a channel that receives when a child may have exited.
	exits func() <-chan struct{}
	// release closes the container's descriptors once the init has exited.
	release func()
	// releaseNamespaces lets the container's namespaces go once the
	// stopped event is out (releaseNamespaces).
	releaseNamespaces func()
	// poststart runs the config's poststart hooks.
	poststart func(st *specs.State) error
	// teardown kills what is left in the cgroup, removes it, runs the
	// poststop hooks and removes the state directory (teardown.Run).
	teardown func() error
	// freeze freezes (true) or thaws (false) the container's cgroup,
	// and returns once it is done.
	freeze func(frozen bool) error
	// exec runs and reaps exec'd processes (exec.go).
	exec execOps
	// oom watches the container's memory cgroup for OOM kills (oom.go).
	oom oomOps
	// cpuBusy reports whether the machine's CPUs are all taken, which
	// puts off the re-exec (idle.go).
	cpuBusy func() bool
}

// containerOps are the ops that act on s.c, the container s creates (or
// took over) as a child of this process.
func containerOps(s *server) ops {
	return ops{
		create:          container.Create,
		forkAhead:       container.ForkAhead,
		cpuBusy:         cpuBusy,
		detachStdio:     detachStdio,
		becomeSubreaper: func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
		start:           func() error { return s.c.Start() },
		signal:          func(sig unix.Signal, all bool) error { return s.c.Signal(sig, all) },
		wait: func() (unix.WaitStatus, bool, bool) {
			if s.rec.Supervised || s.rec.Adopted {
				return supervisedExit(s.c.PidFD)
			}
			var ws unix.WaitStatus
			pid, err := unix.Wait4(s.c.Pid, &ws, unix.WNOHANG, nil)
			return ws, true, err == nil && pid == s.c.Pid
		},
		reapOrphans: func() bool {
			if !s.rec.Subreaper {
				return false
			}
			for {
				// Looked at before it is reaped: the init may have
				// exited since the loop's wait for it, and its status
				// is its own wait's (reap), not an orphan's.
				pid := exitedChild()
				if pid <= 0 {
					return false
				}
				if pid == s.c.Pid {
					return true
				}
				var ws unix.WaitStatus
				if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got != pid || err != nil {
					return false
				}
				// An exec'd process that exited since reapExecs.
				s.execExited(pid, ws, true)
			}
		},
		exits:             func() <-chan struct{} { return childExits(s.c, s.rec.Subreaper, s.rec.Supervised || s.rec.Adopted) },
		release:           func() { s.c.Close() },
		releaseNamespaces: func() { s.c.ReleaseNamespaces() },
		poststart: func(st *specs.State) error {
			return container.RunHooks(s.spec, container.HookPoststart, st)
		},
		teardown: func() error { return teardown.Run(s.remains()) },
		freeze: func(frozen bool) error {
			switch {
			case s.c.Cgroup == nil:
				return fmt.Errorf("container %s has no cgroup to freeze", s.rec.ID)
			case frozen:
				return s.c.Cgroup.Freeze()
			}
			return s.c.Cgroup.Thaw()
		},
		exec: containerExecOps(s),
		oom:  containerOOMOps(s),
	}
}

// remains is what the teardown removes, from what the shim recorded.
func (s *server) remains() *teardown.Remains {
	r := &teardown.Remains{
		Cgroup: s.c.Cgroup,
		State:  s.c.HookState(protocol.StatusStopped),
		Dir:    s.dir,
		Warn:   warnTo(s.log),
		// The shim exits after its delete: nobody could try the
		// cgroup again.
		MustFinish: true,
		Thaw:       s.paused,
		Released:   s.nsReleased,
	}
	if h := s.spec.Hooks; h != nil {
		r.Poststop = h.Poststop
	}
	return r
}

func warnTo(l *log.Logger) func(error) {
	return func(err error) { l.Printf("warning: %v", err) }
}

// childExits returns a channel that receives when a child may have exited.
//
// When the shim is a subreaper it must hear of every child, so it takes
// SIGCHLD. Otherwise its only long-lived child is the container process,
// and its pidfd becomes readable when that exits: waiting on it through the
// netpoller costs no thread, where signal.Notify keeps one (and its stacks)
// for the shim's whole life.
//
// A supervised container is not the shim's child: no SIGCHLD comes, and
// its status can be read only once the supervisor has reaped it, so the
// watch goes on to the reap (supervisedExit).
func childExits(c *container.Container, subreaper, supervised bool) <-chan struct{} {
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGINT, unix.SIGTERM)
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	if supervised {
		// On an error the loop looks once, and reports what it finds.
		if pidfd.NotifyReap(c.PidFD, func(error) { notify() }) != nil {
			notify()
		}
		return ch
	}
	watchSIGCHLD := func() {
		sigs := make(chan os.Signal, 16)
		signal.Notify(sigs, unix.SIGCHLD)
		go func() {
			for range sigs {
				notify()
			}
		}()
	}
	if !subreaper && c.PidFD >= 0 {
		err := pidfd.Notify(c.PidFD, func(err error) {
			if err != nil {
				// The watch ended without the exit: hear it the
				// other way, after looking once in case it came.
				watchSIGCHLD()
			}
			notify()
		})
		if err == nil {
			return ch
		}
	}
	watchSIGCHLD()
	return ch
}

// supervisedExit reads the exit of an init that a supervisor parents
// (docs/supervisors.md). The kernel keeps the wait status for a pidfd's
// holder once the parent has reaped (PIDFD_INFO_EXIT, Linux 6.15); before
// the reap there is none yet, so ok stays false until then. Where the
// kernel cannot say (no PIDFD_GET_INFO before 6.13: at the exit; no exit
// information before 6.15: at the reap), known is false: the status is
// unknown, never guessed.
func supervisedExit(fd int) (ws unix.WaitStatus, known, ok bool) {
	exited, err := pidfd.Exited(fd)
	if err == nil && !exited {
		return 0, false, false
	}
	// Reaped first: a reap between the two calls must not be taken for
	// a kernel without the exit information.
	reaped, rerr := pidfd.Reaped(fd)
	ws, known, ierr := pidfd.ExitStatus(fd)
	switch {
	case known:
		return ws, true, true
	case err != nil || rerr != nil || ierr != nil || reaped:
		return 0, false, true
	}
	return 0, false, false
}

// exitedChild returns the pid of a child that has exited, without reaping
// it, or 0 when none has.
func exitedChild() int {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return 0
	}
	// si_pid follows si_signo, si_errno and si_code, at the union's
	// alignment: a pointer's.
	const ptr = unsafe.Sizeof(uintptr(0))
	const off = (3*4 + ptr - 1) &^ (ptr - 1)
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), off)))
}
