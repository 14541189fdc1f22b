package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// awaiting is the ticket event holds while the container's ID does not
// exist (statedir.Await): if the container is made and deleted before
// event gets to subscribe, its shim delivers the history into it. The
// signals that end event are caught meanwhile, so that the ticket is
// given back before event dies of them.
type awaiting struct {
	*statedir.Ticket
	sigs   chan os.Signal
	caught chan os.Signal
	done   chan struct{}
}

// await takes a ticket for id and returns it with a context that a
// signal ends.
func (a *app) await(ctx context.Context, id string) (*awaiting, context.Context, context.CancelFunc, error) {
	start, err := container.StartTime(os.Getpid())
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := statedir.Await(a.root, id, start)
	if err != nil {
		return nil, nil, nil, err
	}
	w := &awaiting{Ticket: t, sigs: make(chan os.Signal, 1), caught: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(w.sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case s := <-w.sigs:
			w.caught <- s
			cancel()
		case <-w.done:
		}
	}()
	return w, ctx, cancel, nil
}

// release gives the ticket back and, if a signal came while it was held,
// dies of that signal now.
func (w *awaiting) release() {
	if w == nil {
		return
	}
	close(w.done)
	signal.Stop(w.sigs)
	w.Ticket.Close()
	select {
	case s := <-w.caught:
		signal.Reset(s)
		unix.Kill(unix.Getpid(), s.(syscall.Signal))
		// The signal is on its way; should it be late, end as a shell
		// reports a death by it.
		time.Sleep(time.Second)
		os.Exit(128 + int(s.(syscall.Signal)))
	default:
	}
}

// printDelivered prints the events a deleted container's shim delivered
// into event's ticket, filtered and ended as the live ones are (watch).
func printDelivered(b []byte, w *verb.Watcher, since int64) error {
	for line := range bytes.Lines(b) {
		var ev struct {
			protocol.Event
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("container %q: the events its shim left for us: %w", w.ID, err)
		}
		if ev.Type == "" {
			// Its create failed (shim's deliverRefusal).
			return fmt.Errorf("container %q: %s", w.ID, ev.Error)
		}
		seq := ev.Seq
		if ev.Type == protocol.EventMissed {
			seq = ev.To
		}
		if since >= 0 && seq <= uint64(since) {
			continue
		}
		print, done, err := w.See(ev.Type)
		if print {
			if _, err := os.Stdout.Write(line); err != nil {
				return err
			}
		}
		if done {
			return err
		}
	}
	return w.ShimGone()
}

// exists reports whether path names anything.
func exists(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil
}
