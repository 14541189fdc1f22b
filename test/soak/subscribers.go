package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// eventTimeout bounds the wait for any one event: a subscriber that waits
// longer has hung.
const eventTimeout = 30 * time.Second

// subscriber is one of a container's subscribers: a Go client
// (protocol.Client) or a `crier event --monitor` process. Its stream is
// whole once done is closed.
type subscriber struct {
	kind   string // "go" or "cli"
	client *protocol.Client
	proc   *proc
	// left: the soak unsubscribed it (closed it, or killed the CLI) on
	// purpose. cut: its shim was killed while it was connected. Either
	// way it did not stay connected, and owes nothing.
	left, cut atomic.Bool
	events    []protocol.Event
	end       error   // what ended a Go client's stream
	res       *result // a CLI's run
	done      chan struct{}
	// stopped is closed once a Go client has seen the stopped event,
	// stop.
	stopped chan struct{}
	stop    *protocol.Event
}

// subscribeGo connects a Go client with the history and reads it to the
// end in the background.
func (l *life) subscribeGo() (*subscriber, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	c, err := protocol.Dial(ctx, shim.SocketPath(l.s.root, l.id))
	if err != nil {
		return nil, err
	}
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		c.Close()
		return nil, err
	}
	sub := &subscriber{kind: "go", client: c, done: make(chan struct{}), stopped: make(chan struct{})}
	l.subs = append(l.subs, sub)
	go func() {
		defer close(sub.done)
		defer c.Close()
		seen := false
		for {
			ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
			ev, err := c.Next(ctx)
			cancel()
			if err != nil {
				sub.end = err
				return
			}
			sub.events = append(sub.events, ev)
			if ev.Type == protocol.EventStopped && !seen {
				seen = true
				sub.stop = &ev
				close(sub.stopped)
			}
		}
	}()
	return sub, nil
}

// subscribeCLI starts `crier event --monitor` and waits until it has
// printed its first event: from then on it is subscribed.
func (l *life) subscribeCLI() (*subscriber, error) {
	p, err := l.s.startPiped(l.dir, "event", "--monitor", "--timeout", cliTimeout.String(), l.id)
	if err != nil {
		return nil, err
	}
	sub := &subscriber{kind: "cli", proc: p, done: make(chan struct{})}
	first := make(chan struct{})
	go func() {
		defer close(sub.done)
		for line := range p.lines {
			var ev protocol.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				l.problem("crier event printed %q: %v", line, err)
			}
			sub.events = append(sub.events, ev)
			if len(sub.events) == 1 {
				close(first)
			}
		}
		sub.res = p.wait()
		l.s.stats.addRun(sub.res)
	}()
	select {
	case <-first:
		l.subs = append(l.subs, sub)
		return sub, nil
	case <-sub.done:
		return nil, fmt.Errorf("crier event ended before its first event: %v", sub.res)
	}
}

// unsubscribeLater makes sub leave after d.
func (sub *subscriber) unsubscribeLater(d time.Duration) {
	time.AfterFunc(d, func() {
		select {
		case <-sub.done:
			return // ended before: it stayed to the end
		default:
		}
		sub.left.Store(true)
		if sub.client != nil {
			sub.client.Close()
		} else {
			sub.proc.kill()
		}
	})
}

// wait waits for the subscriber's stream to end. Every one must end once
// the container is deleted; one that does not within eventTimeout is
// reported, and closed.
func (sub *subscriber) wait() error {
	select {
	case <-sub.done:
		return nil
	case <-time.After(eventTimeout + cliTimeout):
	}
	sub.left.Store(true)
	if sub.client != nil {
		sub.client.Close()
	} else {
		sub.proc.kill()
	}
	<-sub.done
	return fmt.Errorf("%s subscriber still connected %v after the delete", sub.kind, eventTimeout+cliTimeout)
}

// check checks the whole stream of a subscriber that stayed connected:
// it saw the container's exit as expected (exitErr), and then deleted,
// in order, and its stream then ended cleanly (streamErr).
func (sub *subscriber) check(want expectation) (exitErr, streamErr error) {
	var stopped *protocol.Event
	for i := range sub.events {
		if sub.events[i].Type == protocol.EventStopped {
			stopped = &sub.events[i]
		}
	}
	if err := want.check(stopped); err != nil {
		exitErr = fmt.Errorf("%s subscriber: %w (events %s)", sub.kind, err, typesOf(sub.events))
	}
	n := len(sub.events)
	if n == 0 || sub.events[n-1].Type != protocol.EventDeleted {
		return exitErr, fmt.Errorf("%s subscriber: stream %s does not end with deleted", sub.kind, typesOf(sub.events))
	}
	for i := 1; i < n; i++ {
		if sub.events[i].Seq <= sub.events[i-1].Seq {
			return exitErr, fmt.Errorf("%s subscriber: seq %d after %d", sub.kind, sub.events[i].Seq, sub.events[i-1].Seq)
		}
	}
	switch {
	case sub.kind == "go" && (!errors.Is(sub.end, io.EOF) || errors.Is(sub.end, io.ErrUnexpectedEOF)):
		return exitErr, fmt.Errorf("go subscriber: stream ended with %v after deleted, want EOF", sub.end)
	case sub.kind == "cli" && sub.res.code != 0:
		return exitErr, fmt.Errorf("crier event: %v after deleted", sub.res)
	}
	return exitErr, nil
}

// stayed reports whether the subscriber stayed connected to the end: the
// soak did not make it leave, nor kill its shim.
func (sub *subscriber) stayed() bool {
	return !sub.left.Load() && !sub.cut.Load()
}

func typesOf(evs []protocol.Event) string {
	var b []byte
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.Type...)
		if ev.Type == protocol.EventStopped {
			b = append(b, '(')
			switch {
			case ev.ExitUnknown:
				b = append(b, '?')
			case ev.ExitStatus != nil:
				b = fmt.Appendf(b, "%d", *ev.ExitStatus)
			}
			b = append(b, ')')
		}
	}
	return "[" + string(b) + "]"
}
