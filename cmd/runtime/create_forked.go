package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/prefork"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// Create in the forked process (internal/prefork): this process is the
// shim, and serves the container until it is deleted; the process the
// caller waits for exits with the code this one reports once the
// container is created.

// The main goroutine keeps to the main thread in the forked create: the
// shim re-executes into its serving image from it, and execve from
// another thread would leave the thread-group leader a zombie for a
// moment, in which anyone checking whether the shim is alive would see it
// dead (as in cmd/shim).
func init() {
	if prefork.Child() {
		runtime.LockOSThread()
	}
}

// forkedCreate reports whether create serves the container from this
// process. Not with --pidfd-socket, whose failure deletes the container
// through its shim, which must then be another process (a forked run's W
// is that other process, and sends it: run_forked.go).
func forkedCreate(o *createOptions) bool {
	return prefork.Child() && o.pidfdSocket == ""
}

// serveShim creates the container and serves it (shim.Serve) from this
// process. It returns once the container is deleted, or with the error
// that failed create, which it has already printed: the shim detaches
// this process's stdio as it creates, so the message goes to a copy of
// stderr made first.
func (a *app) serveShim(sa shimArgs, mode string, callerParent int) error {
	// No heap profiling. The init the entry point started ahead, if any,
	// runs from a sealed copy already: sealing another waits until the
	// shim knows whether it adopts that init. Without one, as crier-shim's
	// create image: two Ps, as it seals init's binary (starting at once,
	// on the second P) and decodes the config while it makes the rest
	// ready to fork init. With one, the process keeps the one P it
	// started with: on this kind of machine the second P's threads cost
	// more than the overlap brings (interleaved creates, 60 each: 31.5
	// against 33.9 ms and 25.2 against 26.8; runs 55.7 against 59.2).
	runtime.MemProfileRate = 0
	ahead := speculative()
	defer ahead.Discard()
	var exe *container.ExeAhead
	if ahead == nil {
		runtime.GOMAXPROCS(2)
		exe = container.SealExeAhead(sa.shim)
	}
	stderr, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		exe.Drop()
		return os.NewSyscallError("dup stderr", err)
	}
	errOut := os.NewFile(uintptr(stderr), "stderr")
	defer errOut.Close()
	cfg := shim.Config{
		Root: a.root, ID: sa.id, Bundle: sa.bundle, PidFile: sa.pidFile,
		ConsoleSocket: sa.consoleSocket, Buffer: shim.ParseBuffer(sa.buffer),
		NoPivot: sa.noPivot,
		// The init stage runs from a sealed copy of crier-shim, and the
		// serving image is crier-shim's.
		InitPath: sa.shim, InitExe: exe, Speculative: ahead, ReexecPath: sa.shim,
		HealPath: shim.HealSelf,
		// Not while a run's driver waits here for the container to stop
		// (run_alone.go): it would be gone with this image.
		Reexec:     a.alone == nil || a.alone.detach,
		Stdio:      [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		ExtraFiles: sa.extra,
		Log:        log.New(io.Discard, "", 0),
		LogPath:    a.logPath, Debug: a.debug,
		// The monitor thread's timer slack was for create alone: what
		// the shim starts (an init it forks, hooks, exec'd processes)
		// must not inherit it from a thread the monitor started.
		Untune: prefork.RestoreTimerSlack,
	}
	if a.logPath != "" {
		if f, err := os.OpenFile(a.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			cfg.Log = log.New(f, "crier-shim["+sa.id+"]: ", log.LstdFlags|log.Lmicroseconds)
		}
	}
	cfg.Supervised = supervised(cfg.Log, a.debug, mode, callerParent)
	a.stderr = errOut
	defer func() { a.stderr = nil }()
	rep := &forkedReport{errOut: errOut, seal: a.debugExeSeal, ahead: func() {
		a.debugf("init started ahead: forked before the config was read, and adopted")
	}}
	if r := a.alone; r != nil {
		r.started = make(chan protocol.Reply, 1)
		cfg.StartAtOnce = r.started
		r.served = make(chan struct{})
		if !r.detach {
			r.deleted = make(chan protocol.Reply, 1)
			cfg.DeleteWhenStopped = r.deleted
		}
		rep.created = func(pid int) {
			r.seccompFlags, r.seccompOK = a.seccompFlags(r.id)
			r.done.Add(1)
			go r.drive(a, pid)
		}
		// What the driver says goes to errOut, closed once serveShim
		// returns.
		defer r.done.Wait()
	}
	cfg.Report = rep
	// As a crier-shim started by create: what the caller leaked to us
	// goes nowhere, nor does the caller's environment (the shim's own
	// runtime, and hooks without an env of their own, get none).
	unix.CloseRange(uint(3+len(sa.extra)), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	os.Clearenv()
	a.debugf("nsexec container setup: crier %d makes container %s", os.Getpid(), sa.id)
	err = shim.Serve(cfg)
	if r := a.alone; r != nil {
		if err == nil && rep.err == "" {
			r.finish() // exits, when the run is over
		}
		close(r.served)
	}
	if rep.err == "" {
		return err // served until deleted (nil), or failed after reporting
	}
	msg := strings.ReplaceAll(rep.err, "\n", " ")
	fmt.Fprintln(errOut, "crier:", msg)
	a.logf("error", msg)
	return &exitError{code: 1}
}

// forkedReport takes the shim's report (shim.Report, one JSON line): once
// the container is created the waiting process exits 0 and create is
// done for its caller, and the copy of create's stderr is closed (a
// caller that reads it to its end, as containerd's shim and `$(...)` do,
// must not wait for the container's deletion); an error is kept for
// serveShim, which prints it there.
type forkedReport struct {
	err    string
	errOut *os.File
	seal   func(string) // --debug's lines of how init's binary was sealed
	ahead  func()       // and its line of an init started ahead
	// created, for a run C runs alone, starts its driver
	// (run_alone.go) in errOut's stead.
	created func(pid int)
}

func (r *forkedReport) Write(b []byte) (int, error) {
	var rep shim.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		r.err = "shim report: " + err.Error()
		return len(b), nil
	}
	if rep.Error != "" {
		r.err = rep.Error
		return len(b), nil
	}
	r.seal(rep.Seal)
	if rep.Ahead {
		r.ahead()
	}
	prefork.Created(rep.Pid)
	if r.created != nil {
		r.created(rep.Pid) // a run C runs alone: its driver prints, and closes
		return len(b), nil
	}
	r.errOut.Close()
	return len(b), nil
}

func (r *forkedReport) Close() error { return nil }

// supervised decides, as crier-shim does for --detach (docs/supervisors.md),
// whether the container is to be the child of a reaping supervisor above
// create: the forked process is an orphan from birth, reparented to the
// nearest subreaper or to init, and one is there when that is create's
// caller's parent.
func supervised(l *log.Logger, debug bool, mode string, callerParent int) bool {
	ppid, detached, err := container.ReparentedFrom(prefork.Parent())
	if err != nil {
		l.Printf("warning: supervisor detection: %v", err)
	}
	on := shim.SupervisedBy(mode, detached, ppid, callerParent)
	if debug {
		l.Printf("supervisor %s: detached %v, parent %d, create's parent %d: supervised %v", mode, detached, ppid, callerParent, on)
	}
	return on
}

// speculative is the init the entry point started before the runtime
// (internal/prefork, speculate.go), if it did.
func speculative() *container.Speculative {
	pid, sync, exe, mounts, ok := prefork.TakeSpeculative()
	if !ok {
		return nil
	}
	return &container.Speculative{Pid: pid, Sync: os.NewFile(uintptr(sync), "sync-parent"), Exe: os.NewFile(uintptr(exe), "init-exe"),
		Mounts: []*os.File{os.NewFile(uintptr(mounts[0]), "seal-tmpfs"), os.NewFile(uintptr(mounts[1]), "seal-overlay")}}
}
