package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// A shim that comes back (docs/architecture.md, "When the shim dies"):
// any command that finds a container's socket refusing, its shim dead,
// starts a new shim for it (crier-shim --recover, shim.Recover), which
// takes the container over from the state directory, and goes on through
// it as if nothing had happened. Only when that fails does the command
// fall back to what it can do without a shim.

// recoverShim starts a new shim for container id, and returns once it
// listens, or once another command's has come back first.
func (a *app) recoverShim(id string) error {
	path, err := a.findShim()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(path, "--recover", "--root", a.root, "--id", id)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = []string{}
	// Its own session, as create's shim: it outlives this command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start shim: %w", err)
	}
	w.Close()
	a.debugf("shim %d started to take %s over", cmd.Process.Pid, id)
	_, _, err = awaitReport(cmd.Process.Pid, r)
	if err != nil && strings.Contains(err.Error(), shim.ErrShimAlive.Error()) {
		return nil // another command's came back first
	}
	return err
}

// dialRecovering is dial that brings a dead shim back first.
func (a *app) dialRecovering(ctx context.Context, id string) (*protocol.Client, error) {
	c, err := a.dial(ctx, id)
	if !errors.Is(err, errShimDead) {
		return c, err
	}
	if rerr := a.recoverShim(id); rerr != nil {
		a.debugf("container %s: its shim is dead, and a new one could not take over: %v", id, rerr)
		return nil, err
	}
	return a.dial(ctx, id)
}
