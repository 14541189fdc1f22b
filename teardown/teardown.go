package teardown

import (
	"os"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/statedir"
)

// Remains is what a stopped container leaves behind, as recorded at create.
type Remains struct {
	// Cgroup is the container's cgroups; nil when none were recorded.
	Cgroup *cgroup.Cgroup
	// Poststop are the hooks to run once the cgroup is gone.
	Poststop []specs.Hook
	// State is the OCI state the poststop hooks read on their stdin.
	State *specs.State
	// Dir is the container's state directory; Run removes and closes it.
	Dir *statedir.Dir
	// Warn receives the errors that do not stop the teardown: poststop
	// hooks that failed (a warning, in the spec's word).
	Warn func(error)
	// MustFinish is for a caller that cannot try again (the shim, which
	// exits after its delete): a cgroup that cannot be removed is only
	// warned about, and the hooks and the directory's removal go on.
	// Otherwise it stops the teardown with its error, before the hooks,
	// and the directory stays for the next delete to try again.
	MustFinish bool
	// Thaw: the cgroup may have been left frozen (the container was
	// paused), so it is thawed after the SIGKILL, or its processes would
	// not die (cgroup v1). Reading the freezer costs some 50 µs here, so
	// only a container that was paused, or one whose past is not known
	// (a dead shim's), asks for it.
	Thaw bool
	// Released, when set, is closed once the container's namespaces are
	// gone: the shim lets them go beside the teardown
	// (container.Container.ReleaseNamespaces). The poststop hooks run, and
	// Run returns, only after, so that they and the caller find nothing
	// of the container's left, its mounts included.
	Released <-chan struct{}
}

// Run tears the container's remains down, in this order: SIGKILL to every
// process left in the cgroup (thawed with Thaw, so that they die), the
// cgroup removed, the poststop hooks run, the state directory
// removed.
func Run(r *Remains) error {
	if cg := r.Cgroup; cg != nil {
		SignalCgroup(cg, unix.SIGKILL)
		if r.Thaw {
			// A cgroup without a freezer, or gone already, has
			// nothing to thaw.
			cg.Thaw()
		}
		if err := cg.Destroy(); err != nil {
			if !r.MustFinish {
				r.Dir.Close()
				return err
			}
			r.Warn(err)
		}
	}
	if r.Released != nil {
		<-r.Released
	}
	if len(r.Poststop) > 0 {
		spec := &specs.Spec{Hooks: &specs.Hooks{Poststop: r.Poststop}}
		if err := container.RunHooks(spec, container.HookPoststop, r.State); err != nil {
			r.Warn(err)
		}
	}
	return r.Dir.Remove()
}

// SignalCgroup sends sig to every process in cg, through pidfds, so that a
// pid that exits and is reused while the list is read is never signalled:
// a pidfd is opened for each member, the members are read again, and only
// those still there are signalled. This process is never signalled: the
// thread that forks a container's init is in its cgroups for a moment
// (cgroup.ForkInto).
func SignalCgroup(cg *cgroup.Cgroup, sig unix.Signal) error {
	pids, err := cg.Pids()
	if err != nil {
		return err
	}
	self := os.Getpid()
	// A container that has exited has nothing left in its cgroup, most
	// often: nothing to signal, nor to read again.
	if !slices.ContainsFunc(pids, func(pid int) bool { return pid != self }) {
		return nil
	}
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		if pid == self {
			continue
		}
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds[pid] = fd
		}
	}
	still, err := cg.Pids()
	if err != nil {
		return err
	}
	for pid, fd := range fds {
		if slices.Contains(still, pid) {
			unix.PidfdSendSignal(fd, sig, nil, 0)
		}
	}
	return nil
}
