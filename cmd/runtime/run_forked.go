package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/crier-runtime/crier/internal/prefork"
)

// Run in the forked processes (internal/prefork), when the fork (C) cannot
// run it alone (run_alone.go): a terminal to proxy, a console or pidfd
// socket, --keep, or a command line C does not take. The process that runs
// `crier run` (W) then goes on as run's CLI, and C creates and serves the
// container, as a forked create does. W parses and checks the command
// line, and says what is wrong with it; C waits meanwhile, and once W
// gives the go-ahead, with what the shim is to be given, C serves it
// (serveShim) and reports the create's outcome to W.

// createForked is the create of a forked run, in W: it checks what create
// was given, gives C the go-ahead once W is ready to forward signals and
// listens on the console socket (o.consoleSocket), and returns once C has
// created the container, or once C has exited with the create's error,
// which C has printed.
func (a *app) createForked(id string, o *createOptions) error {
	sa, mode, err := a.createArgs(id, o)
	if err != nil {
		return err
	}
	// Before the go-ahead, as create dials it before it starts the shim:
	// a wrong path fails before anything is made.
	pidfdSock, err := dialPidfdSocket(o.pidfdSocket)
	if err != nil {
		return err
	}
	defer pidfdSock.Close()
	err = prefork.GoAhead(a.childArgs(sa, mode))
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

// The go-ahead's payload: the global flags serveShim uses and the shim's
// arguments, NUL-separated (none of them can hold a NUL: they come from
// the command line and the environment). The passed descriptors are C's
// already, at the same numbers: only their count goes.
const childFields = 12

func (a *app) childArgs(sa shimArgs, mode string) string {
	return strings.Join([]string{
		a.root, a.logPath, a.logFormat, flagField(a.debug), mode,
		sa.shim, sa.id, sa.bundle, sa.pidFile, sa.consoleSocket, sa.buffer,
		flagField(sa.noPivot),
	}, "\x00") + "\x00" + strconv.Itoa(len(sa.extra))
}

func flagField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// runChild is C of a forked run, from main: it waits for W's go-ahead
// and serves the container it describes, and returns the exit code. If W
// exits without one, having said why, C goes without a word.
func runChild() int {
	if code, ok := runAloneChild(); ok {
		return code
	}
	msg, ok := prefork.AwaitGoAhead()
	if !ok {
		prefork.DiscardSpeculative()
		return 1
	}
	a, sa, mode, err := childFromArgs(msg)
	if err != nil {
		// W and C are the same binary: only a bug gets here.
		fmt.Fprintln(os.Stderr, "crier: run:", err)
		prefork.Exit(1)
		return 1
	}
	if err := a.serveShim(sa, mode, 0); err != nil {
		a.fail(err) // printed already, or an exit code
	}
	prefork.Exit(a.exitCode)
	return a.exitCode
}

func childFromArgs(msg string) (*app, shimArgs, string, error) {
	f := strings.Split(msg, "\x00")
	if len(f) != childFields+1 {
		return nil, shimArgs{}, "", fmt.Errorf("go-ahead of %d fields, want %d", len(f), childFields+1)
	}
	n, err := strconv.Atoi(f[childFields])
	if err != nil || n < 0 {
		return nil, shimArgs{}, "", fmt.Errorf("go-ahead: descriptor count %q", f[childFields])
	}
	a := &app{root: f[0], logPath: f[1], logFormat: f[2], debug: f[3] == "1"}
	sa := shimArgs{shim: f[5], id: f[6], bundle: f[7], pidFile: f[8], consoleSocket: f[9], buffer: f[10], noPivot: f[11] == "1"}
	for i := 0; i < n; i++ {
		sa.extra = append(sa.extra, os.NewFile(uintptr(3+i), "fd"+strconv.Itoa(3+i)))
	}
	return a, sa, f[4], nil
}
