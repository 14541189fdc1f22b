package verb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/flatjson"
	"github.com/crier-runtime/crier/protocol"
)

// Doer sends one request to a container's shim: a *protocol.Client, or
// the shim's own loop for a relayed command line. An error reply is an
// error (a *protocol.RemoteError), as protocol.Client.Do returns it.
type Doer interface {
	Do(ctx context.Context, req protocol.Request) (*protocol.Reply, error)
}

// ErrNotRunning is runc's "container not running", which tools match on
// (containerd and podman among them): what kill says of a stopped
// container.
var ErrNotRunning = errors.New("container not running")

// State asks for the container's state.
func State(ctx context.Context, d Doer) (*protocol.State, error) {
	r, err := d.Do(ctx, protocol.Request{Op: protocol.OpState})
	if err != nil {
		return nil, err
	}
	if r.State == nil {
		return nil, errors.New("state: reply has no state")
	}
	return r.State, nil
}

// Kill is `crier kill`: sig to the container's process (with all, to
// every process in it), or with sig 0 a check that it has one. A stopped
// container gets runc's words.
func Kill(ctx context.Context, d Doer, id string, sig unix.Signal, all bool) error {
	if sig == 0 {
		return checkRunning(ctx, d, id)
	}
	_, err := d.Do(ctx, protocol.Request{Op: protocol.OpKill, Signal: int(sig), All: all})
	if err != nil && errors.Is(err, protocol.ErrInvalidState) {
		if st, serr := State(ctx, d); serr == nil && st.Status == protocol.StatusStopped {
			return Stopped(id)
		}
	}
	return err
}

// checkRunning is kill with signal 0: the container's process exists
// (created, running or paused) or kill fails with runc's words.
func checkRunning(ctx context.Context, d Doer, id string) error {
	st, err := State(ctx, d)
	if err != nil {
		return err
	}
	if st.Status == protocol.StatusStopped {
		return Stopped(id)
	}
	return nil
}

// Stopped is kill's error for a stopped container.
func Stopped(id string) error { return fmt.Errorf("container %q is stopped: %w", id, ErrNotRunning) }

// ParseKillSignal is protocol.ParseSignal plus signal 0, which kill takes
// as runc does: a check that the container runs, sending nothing.
func ParseKillSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n == 0 {
		return 0, nil
	}
	return protocol.ParseSignal(s)
}

// ErrorText is err as a failing command reports it: one line.
func ErrorText(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// ErrorLine is what a failing command prints on stderr.
func ErrorLine(err error) string { return "crier: " + ErrorText(err) + "\n" }

// LogLine is one line of the --log file in runc's (logrus's) format, text
// or json, which podman and containerd read errors from.
func LogLine(format, level, msg string, now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	if format == "json" {
		// The keys in encoding/json's order for a map: sorted.
		o := flatjson.Begin(nil)
		o.String("level", level)
		o.String("msg", msg)
		o.String("time", ts)
		return append(o.End(), '\n')
	}
	return fmt.Appendf(nil, "time=%q level=%s msg=%q\n", ts, level, msg)
}

// Watcher decides, event by event, what `crier event ID` prints and when
// it ends: the CLI's watch loop and the shim's relayed event both follow
// it.
type Watcher struct {
	ID      string
	Types   []string // none: any event
	Monitor bool
}

// See takes the next event's type and says whether to print the event,
// whether the command is over, and its error if it ends in one. A missed
// line is printed whatever the filter and matches nothing.
func (w *Watcher) See(typ string) (print, done bool, err error) {
	match := len(w.Types) == 0
	for _, t := range w.Types {
		match = match || t == typ
	}
	missed := typ == protocol.EventMissed
	switch {
	case missed:
		return true, false, nil
	case match && !w.Monitor:
		return true, true, nil
	case typ == protocol.EventDeleted && w.Monitor:
		return match, true, nil
	case typ == protocol.EventDeleted:
		return false, true, fmt.Errorf("container %q was deleted before any %s event", w.ID, strings.Join(w.Types, " or "))
	}
	return match, false, nil
}

// TimedOut is event's error when --timeout d has passed.
func (w *Watcher) TimedOut(d time.Duration) error {
	what := fmt.Sprintf("an event of container %q", w.ID)
	if len(w.Types) > 0 {
		what = fmt.Sprintf("%s of container %q", strings.Join(w.Types, " or "), w.ID)
	}
	return fmt.Errorf("timed out after %v waiting for %s", d, what)
}

// ShimGone is event's error when the stream ends before the container is
// deleted.
func (w *Watcher) ShimGone() error {
	return fmt.Errorf("container %q: the shim exited before the container was deleted", w.ID)
}
