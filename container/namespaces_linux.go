package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var cloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

// nsPlan is how the init stage gets its namespaces: new ones through clone
// flags, existing ones (those with a path) joined by the forking thread, or
// for user and time namespaces by init's pre-runtime entry point.
type nsPlan struct {
	sys   *syscall.SysProcAttr
	joins []specs.LinuxNamespace
	// preRuntime are joined by stage one of a two-stage init (see
	// nsenter_linux.go), which then forks stage two with stage2: the clone
	// flags of the new namespaces, so that a joined user namespace owns
	// them. sys then creates nothing.
	preRuntime []specs.LinuxNamespace
	stage2     *syscall.SysProcAttr
	// unshareCgroup: init unshares the cgroup namespace itself once the
	// parent has put it in its cgroups, so the namespace is rooted there.
	unshareCgroup bool
	// newTime: the forking thread unshares a time namespace for its
	// children and sets its offsets before forking.
	newTime     bool
	timeOffsets map[string]specs.LinuxTimeOffset
}

func planNamespaces(l *specs.Linux) (*nsPlan, error) {
	p := &nsPlan{preRuntime: preRuntimeNamespaces(l)}
	attr := &syscall.SysProcAttr{}
	var newUser, joinUser bool
	for _, ns := range l.Namespaces {
		switch {
		case ns.Path != "" && ns.Type == specs.UserNamespace:
			joinUser = true
		case ns.Path != "" && ns.Type == specs.TimeNamespace:
		case ns.Path != "":
			p.joins = append(p.joins, ns)
		case ns.Type == specs.UserNamespace:
			newUser = true
			attr.Cloneflags |= cloneFlags[ns.Type]
		case ns.Type == specs.CgroupNamespace:
			p.unshareCgroup = true
		case ns.Type == specs.TimeNamespace:
			p.newTime, p.timeOffsets = true, l.TimeOffsets
		default:
			attr.Cloneflags |= cloneFlags[ns.Type]
		}
	}
	if newUser {
		if len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0 {
			return nil, errors.New("linux.namespaces: a new user namespace needs uidMappings and gidMappings")
		}
		attr.UidMappings = idMaps(l.UIDMappings)
		attr.GidMappings = idMaps(l.GIDMappings)
		attr.GidMappingsEnableSetgroups = true
	}
	if newUser || joinUser {
		// Become root of the user namespace before exec, or exec would
		// drop the capabilities init needs to build the container.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if p.unshareCgroup && len(p.preRuntime) > 0 {
		// Stage two is forked once stage one is in the cgroups: its
		// namespace, made with the rest, is rooted there. Any other
		// init unshares it itself (initConfig.NewCgroupNS), as it may be
		// forked before it is in its cgroups (Cgroup.Staged): a
		// namespace made by the clone would be rooted in the shim's.
		// In a new user namespace init is root of it, with the
		// CAP_SYS_ADMIN there that unshare asks for.
		attr.Cloneflags |= unix.CLONE_NEWCGROUP
		p.unshareCgroup = false
	}
	if len(p.preRuntime) == 0 {
		p.sys = attr
		return p, nil
	}
	// Stage two is the shim's child, not stage one's.
	attr.Cloneflags |= unix.CLONE_PARENT
	p.stage2, p.sys = attr, &syscall.SysProcAttr{}
	return p, nil
}

func idMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

// inNamespaces runs fork on a throwaway OS thread that has joined the
// namespaces in joins, so that the child it forks starts in them. The thread
// is never unlocked: the Go runtime discards it when fn returns rather than
// reuse a thread in foreign namespaces (or cgroups: Cgroup.ForkInto).
func inNamespaces(joins []specs.LinuxNamespace, fork func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- joinThenFork(joins, fork)
	}()
	return <-errc
}

func joinThenFork(joins []specs.LinuxNamespace, fork func() error) error {
	if len(joins) == 0 {
		return fork()
	}
	// Threads share their filesystem context, and setns into a mount
	// namespace refuses a shared one: give this thread its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare CLONE_FS", err)
	}
	for _, ns := range joins {
		if err := setns(ns); err != nil {
			return err
		}
	}
	return fork()
}

func setns(ns specs.LinuxNamespace) error {
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s namespace: %w", ns.Type, &os.PathError{Op: "open", Path: ns.Path, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, int(cloneFlags[ns.Type])); err != nil {
		return fmt.Errorf("%s namespace: %w", ns.Type, &os.PathError{Op: "setns", Path: ns.Path, Err: err})
	}
	return nil
}

// netNSAhead is a network namespace made ahead of the fork. Making one
// is the dearest part of cloning init (a few hundred microseconds, more
// than all the other namespaces together), and it needs nothing from the
// container: the thread that decodes the config makes it first (SpecLoad),
// while the shim claims the ID and Create makes the cgroups, and the
// forking thread joins it rather than create it.
type netNSAhead struct {
	fd chan int // the namespace, or -1 if there is none to join
}

func newNetNSAhead() *netNSAhead {
	return &netNSAhead{fd: make(chan int, 1)}
}

// wantNetNSAhead reports whether l asks for a new network namespace that
// can be made ahead: one that no new or joined user namespace must own,
// and with no time namespace, whose forking path is its own.
func wantNetNSAhead(l *specs.Linux) bool {
	newNet := false
	for _, ns := range l.Namespaces {
		switch ns.Type {
		case specs.UserNamespace, specs.TimeNamespace:
			return false
		case specs.NetworkNamespace:
			if ns.Path != "" || newNet {
				return false
			}
			newNet = true
		}
	}
	return newNet
}

// make makes the namespace, or gives -1 if want is false. The calling
// thread must be locked and must end with its goroutine: it is left in
// the new namespace.
func (n *netNSAhead) make(want bool) {
	fd := -1
	if want && unix.Unshare(unix.CLONE_NEWNET) == nil {
		// Failing here only means the clone makes it instead.
		if f, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			fd = f
		}
	}
	n.fd <- fd
}

// use has plan join the namespace instead of creating one, if it was
// made. The caller keeps it open until the fork is done (close).
func (n *netNSAhead) use(p *nsPlan) {
	fd := <-n.fd
	n.fd <- fd
	if fd < 0 || p.sys.Cloneflags&unix.CLONE_NEWNET == 0 {
		return
	}
	p.sys.Cloneflags &^= unix.CLONE_NEWNET
	// First: a joined mount namespace would have the path looked up in
	// its /proc.
	join := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: fmt.Sprintf("/proc/self/fd/%d", fd)}
	p.joins = append([]specs.LinuxNamespace{join}, p.joins...)
}

// close drops the shim's hold on the namespace; once init has joined it,
// init's is what keeps it.
func (n *netNSAhead) close() {
	if n == nil {
		return
	}
	if fd := <-n.fd; fd >= 0 {
		unix.Close(fd)
	}
}
