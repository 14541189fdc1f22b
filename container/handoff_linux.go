package container

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
)

// Handoff describes a created Container so that a new image of its parent
// process (after execve, which keeps children and descriptors) can take it
// over with Resume.
type Handoff struct {
	ID     string         `json:"id"`
	Bundle string         `json:"bundle"`
	Rootfs string         `json:"rootfs"`
	Spec   *specs.Spec    `json:"spec"`
	Pid    int            `json:"pid"`
	PidFD  int            `json:"pidfd"`
	SyncFD int            `json:"syncfd"`
	Cgroup *cgroup.Cgroup `json:"cgroup,omitempty"`
	// Held are descriptors of the namespaces the container holds
	// (Container.held).
	Held []int `json:"held,omitempty"`
}

// Handoff returns c's description and makes its descriptors survive
// execve. c must not be used afterwards in this image.
func (c *Container) Handoff() (*Handoff, error) {
	h := &Handoff{
		ID: c.ID, Bundle: c.Bundle, Rootfs: c.Rootfs, Spec: c.Spec,
		Pid: c.Pid, PidFD: c.PidFD, SyncFD: -1, Cgroup: c.Cgroup,
	}
	if c.sync != nil {
		h.SyncFD = int(c.sync.f.Fd())
	}
	for _, f := range c.held {
		h.Held = append(h.Held, int(f.Fd()))
	}
	for _, fd := range append([]int{h.PidFD, h.SyncFD}, h.Held...) {
		if fd < 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return nil, os.NewSyscallError("fcntl F_SETFD", err)
		}
	}
	return h, nil
}

// Resume takes over a container described by a Handoff from an earlier
// image of this process. The descriptors become close-on-exec again.
func Resume(h *Handoff) *Container {
	c := &Container{
		ID: h.ID, Bundle: h.Bundle, Rootfs: h.Rootfs, Spec: h.Spec,
		Pid: h.Pid, PidFD: h.PidFD, Cgroup: h.Cgroup,
	}
	if h.PidFD >= 0 {
		unix.CloseOnExec(h.PidFD)
	}
	for _, fd := range h.Held {
		unix.CloseOnExec(fd)
		c.held = append(c.held, os.NewFile(uintptr(fd), "ns"))
	}
	if h.SyncFD >= 0 {
		unix.CloseOnExec(h.SyncFD)
		// Non-blocking, so that waiting for init goes through the
		// netpoller rather than parking a thread.
		unix.SetNonblock(h.SyncFD, true)
		c.sync = newSyncConn(os.NewFile(uintptr(h.SyncFD), "sync-parent"))
	}
	return c
}
