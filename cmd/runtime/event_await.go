package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
)

// A ticket (statedir.Await, statedir.AwaitAll) is what event holds while
// a container it waits for may come and go before it subscribes: the
// container's shim delivers the history into it. The signals that end
// event are caught while it is held (holding), so that it is given back
// before event dies of them.
type holding struct {
	ticket io.Closer
	sigs   chan os.Signal
	caught chan os.Signal
	// done tells the goroutine that waits for a signal to end; it
	// closes finished as it does.
	done, finished chan struct{}
}

// hold catches the signals that end event until release, which gives t
// back; ctx's child, returned, ends at such a signal.
func hold(ctx context.Context, t io.Closer) (*holding, context.Context, context.CancelFunc) {
	h := &holding{ticket: t, sigs: make(chan os.Signal, 1), caught: make(chan os.Signal, 1),
		done: make(chan struct{}), finished: make(chan struct{})}
	for _, s := range []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		// One ignored from the start (nohup, a background job's
		// SIGINT) stays ignored: Notify would make it end event.
		if !signal.Ignored(s) {
			signal.Notify(h.sigs, s)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(h.finished)
		select {
		case s := <-h.sigs:
			h.caught <- s
			cancel()
		case <-h.done:
		}
	}()
	return h, ctx, cancel
}

// ownStart is this process's start time, which a ticket's name holds.
func ownStart() (uint64, error) { return container.StartTime(os.Getpid()) }

// release gives the ticket back and, if a signal came while it was held,
// dies of that signal now.
func (h *holding) release() {
	if h == nil {
		return
	}
	signal.Stop(h.sigs)
	close(h.done)
	<-h.finished
	h.ticket.Close()
	// A signal that came as the goroutine ended is still in sigs.
	var s os.Signal
	select {
	case s = <-h.caught:
	case s = <-h.sigs:
	default:
	}
	if s != nil {
		signal.Reset(s)
		unix.Kill(unix.Getpid(), s.(syscall.Signal))
		// The signal is on its way; should it be late, end as a shell
		// reports a death by it.
		time.Sleep(time.Second)
		os.Exit(128 + int(s.(syscall.Signal)))
	}
}

// printDelivered prints the events a deleted container's shim delivered
// into event's ticket, filtered and ended as the live ones are (watch):
// those after since when it is not negative, and those from notBefore on
// when it is set (--no-history: what happened before event began is
// history).
func printDelivered(b []byte, w *verb.Watcher, since int64, notBefore time.Time) error {
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
		if since >= 0 && seq <= uint64(since) || !notBefore.IsZero() && before(ev.Event, notBefore) {
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

// takeDeliveries passes on the histories that shims left in the stream's
// ticket (statedir.AwaitAll): those of containers that came and went
// while the stream was not subscribed to them.
func (s *allStream) takeDeliveries(ctx context.Context) {
	defer s.wg.Done()
	for {
		got, err := s.tickets.Next(ctx)
		for _, b := range got {
			if !s.passDelivered(ctx, b) {
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("event --all: %w", err))
			}
			return
		}
	}
}

// before reports whether ev happened before t; a line without a time
// (missed) counts as before.
func before(ev protocol.Event, t time.Time) bool {
	at, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
	return err != nil || at.Before(t)
}

// passDelivered emits the events of one delivered history; with
// --no-history, only those from after the stream began; after a follow
// of the container that was cut, only those after what it printed
// (printedMarks). It returns false once the stream is over.
func (s *allStream) passDelivered(ctx context.Context, b []byte) bool {
	var evs []protocol.Event
	for line := range bytes.Lines(b) {
		var ev protocol.Event
		if json.Unmarshal(line, &ev) != nil || ev.Type == "" {
			continue
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return true
	}
	printed, cut := s.printed.printedOf(evs[0].ID, evs)
	for _, ev := range evs {
		seq := ev.Seq
		if ev.Type == protocol.EventMissed {
			seq = ev.To
		}
		if cut && seq <= printed {
			continue
		}
		if s.o.noHistory && before(ev, s.began) {
			continue
		}
		if !s.emit(ctx, ev) {
			return false
		}
	}
	return true
}
