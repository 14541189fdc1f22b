package main

import (
	"errors"
	"fmt"

	"github.com/crier-runtime/crier/internal/prefork"
)

// Run in the forked processes (internal/prefork): the process that runs
// `crier run` (W) forks before its Go runtime starts, as for create, but
// goes on as run's CLI, while the fork (C) creates and serves the
// container, as a forked create does. Both runtimes start at once, on
// two cores, where run would otherwise start crier, then crier-shim, one
// after the other. W parses the command line and says what is wrong with
// it; C keeps quiet until W's go-ahead, then reports the create's
// outcome to W instead of to a waiting process in assembly.

// createForked is the create of a forked run, in W: it gives C the
// go-ahead once W is ready to forward signals and listens on the console
// socket (o.consoleSocket), and returns once C has created the container,
// or once C has exited with the create's error, which C has printed.
func (a *app) createForked(id string, o *createOptions) error {
	// Before the go-ahead, as create dials it before it starts the shim:
	// a wrong path fails before anything is made.
	pidfdSock, err := dialPidfdSocket(o.pidfdSocket)
	if err != nil {
		return err
	}
	defer pidfdSock.Close()
	err = prefork.GoAhead(o.consoleSocket)
	var res prefork.Result
	if err == nil || errors.Is(err, prefork.ErrNoReport) {
		res, err = prefork.Outcome()
	}
	if errors.Is(err, prefork.ErrNoReport) {
		a.removeForked(id, res.Child)
		return fmt.Errorf("run: %w (the create of %s)", err, id)
	}
	if err != nil {
		return fmt.Errorf("run: create of %s: %w", id, err)
	}
	if !res.Created {
		// Nothing of the failed create is to be seen alive once run
		// has returned.
		waitExit(res.Child)
		return &exitError{code: res.Code}
	}
	a.debugf("child process in init(): the init of %s is pid %d, created", id, res.Pid)
	if err := pidfdSock.send(res.Pid); err != nil {
		a.delete(id, true)
		return err
	}
	return nil
}

// runChild is a forked run in C: once W gives the go-ahead, the create
// of a forked create (serveShim), with W's console socket; W sends the
// pidfd to --pidfd-socket, which is why C serves the container itself
// even with one (forkedCreate). Without a go-ahead W has exited, having
// said why, and C goes without a word.
func (a *app) runChild(id string, o *createOptions) error {
	console, ok := prefork.AwaitGoAhead()
	if !ok {
		return &exitError{code: 1}
	}
	a.runChildGo = true
	o.consoleSocket = console
	o.pidfdSocket = ""
	_, err := a.create(id, o)
	return err
}

// removeForked removes what C, dead before it reported, left of the
// container: its state when it had claimed the ID (the state names it as
// the shim), else the half-made state directory of a claim cut short.
// Only what is C's: another container may have the ID.
func (a *app) removeForked(id string, child int) {
	if child <= 0 {
		return // never forked
	}
	// It is dead once its end of the socket is closed, bar the exit of
	// its threads.
	waitExit(child)
	st, _, err := a.readState(id)
	if err == nil && st.ShimPid == child {
		if err := a.delete(id, true); err != nil {
			a.logf("warning", fmt.Sprintf("removing what the killed create of %s left: %v", id, err))
		}
		return
	}
	a.sweepAbandoned()
}
