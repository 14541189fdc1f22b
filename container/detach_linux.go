package container

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"
)

// Detaching the shim at birth (crier-shim --detach).
//
// Whether the process that ran `crier create` is a child subreaper (conmon,
// containerd-shim-runc-v2) cannot be asked of it, but an orphan learns it:
// the kernel hands an orphan to its nearest living subreaper ancestor, else
// to its pid namespace's init. So for "crier-shim --detach" the pre-runtime
// entry (nsenter_linux_amd64.s) forks before the Go runtime starts, which is
// cheap and safe while the process has one thread, and the parent exits at
// once: the child is an orphan from birth. Its new parent is the nearest
// subreaper above `crier create`, and the CLI passes its own parent's pid to
// compare it with.

// preRuntimeDetach is where preRuntimeEntry reports on --detach, before the
// Go runtime starts (so, like preRuntimeJoin, not ordinary package state:
// nothing in Go writes it).
var preRuntimeDetach struct {
	parent int32 // the pid this process was forked from; 0 if not detached
	errno  int32 // the fork's error, when it failed (no child then)
}

// Reparented returns the parent this process was reparented to, once the
// pre-runtime entry has detached it (see above); ok is false when it did
// not (a binary built without the entry point, or the fork failed), and
// the process is then still its starter's child.
func Reparented() (ppid int, ok bool, err error) {
	d := preRuntimeDetach
	if d.errno != 0 {
		return 0, false, fmt.Errorf("detach: fork: %w", syscall.Errno(d.errno))
	}
	return ReparentedFrom(int(d.parent))
}

// ReparentedFrom is Reparented for a process that another pre-runtime
// entry forked off as an orphan (internal/prefork): old is the pid it was
// forked from, 0 if it was not.
func ReparentedFrom(old int) (ppid int, ok bool, err error) {
	if old == 0 {
		return 0, false, nil
	}
	if p := unix.Getppid(); p != old {
		return p, true, nil
	}
	fd, err := unix.PidfdOpen(old, 0)
	if err == unix.ESRCH {
		// Gone, and so reaped: the reparenting came before.
		return unix.Getppid(), true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("detach: pidfd_open %d: %w", old, err)
	}
	defer unix.Close(fd)
	// Between Getppid and pidfd_open the old parent may have been reaped
	// and its pid reused; while it is still our parent, fd is it.
	if p := unix.Getppid(); p != old {
		return p, true, nil
	}
	// A pidfd polls readable once the process has exited, and exit
	// hands its children on before that (exit_notify).
	if err := pidfd.Wait(fd, -1); err != nil {
		return 0, false, fmt.Errorf("detach: wait for %d to exit: %w", old, err)
	}
	return unix.Getppid(), true, nil
}
