package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/prefork"
	"github.com/crier-runtime/crier/protocol"
)

func (a *app) runCommand() *cobra.Command {
	var (
		o      createOptions
		detach bool
		keep   bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] ID",
		Short: "create and start a container; in the foreground, exit with its status",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(args[0], &o, detach, keep)
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the container has started")
	cmd.Flags().BoolVar(&keep, "keep", false, "in the foreground, keep the stopped container (and its cgroup) for delete, as runc's --keep")
	return cmd
}

// run is create, start and, in the foreground, wait for stopped and delete
// (unless keep). Signals that would stop crier itself are forwarded to the
// container.
func (a *app) run(id string, o *createOptions, detach, keep bool) error {
	if a.alone != nil {
		return a.runAlone(id, o, detach, keep) // C of a forked run
	}
	if prefork.ChildDied() {
		// The fork died while it created, before it said a word
		// (run_alone.go): what it left is removed, and nothing checked.
		a.removeForked(id, prefork.ChildPid())
		return fmt.Errorf("run: %w (the create of %s)", prefork.ErrNoReport, id)
	}
	console, err := runConsole(o, detach)
	if err != nil {
		return err
	}
	if console != nil {
		defer console.Close()
	}
	var sigs chan os.Signal
	if !detach {
		// Caught from the outset, not once the container runs: one that
		// came during create or start would end crier and leave the
		// container, and the terminal in raw mode, behind. They are
		// forwarded once the container runs.
		sigs = catchSignals(console != nil)
		defer signal.Stop(sigs)
	}
	if prefork.RunWaiter() {
		err = a.createForked(id, o)
	} else {
		_, err = a.create(id, o)
	}
	if err != nil {
		return err
	}
	if detach {
		return a.startOrDelete(id)
	}
	return a.runForeground(id, console, sigs, keep)
}

// runConsole returns, in the foreground for a process that asks for a
// terminal, the console socket crier itself listens on, as runc does; its
// path goes to create in o.
func runConsole(o *createOptions, detach bool) (*consoleListener, error) {
	if detach {
		return nil, nil
	}
	if o.consoleSocket != "" {
		return nil, errors.New("--console-socket needs --detach: in the foreground crier proxies the terminal itself")
	}
	if !wantsTerminal(o.bundle) {
		return nil, nil
	}
	cl, err := listenConsole()
	if err != nil {
		return nil, err
	}
	o.consoleSocket = cl.path()
	return cl, nil
}

// catchSignals catches the signals a foreground run forwards. ownPty says
// the container is on a pty of its own: it then learns of a resize from
// the pty, whose foreground group gets SIGWINCH once the proxy passes the
// size on, and a second one sent to its init would come out of step.
func catchSignals(ownPty bool) chan os.Signal {
	sigs := make(chan os.Signal, 8)
	forward := []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}
	if !ownPty {
		forward = append(forward, unix.SIGWINCH)
	}
	signal.Notify(sigs, forward...)
	return sigs
}

// startOrDelete starts the created container, or deletes it when it
// cannot be started.
func (a *app) startOrDelete(id string) error {
	if err := a.start(id); err != nil {
		a.delete(id, true)
		return err
	}
	return nil
}

// runForeground starts the created container with its events subscribed
// to and its terminal proxied, forwards sigs to it, and once it has
// stopped deletes it, unless keep, and exits with its status.
func (a *app) runForeground(id string, console *consoleListener, sigs <-chan os.Signal, keep bool) error {
	ctx := context.Background()
	// Subscribe before start so that a quick exit is not missed. (A run
	// its fork runs alone subscribes to nothing: aloneRun.foreground.)
	sub, err := a.dial(ctx, id)
	if err == nil {
		if err = sub.Subscribe(ctx, protocol.SubscribeOptions{NoHistory: true}); err != nil {
			sub.Close()
		}
	}
	if err != nil {
		a.delete(id, true)
		return err
	}
	defer sub.Close()
	var stopProxy func()
	if console != nil {
		if stopProxy, err = console.proxy(); err != nil {
			a.delete(id, true)
			return err
		}
	}
	if err := a.startForRun(id); err != nil {
		return err
	}
	if sigs != nil {
		go func() {
			for s := range sigs {
				a.kill(id, s.(unix.Signal), false)
			}
		}()
	}
	status, err := waitStopped(ctx, sub)
	if err != nil {
		return err
	}
	if stopProxy != nil {
		// The pty drains once the container's last holder of it exits.
		stopProxy()
	}
	if !keep {
		if err := a.delete(id, false); err != nil && !deletedByAnother(err) {
			return err
		}
	}
	return &exitError{code: status}
}

// deletedByAnother reports whether err, a foreground run's delete of its
// stopped container, says that another delete (a `delete --force`, say)
// came first: the container is gone or going all the same, and the run
// ends with its status, as runc's does. Once the container has stopped,
// a delete is refused only while another runs; after it, the ID does not
// exist, or the shim ends under the request.
func deletedByAnother(err error) bool {
	return errors.Is(err, protocol.ErrNotExist) || errors.Is(err, protocol.ErrInvalidState) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

// startForRun starts the created container of a foreground run, or
// deletes it when it cannot be started.
func (a *app) startForRun(id string) error {
	err := a.startOrDelete(id)
	if errors.Is(err, protocol.ErrExecFailed) {
		// The process itself failed, in its first step: as runc's
		// init, its error alone on stderr and status 255, rather than
		// a failure of crier's (run.bats "[execve error]" wants that
		// one line).
		fmt.Fprintln(a.errOut(), err)
		return &exitError{code: 255}
	}
	return err
}

// errExitUnknown is a foreground run's error for a container whose exit
// status the shim could not learn.
var errExitUnknown = errors.New("the container stopped, with an exit status the shim could not learn (supervisor mode before Linux 6.15)")

// wantsTerminal reports whether the bundle's process asks for a terminal;
// an unreadable config is create's to report.
func wantsTerminal(bundle string) bool {
	if bundle == "" {
		bundle = "."
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return false
	}
	var cfg struct {
		Process *struct {
			Terminal bool `json:"terminal"`
		} `json:"process"`
	}
	return json.Unmarshal(b, &cfg) == nil && cfg.Process != nil && cfg.Process.Terminal
}

func waitStopped(ctx context.Context, c *protocol.Client) (int, error) {
	for {
		ev, err := c.Next(ctx)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errors.New("the shim exited before the container stopped")
		}
		if err != nil {
			return 0, err
		}
		if ev.Type == protocol.EventStopped && ev.ExitStatus != nil {
			return *ev.ExitStatus, nil
		}
		if ev.Type == protocol.EventStopped && ev.ExitUnknown {
			return 0, errExitUnknown
		}
		if ev.Type == protocol.EventDeleted {
			return 0, fmt.Errorf("container was deleted before it stopped")
		}
	}
}
