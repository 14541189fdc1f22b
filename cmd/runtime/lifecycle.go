package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
	"github.com/crier-runtime/crier/teardown"
)

func (a *app) startCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "start the process of a created container",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.start(args[0])
		},
	}
}

func (a *app) start(id string) error {
	flags, ok := a.startSeccompFlags(id)
	if err := a.startRequest(id); err != nil {
		return err
	}
	a.debugf("init: closing the pipe to signal completion: %s started", id)
	if ok {
		a.debugf("seccomp filter flags: %d", flags)
	}
	return nil
}

// startRequest asks id's shim to start the container; the start a run's
// fork has its shim make at once (run_alone.go) is waited for instead.
func (a *app) startRequest(id string) error {
	if r := a.alone; r != nil && r.started != nil {
		rep := <-r.started
		return requestError(rep.Err())
	}
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dialRecovering(ctx, id)
	if errors.Is(err, errShimDead) {
		return fmt.Errorf("container %q cannot be started: %w", id, err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return requestError(c.Start(ctx))
}

// startSeccompFlags is seccompFlags for start: read now, or for a run
// its fork runs alone when the container was created (run_alone.go), as
// by now it may have run, stopped and been deleted, its config with it.
func (a *app) startSeccompFlags(id string) (uint, bool) {
	if r := a.alone; r != nil && r.started != nil {
		return r.seccompFlags, r.seccompOK
	}
	return a.seccompFlags(id)
}

// seccompFlags returns, with --debug, the flags the container's seccomp
// filter is loaded with, which start says in runc's words
// (seccomp-notify.bats reads "seccomp filter flags: 40"). Only with
// --debug: it reads and compiles the config the container was created
// from. ok is false without --debug or a filter.
func (a *app) seccompFlags(id string) (flags uint, ok bool) {
	if !a.debug {
		return 0, false
	}
	d, err := a.openDir(id)
	if err != nil {
		return 0, false
	}
	defer d.Close()
	b, err := d.ReadConfig()
	if err != nil {
		return 0, false
	}
	spec, err := container.ParseSpec(b, filepath.Join(d.Path(), statedir.ConfigFile))
	if err != nil || spec.Linux == nil || spec.Linux.Seccomp == nil {
		return 0, false
	}
	p, err := seccomp.Compile(spec.Linux.Seccomp)
	if err != nil {
		return 0, false
	}
	return p.Flags(), true
}

func (a *app) stateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "print the state of a container as JSON",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.state(args[0])
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(st.AppendIndented(nil))
			return err
		},
	}
}

// state is the container's state from its state file, which the shim
// writes at every change. A container whose shim is dead gets a new one
// first (recover.go), and its state from it, which has then looked at the
// container: the file alone could say running for a process gone unseen.
func (a *app) state(id string) (*protocol.State, error) {
	st, shimAlive, err := a.readState(id)
	if err != nil {
		return nil, err
	}
	if shimAlive {
		if st.Status == protocol.StatusStopped || container.Alive(st.Pid, st.PidStart) {
			return &st.State, nil
		}
		// The process is gone and the file does not say so yet: the
		// shim has its exit, or will have at this request.
		return a.stateFromShim(id, st), nil
	}
	if err := a.recoverShim(id); err != nil {
		a.debugf("container %s: its shim is dead, and a new one could not take over: %v", id, err)
		return &st.State, nil
	}
	return a.stateFromShim(id, st), nil
}

// stateFromShim asks the shim of id for the state, or gives st.
func (a *app) stateFromShim(id string, st *statedir.State) *protocol.State {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dial(ctx, id)
	if err != nil {
		return &st.State
	}
	defer c.Close()
	if fresh, err := c.State(ctx); err == nil {
		return fresh
	}
	return &st.State
}

func (a *app) killCommand() *cobra.Command {
	var (
		signal string
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "kill [flags] ID [SIGNAL]",
		Short: "send a signal to a container's process (default TERM)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("kill: expects a container ID and an optional signal, got %d arguments", len(args))
			}
			return checkID(args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				if cmd.Flags().Changed("signal") {
					return errors.New("kill: give the signal either as an argument or with --signal, not both")
				}
				signal = args[1]
			}
			sig, err := verb.ParseKillSignal(signal)
			if err != nil {
				return fmt.Errorf("kill: %w", err)
			}
			// runc's obsolete -a makes kill of a stopped container
			// succeed; crier's --all still fails, as the spec requires
			// (docs/compatibility.md).
			return a.kill(args[0], sig, all)
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "TERM", "signal name (with or without SIG) or number")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process in the container")
	return cmd
}

func (a *app) kill(id string, sig unix.Signal, all bool) error {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dialRecovering(ctx, id)
	if errors.Is(err, errShimDead) {
		return a.killDirect(id, sig, all)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return requestError(verb.Kill(ctx, c, id, sig, all))
}

// killDirect signals a container whose shim is dead, through pidfds, and
// only the processes that are still the container's.
func (a *app) killDirect(id string, sig unix.Signal, all bool) error {
	st, _, err := a.readState(id)
	if err != nil {
		return err
	}
	if st.Status == protocol.StatusStopped || st.Pid == 0 {
		return verb.Stopped(id)
	}
	if all && st.Cgroup != nil {
		err = teardown.SignalCgroup(st.Cgroup, sig)
	} else {
		err = signalChecked(st.Pid, st.PidStart, sig)
	}
	if errors.Is(err, errGone) {
		return fmt.Errorf("%w (its process %d is gone)", verb.Stopped(id), st.Pid)
	}
	if err != nil {
		return err
	}
	return thawAfterKill(st, sig)
}

// thawAfterKill thaws a paused container after a SIGKILL, as runc does: on
// cgroup v1 a frozen task dies only once thawed. The freezer decides, not
// the state file: a shim that died during a pause may not have recorded it.
func thawAfterKill(st *statedir.State, sig unix.Signal) error {
	if sig != unix.SIGKILL || st.Cgroup == nil {
		return nil
	}
	err := st.Cgroup.Thaw()
	if err != nil && !errors.Is(err, cgroup.ErrNoFreezer) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kill: SIGKILL sent, but the container stays frozen: %w", err)
	}
	return nil
}

func (a *app) deleteCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] ID",
		Short: "delete a stopped container (with --force, any container)",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.delete(args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it is not stopped")
	return cmd
}

func (a *app) delete(id string, force bool) error {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dialRecovering(ctx, id)
	if errors.Is(err, errShimDead) {
		return a.deleteDirect(id, force)
	}
	if errors.Is(err, protocol.ErrNotExist) {
		if left, rerr := a.finishRemoval(id); left {
			return rerr
		}
	}
	if force && errors.Is(err, protocol.ErrNotExist) {
		// As runc: a forced delete of what is already gone succeeds.
		// containerd's cleanup runs it after every task, and podman's
		// after its own delete.
		a.sweepAbandoned()
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Delete(ctx, force); err != nil {
		return requestError(err)
	}
	// The shim exits right after answering; wait for it to close the
	// connection so that nothing of the container is left when we return.
	// Not in a run C runs alone, whose shim is this process: its W waits
	// for it to exit instead (run_alone.go).
	if a.alone == nil {
		c.Next(ctx)
	}
	return nil
}

// sweepAbandoned removes what creates whose shim was killed before it
// claimed the ID left in the root (statedir.Root.SweepAbandoned): a forced
// delete of an ID that does not exist is what a caller runs after such a
// create failed. What cannot be removed is only logged: the delete of the
// ID itself has succeeded.
func (a *app) sweepAbandoned() {
	r, err := statedir.OpenRoot(a.root)
	if err != nil {
		return
	}
	defer r.Close()
	n, err := r.SweepAbandoned(container.Alive)
	if err != nil {
		a.logf("warning", fmt.Sprintf("removing what a killed create left: %v", err))
	}
	if n > 0 {
		a.debugf("removed %d state directories that killed creates left half made", n)
	}
}

// finishRemoval removes what is left of the state directory of id when a
// shim was killed while it removed it: the state file goes first
// (statedir.Dir.Remove), once the container is torn down, so a directory
// without one is a removal cut short, and finishing it is all there is to
// do. It reports whether there was such a directory.
func (a *app) finishRemoval(id string) (bool, error) {
	d, err := statedir.Open(a.root, id)
	if err != nil {
		return false, nil
	}
	if _, err := d.ReadState(); !errors.Is(err, fs.ErrNotExist) {
		d.Close()
		return false, nil
	}
	a.debugf("container %s: finishing the removal of its state directory, which its shim left when it died", id)
	return true, d.Remove()
}

// deleteDirect cleans up after a container whose shim is dead. It uses only
// what the shim recorded in the state file at create (the cgroups, the
// poststop hooks), never the bundle, whose config may have been changed
// since or never have been the one created from.
func (a *app) deleteDirect(id string, force bool) error {
	d, st, _, err := a.openState(id)
	if errors.Is(err, protocol.ErrNotExist) {
		if left, rerr := a.finishRemoval(id); left {
			return rerr
		}
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if st.Status != protocol.StatusStopped {
		if !force {
			return fmt.Errorf("container %q is %s: stop it first or use --force", id, st.Status)
		}
		if err := killAndWait(st); err != nil {
			return err
		}
	}
	cg := st.Cgroup
	if cg == nil {
		// The shim died mid-create: the state file records the cgroups
		// once the container is created, but init may already have been
		// in them. They are where the config, as read at create, put them.
		cg, _ = cgroup.New(id, st.CgroupsPath)
	}
	return teardown.Run(&teardown.Remains{
		Cgroup:   cg,
		Poststop: st.Poststop,
		State:    &specs.State{Version: specs.Version, ID: id, Status: specs.StateStopped, Bundle: st.Bundle, Annotations: st.Annotations},
		Dir:      d,
		Warn:     func(err error) { a.logf("warning", err.Error()) },
		// Whether it was paused died with the shim.
		Thaw: true,
	})
}

// killAndWait SIGKILLs the container's process and waits until it is gone.
// It is not our child, so wait on a pidfd rather than with wait4.
func killAndWait(st *statedir.State) error {
	fd, err := openChecked(st.Pid, st.PidStart)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	if err := thawAfterKill(st, unix.SIGKILL); err != nil {
		return err
	}
	err = pidfd.Wait(fd, 30*time.Second)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("process %d did not die after SIGKILL", st.Pid)
	}
	return err
}
