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
// flags, existing ones (those with a path) joined by the forking thread.
type nsPlan struct {
	sys   *syscall.SysProcAttr
	joins []specs.LinuxNamespace
	// unshareCgroup: init unshares the cgroup namespace itself once the
	// parent has put it in its cgroups, so the namespace is rooted there.
	unshareCgroup bool
	// newTime: the forking thread unshares a time namespace for its
	// children and sets its offsets before forking.
	newTime     bool
	timeOffsets map[string]specs.LinuxTimeOffset
}

func planNamespaces(l *specs.Linux) (*nsPlan, error) {
	p := &nsPlan{sys: &syscall.SysProcAttr{}}
	var newUser bool
	for _, ns := range l.Namespaces {
		if ns.Path != "" {
			p.joins = append(p.joins, ns)
			continue
		}
		if ns.Type == specs.UserNamespace {
			newUser = true
		}
		if ns.Type == specs.CgroupNamespace {
			p.unshareCgroup = true
			continue
		}
		if ns.Type == specs.TimeNamespace {
			p.newTime, p.timeOffsets = true, l.TimeOffsets
			continue
		}
		p.sys.Cloneflags |= cloneFlags[ns.Type]
	}
	if newUser {
		if len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0 {
			return nil, errors.New("linux.namespaces: a new user namespace needs uidMappings and gidMappings")
		}
		p.sys.UidMappings = idMaps(l.UIDMappings)
		p.sys.GidMappings = idMaps(l.GIDMappings)
		p.sys.GidMappingsEnableSetgroups = true
		// Become root of the new namespace before exec, or exec would
		// drop the capabilities init needs to build the container.
		p.sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		if p.unshareCgroup {
			// Init's capabilities are in the new user namespace,
			// not the one that owns its cgroup namespace, so it
			// could not unshare later: create it with the rest.
			p.sys.Cloneflags |= unix.CLONE_NEWCGROUP
			p.unshareCgroup = false
		}
	}
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
// reuse a thread in foreign namespaces.
func inNamespaces(joins []specs.LinuxNamespace, fork func() error) error {
	if len(joins) == 0 {
		return fork()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- joinThenFork(joins, fork)
	}()
	return <-errc
}

func joinThenFork(joins []specs.LinuxNamespace, fork func() error) error {
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
