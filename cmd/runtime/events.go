package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
)

// statsEvent is one line of `events`, in runc's shape.
type statsEvent struct {
	Type string        `json:"type"`
	ID   string        `json:"id"`
	Data *cgroup.Stats `json:"data,omitempty"`
}

func (a *app) eventsCommand() *cobra.Command {
	var (
		stats    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "events [--stats] [--interval D] ID",
		Short: "print a container's resource statistics as JSON, as runc's events does",
		Long: `events prints {"type":"stats","id":ID,"data":{...}} lines: CPU, memory,
pids and block I/O usage read from the container's cgroups, in runc's shape.
With --stats it prints one and exits; otherwise one every --interval until
the container stops or is deleted, and {"type":"oom","id":ID} when the
kernel's OOM killer kills a process of the container. For lifecycle events (created, started,
stopped with the exit status, deleted), see "crier event".`,
		Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("events: --interval %v must be greater than 0", interval)
			}
			return a.events(args[0], stats, interval, os.Stdout)
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the container's statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between statistics")
	return cmd
}

// events prints the container's statistics once (once is set) or every
// interval until it stops. Like runc, a container that is not running is
// an error, and a failed read while streaming is logged and skipped.
func (a *app) events(id string, once bool, interval time.Duration, out io.Writer) error {
	st, _, err := a.readState(id)
	if err != nil {
		return err
	}
	if st.Status == protocol.StatusStopped || st.Cgroup == nil {
		return fmt.Errorf("container %q is not running", id)
	}
	enc := json.NewEncoder(out)
	emit := func() error {
		s, err := st.Cgroup.Stats()
		if err != nil {
			return fmt.Errorf("events %s: %w", id, err)
		}
		return enc.Encode(statsEvent{Type: "stats", ID: id, Data: s})
	}
	if once {
		return emit()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended, ooms := a.watchEnd(ctx, id)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ended:
			return nil
		case <-ooms:
			// runc's line for an OOM kill in the container: no data.
			if err := enc.Encode(statsEvent{Type: "oom", ID: id}); err != nil {
				return fmt.Errorf("events %s: %w", id, err)
			}
			continue
		case <-tick.C:
		}
		// The shim's stream may be gone (a dead shim): the state decides.
		if cur, _, err := a.readState(id); err != nil || cur.Status == protocol.StatusStopped {
			return nil
		}
		s, err := st.Cgroup.Stats()
		if err != nil {
			a.logf("error", err.Error())
			fmt.Fprintln(os.Stderr, "crier: events:", err)
			continue
		}
		if err := enc.Encode(statsEvent{Type: "stats", ID: id, Data: s}); err != nil {
			return fmt.Errorf("events %s: %w", id, err)
		}
	}
}

// watchEnd returns a channel closed when the shim reports the container
// stopped or deleted, or its stream ends, and one that receives for each
// oom event the shim reports from now on. The first never closes when the
// shim cannot be reached; events then ends on the state file. (Without
// the history, a stop that came before the subscription is found there
// too.)
func (a *app) watchEnd(ctx context.Context, id string) (<-chan struct{}, <-chan struct{}) {
	ended, ooms := make(chan struct{}), make(chan struct{}, 1)
	c, err := a.dialRecovering(ctx, id)
	if err != nil {
		return ended, ooms
	}
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{NoHistory: true}); err != nil {
		c.Close()
		return ended, ooms
	}
	go func() {
		defer c.Close()
		for {
			ev, err := c.Next(ctx)
			if err != nil || ev.Type == protocol.EventStopped || ev.Type == protocol.EventDeleted {
				close(ended)
				return
			}
			if ev.Type == protocol.EventOOM {
				select {
				case ooms <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ended, ooms
}
