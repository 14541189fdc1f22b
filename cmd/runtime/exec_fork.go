package main

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// exec under a supervisor (docs/supervisors.md). conmon and containerd's
// shim run `crier exec --detach --pid-file F` and then wait for the pid in
// F as their own child, as they do for the container's init. So, as runc
// does, crier exec forks the exec stage itself: the process is crier's
// child, and once crier has exited, the child of the nearest subreaper
// above it. The shim is told of it by a pidfd (adopt), and learns its exit
// as it learns a supervised init's, once the reaper has reaped it.

// execForks reports whether crier exec forks the process itself: in
// supervisor mode, which the container's mode decides unless --supervisor
// or CRIER_SUPERVISOR says on or off.
func (a *app) execForks(st *statedir.State) (bool, error) {
	mode, err := a.supervisorMode()
	if err != nil {
		return false, err
	}
	switch mode {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return st.Supervised, nil
}

// forkExec runs the process as crier's child, has the shim adopt it, and,
// in the foreground, waits for it as its parent.
func (a *app) forkExec(id string, st *statedir.State, spec *specs.Spec, e *execFiles, o *execOptions, sigs chan os.Signal) (int, error) {
	shim, err := a.findShim()
	if err != nil {
		return 0, err
	}
	// The shim says so too, at adopt; but the exec stage would be born
	// frozen, and this command wait on it until the resume.
	if st.Status == protocol.StatusPaused && !o.ignorePaused {
		return 0, errors.New("cannot exec in a paused container")
	}
	ns, err := openInitNamespaces(st)
	if err != nil {
		return 0, err
	}
	// The config and the state tell a seccomp agent about the process,
	// if the container's filter notifies (ExecFrom).
	c := &container.Container{ID: id, Bundle: st.Bundle, Spec: spec, Pid: st.Pid, PidFD: -1, Cgroup: st.Cgroup}
	a.debugf("nsexec container setup: crier %d forks the exec stage into container %s", os.Getpid(), id)
	pid, err := c.ExecFrom(shim, e.send, ns, o.subCgroups)
	ns.Close()
	e.closeSent()
	if err != nil {
		return 0, err
	}
	// Our child, not yet reaped: the pidfd is certainly its.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		reapChild(pid)
		return 0, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	if err := a.adopt(id, fd, protocol.ExecOptions{ExecID: o.execID, IgnorePaused: o.ignorePaused}); err != nil {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		reapChild(pid)
		return 0, err
	}
	a.debugExeced(id, e, pid)
	if err := o.announceFD(pid, fd); err != nil {
		// Nobody could find it to wait for it: it must not run.
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		reapChild(pid)
		return 0, err
	}
	if o.detach {
		return 0, nil
	}
	stop, err := e.proxyTerminal()
	if err != nil {
		return 0, err
	}
	forwardSignals(pid, sigs)
	ws := reapChild(pid)
	if stop != nil {
		stop()
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// openInitNamespaces opens the namespaces of the container's init, making
// sure they are its: the pid is checked against the recorded start time
// through a pidfd, and still alive once the namespaces are open.
func openInitNamespaces(st *statedir.State) (*container.ExecNamespaces, error) {
	fd, err := openChecked(st.Pid, st.PidStart)
	if errors.Is(err, errGone) {
		return nil, errors.New("cannot exec in a stopped container")
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	ns, err := container.OpenExecNamespaces(st.Pid)
	if err != nil {
		return nil, err
	}
	if exited, err := pidfd.Exited(fd); exited || err != nil {
		ns.Close()
		return nil, errors.New("cannot exec in a stopped container")
	}
	return ns, nil
}

// adopt hands the shim a pidfd of the process.
func (a *app) adopt(id string, fd int, eo protocol.ExecOptions) error {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dialRecovering(ctx, id)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Adopt(ctx, fd, eo); err != nil {
		return fmt.Errorf("exec: %w", requestError(err))
	}
	return nil
}

// reapChild waits for our child pid and reaps it.
func reapChild(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return ws
		}
	}
}
