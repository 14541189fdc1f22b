package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

type eventOptions struct {
	types     []string
	historic  bool
	noHistory bool
	monitor   bool
	timeout   time.Duration
	since     int64 // -1: not given
	all       bool
}

func (a *app) eventCommand() *cobra.Command {
	var o eventOptions
	cmd := &cobra.Command{
		Use:   "event [flags] ID | event --all [flags]",
		Short: "print a container's lifecycle events as JSON lines, waiting for it to exist",
		Long: `event subscribes to the container's shim and prints its events, one JSON
object per line. It first gets the events the shim kept, then live ones.
Without --monitor it exits 0 after the first event that matches --event (or
the first event at all); with --monitor it prints until the container is
deleted. If the container does not exist yet, event waits for it.

With --all, event prints the events of every container under --root, those
made after it began included, in one stream: each container's in order,
lines of different containers as they come. A container whose shim is gone
gets one {"type":"shim-gone","id":ID,...} line. Without --monitor it exits
after the first event that matches; with --monitor it runs until killed or
until --timeout, and then exits 0.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.all {
				if len(args) != 0 {
					return fmt.Errorf("event --all: takes no container ID, got %d arguments", len(args))
				}
				return nil
			}
			return exactID(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.historic && o.noHistory {
				return errors.New("event: --historic and --no-history contradict each other")
			}
			if cmd.Flags().Changed("since") && (o.since < 0 || o.noHistory) {
				if o.noHistory {
					return errors.New("event: --since and --no-history contradict each other")
				}
				return fmt.Errorf("event: --since %d is negative", o.since)
			}
			if !cmd.Flags().Changed("since") {
				o.since = -1
			}
			if o.timeout < 0 {
				return fmt.Errorf("event: --timeout %v is negative", o.timeout)
			}
			for _, t := range o.types {
				if !protocol.KnownEventType(t) {
					return fmt.Errorf("event: unknown event type %q (want %s)", t, strings.Join(protocol.EventTypes(), ", "))
				}
			}
			if o.all {
				if o.since >= 0 {
					return errors.New("event: --since resumes one container's stream, not --all's")
				}
				return a.eventAll(&o)
			}
			return a.event(args[0], &o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.types, "event", "e", nil, "event type to wait for (repeatable; default: any)")
	f.BoolVarP(&o.historic, "historic", "H", false, "replay the events the shim kept (the default)")
	f.BoolVar(&o.noHistory, "no-history", false, "only live events, not the ones the shim kept")
	f.BoolVarP(&o.monitor, "monitor", "m", false, "keep printing events until the container is deleted")
	f.Int64Var(&o.since, "since", 0, "resume after the event with this seq: the kept events after it (a \"missed\" line for any no longer kept), then live ones")
	f.DurationVar(&o.timeout, "timeout", 0, "give up after this long (e.g. 30s; default: never); with --all --monitor, stop then")
	f.BoolVarP(&o.all, "all", "a", false, "every container under --root, those made later included, in one stream")
	return cmd
}

func (a *app) event(id string, o *eventOptions) error {
	ctx := context.Background()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err := a.watch(ctx, id, o)
	if errors.Is(err, context.DeadlineExceeded) {
		return (&verb.Watcher{ID: id, Types: o.types}).TimedOut(o.timeout)
	}
	return err
}

// connect waits for the container's state directory to appear, then
// subscribes to its shim. The state root must pass statedir's checks; it is
// made if it does not exist. Until it has subscribed, connect holds a
// ticket for the ID (holding): a container that comes and goes before
// connect could subscribe, however short its life, leaves its events
// there, and connect returns them instead of a client. (The relay, which
// serves `crier event` for a container that exists without a Go runtime,
// never gets here: this is the path of the races.)
func (a *app) connect(ctx context.Context, id string, o *eventOptions) (*protocol.Client, []byte, error) {
	start, err := ownStart()
	if err != nil {
		return nil, nil, err
	}
	t, err := statedir.Await(a.root, id, start, container.Alive)
	if err != nil {
		return nil, nil, err
	}
	h, ctx, cancel := hold(ctx, t)
	defer h.release()
	defer cancel()
	for {
		if b, err := t.Wait(ctx); err != nil || b != nil {
			return nil, b, err
		}
		c, err := a.dialRecovering(ctx, id)
		if errors.Is(err, errShimDead) {
			return nil, nil, fmt.Errorf("container %q: %w", id, err)
		}
		if errors.Is(err, protocol.ErrNotExist) {
			// Its socket is gone: the directory is being removed, or
			// is what a removal cut short left. Wait for it to go,
			// rather than look again at once, then for the next one.
			if err := statedir.WaitGone(ctx, a.dir(id)); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		opts := protocol.SubscribeOptions{NoHistory: o.noHistory}
		if o.since >= 0 {
			since := uint64(o.since)
			opts.Since = &since
		}
		if err := c.Subscribe(ctx, opts); err != nil {
			c.Close()
			// The shim closed the connection under the request: it
			// was removing the container (or died).
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
				errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
				errors.Is(err, protocol.ErrNotExist) {
				// Deleted as we came: its shim delivers to our
				// ticket.
				continue
			}
			return nil, nil, requestError(err)
		}
		return c, nil, nil
	}
}

func (a *app) watch(ctx context.Context, id string, o *eventOptions) error {
	began := time.Now()
	c, delivered, err := a.connect(ctx, id, o)
	if err != nil {
		return err
	}
	w := &verb.Watcher{ID: id, Types: o.types, Monitor: o.monitor}
	if delivered != nil {
		var notBefore time.Time
		if o.noHistory {
			notBefore = began
		}
		return printDelivered(delivered, w, o.since, notBefore)
	}
	defer c.Close()
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return w.ShimGone()
			}
			return requestError(err)
		}
		print, done, err := w.See(ev.Type)
		if print {
			line, err := protocol.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := os.Stdout.Write(line); err != nil {
				return err
			}
		}
		if done {
			return err
		}
	}
}
