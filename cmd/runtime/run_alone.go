package main

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/crier-runtime/crier/internal/prefork"
	"github.com/crier-runtime/crier/protocol"
)

// A run that C runs alone (internal/prefork): C parses the command line as
// run's CLI would, and when the run needs nothing of a CLI beside the
// container (no terminal to proxy, no console or pidfd socket, a command
// line it takes as it is), it creates the container and serves it, starts
// it, waits for it to stop and deletes it, all from this one process,
// while W, the process run's caller waits for, stays in assembly: it
// forwards the signals run forwards to the container and exits with its
// status (runwait_linux_amd64.s). A run then starts one Go program, not
// two (W's runtime, started beside C's and the init's, delayed both on
// machines where page faults are dear). Otherwise C says so before
// anything else (prefork.NeedCLI), and W goes on into its runtime as
// run's CLI and gives C its go-ahead as before (run_forked.go).

// errNeedCLI is runAlone's refusal: W's CLI is to run this one.
var errNeedCLI = errors.New("run needs its CLI")

// aloneRun is C's run, once it has taken it.
type aloneRun struct {
	took   bool // runAlone took the run: C creates it, and says what fails
	detach bool
	id     string
	done   sync.WaitGroup // the driver, once the container is created
	// started has the reply to the start the shim makes at once
	// (shim.Config.StartAtOnce), in the stead of the driver's request;
	// deleted, in the foreground, the reply to the delete it makes once
	// the container has stopped (shim.Config.DeleteWhenStopped).
	started, deleted chan protocol.Reply
	// served is closed once the shim's loop has ended (serveShim).
	served chan struct{}
	// seccompFlags, with --debug, are the filter's flags the start says
	// (startSeccompFlags), read once the container is created, before
	// the loop that starts it runs.
	seccompFlags uint
	seccompOK    bool
	// running: the driver has started the container (finish).
	running atomic.Bool
}

// runAloneChild is C of a forked run: it parses the command line with
// its output discarded (W's CLI says what is wrong with one C does not
// take), and runs the run alone if it can. ok is false when C has told W
// to go on as the CLI.
func runAloneChild() (code int, ok bool) {
	a := &app{alone: &aloneRun{}}
	root := a.command()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	err := root.Execute()
	if !a.alone.took {
		prefork.NeedCLI()
		return 0, false
	}
	if err != nil {
		a.fail(err)
	}
	prefork.Exit(a.exitCode)
	return a.exitCode, true
}

// runAlone is run in C: errNeedCLI before anything is made when the run
// needs W's CLI, else the create's error (printed already) or nil once
// the container is deleted (or, detached, lives on and is deleted later).
func (a *app) runAlone(id string, o *createOptions, detach, keep bool) error {
	// --keep: the stopped container's shim lives on, and this image is
	// not to serve it for long (it does not re-execute while a run's
	// driver waits here).
	if keep || o.consoleSocket != "" || o.pidfdSocket != "" || wantsTerminal(o.bundle) {
		return errNeedCLI
	}
	sa, mode, err := a.createArgs(id, o)
	if err != nil {
		return errNeedCLI // the CLI checks the same, and says what is wrong
	}
	r := a.alone
	r.took, r.detach, r.id = true, detach, id
	prefork.RunAlone()
	if !detach {
		// The main goroutine keeps to the main thread for the re-exec
		// into the serving image (create_forked.go), which a
		// foreground run never makes. Locked, it would cross threads
		// as the run ends: the shim's goroutine, ending, hands the P
		// to the main thread and wakes it, to tell W and exit.
		// Interleaved runs, 150-200 each, five rounds: 0.07-0.44 ms
		// faster unlocked.
		runtime.UnlockOSThread()
	}
	return a.serveShim(sa, mode, 0)
}

// drive starts the container the shim in this process has created, and in
// the foreground waits for it to stop and deletes it; it
// tells W how run ends (prefork.RunDone). It runs beside the shim's loop,
// from the shim's report of the create (forkedReport), and prints to the
// copy of stderr the create made (a.stderr), which serveShim keeps until
// drive has returned.
func (r *aloneRun) drive(a *app, pid int) {
	defer r.done.Done()
	// As run's CLI says it once told the container is created.
	a.debugf("child process in init(): the init of %s is pid %d, created", r.id, pid)
	var err error
	if r.detach {
		err = a.startOrDelete(r.id)
	} else {
		err = r.foreground(a)
	}
	code := 0
	if err != nil {
		a.fail(err)
		code = a.exitCode
	}
	// Detached, or when the delete failed (or never came): the container
	// is there, and this process goes on as its shim. W then exits at
	// once, as run's CLI would, and so must the caller's stderr.
	_, _, serr := a.readState(r.id)
	livesOn := serr == nil
	prefork.RunDone(code, livesOn)
	if livesOn {
		a.stderr.Close()
	}
}

// errOut is where fail writes: the forked create's copy of stderr while
// there is one (its own is the container's by then), else stderr.
func (a *app) errOut() *os.File {
	if a.stderr != nil {
		return a.stderr
	}
	return os.Stderr
}

// finish ends a foreground run whose container the shim's loop has just
// deleted by itself (shim.Config.DeleteWhenStopped),
// once the driver has started it: W is told the container's exit status
// and this process exits, without waking the driver, whose last steps
// would only say the same. Otherwise, as when the start failed or the
// delete was refused, the reply is left to the driver, which says what
// went wrong.
func (r *aloneRun) finish() {
	if r.deleted == nil || !r.running.Load() {
		return
	}
	select {
	case rep := <-r.deleted:
		if rep.OK && rep.ExitStatus != nil {
			prefork.RunDone(*rep.ExitStatus, false)
			os.Exit(*rep.ExitStatus)
		}
		r.deleted <- rep
	default:
	}
}

// foreground drives a foreground run: the shim in this process starts the
// container at once and deletes it once it has stopped (StartAtOnce,
// DeleteWhenStopped), and the replies to those two requests of its own
// say all the driver needs: whether it started, and how it ended. So it
// subscribes to nothing. A subscription (run's CLI takes one) would have
// the loop replay the history and push every event to it, on the one P
// the loop has, while the container runs; and a container that exits at
// once could be deleted before the driver, a goroutine beside the loop,
// had subscribed (make bench saw "does not exist" twice in some 3000
// runs). Nor is it woken as the run ends: a goroutine made runnable
// while the loop's sits in the teardown's system calls has the runtime's
// monitor hand the P to a new thread for it. finish, in the goroutine
// the shim returns to once its loop ends, ends the run first when it can.
func (r *aloneRun) foreground(a *app) error {
	if err := a.startForRun(r.id); err != nil {
		return err
	}
	prefork.RunStarted()
	r.running.Store(true)
	// Not woken by the delete's reply: finish reads it first, as the
	// shim returns, and ends the run itself when it can; the loop has
	// ended by the time served is closed. Once the container has
	// stopped the loop always ends: its own delete, or another that came
	// first (which then answers its own), tears the container down, and a
	// teardown's error is logged, not kept (shim, tornDown).
	<-r.served
	var rep protocol.Reply
	select {
	case rep = <-r.deleted:
	default:
		// Not so far: a delete of another's that came first answers
		// the loop's own too (shim, finishDelete).
		return errors.New("container was deleted, and its shim said nothing of how it ended")
	}
	if !rep.OK {
		return requestError(rep.Err())
	}
	if rep.ExitStatus == nil {
		return errExitUnknown
	}
	return &exitError{code: *rep.ExitStatus}
}
