package shim

import (
	"bytes"
	"net"
	"strings"
	"time"

	"github.com/crier-runtime/crier/internal/relay"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
)

// A relayed `crier event ID`: the connection becomes a subscriber whose
// writer sends, framed, the lines the CLI would print, and ends the
// command where the CLI would (verb.Watcher). It is handed over to the
// serving image as any subscriber is, with its watch.

// relayWatch is a relayed event's side of its subscriber.
type relayWatch struct {
	verb.Watcher
	LogPath, LogFormat string
	// Timeout is --timeout, which ends the command at Deadline.
	Timeout  time.Duration
	Deadline time.Time
}

// serveRelayedEvent subscribes for c, a relayed event, after the entry
// has been told it is accepted.
func (s *server) serveRelayedEvent(conn *net.UnixConn, release func(), c *relay.Command) {
	w := &relayWatch{Watcher: verb.Watcher{ID: c.ID, Monitor: c.Monitor}, LogPath: c.LogPath, LogFormat: c.LogFormat}
	if c.Events != "" {
		w.Types = strings.Split(c.Events, ",")
	}
	if c.Timeout > 0 {
		w.Timeout, w.Deadline = c.Timeout, time.Now().Add(c.Timeout)
	}
	history := !c.NoHistory
	r := &request{req: protocol.Request{Op: protocol.OpSubscribe, History: &history}, conn: conn, watch: w,
		reply: make(chan protocol.Reply, 1), written: make(chan struct{})}
	reply, ok := s.ask(r)
	if !ok {
		reply = protocol.ErrorReply(s.gone())
	}
	close(r.written)
	if r.sub == nil {
		w.finish(conn, reply.Err())
		release()
		conn.Close()
		return
	}
	r.sub.release = release
	conn.SetReadDeadline(time.Time{})
	go s.write(r.sub)
	// Reads until the entry hangs up, as for any subscriber.
	s.serveConn(conn, release, r.sub)
}

// emit sends what the CLI prints for line, an event (or the subscribe
// reply, which it skips), and reports whether the command is over.
func (w *relayWatch) emit(conn *net.UnixConn, line []byte) (bool, error) {
	typ, ok := eventType(line)
	if !ok {
		return false, nil
	}
	print, done, err := w.See(typ)
	var out []byte
	if print {
		out = relay.AppendFrame(out, relay.Stdout, line)
	}
	if done {
		out = w.exit(out, err)
	}
	if len(out) == 0 {
		return false, nil
	}
	_, werr := conn.Write(out)
	return done, werr
}

// timer fires at the watch's deadline; nil without one.
func (w *relayWatch) timer() *time.Timer {
	if w == nil || w.Deadline.IsZero() {
		return nil
	}
	return time.NewTimer(time.Until(w.Deadline))
}

// finish ends the command with err (nil: exit 0) where no event ended it:
// before any event, at its deadline, or at the stream's end (the shim is
// going away).
func (w *relayWatch) finish(conn *net.UnixConn, err error) {
	writeOut(conn, w.exit(nil, err))
}

// exit appends the last frames: err's line, if any, and the exit code.
func (w *relayWatch) exit(out []byte, err error) []byte {
	code := byte(0)
	if err != nil {
		out = relay.AppendFrame(out, relay.Stderr, []byte(verb.ErrorLine(err)))
		logRelayed(w.LogPath, w.LogFormat, verb.ErrorText(err))
		code = 1
	}
	return relay.AppendFrame(out, relay.Exit, []byte{code})
}

// eventType is the type of an event line as protocol.Marshal writes it
// (its first member); a reply line has none.
func eventType(line []byte) (string, bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return "", false
	}
	rest := line[len(prefix):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return "", false
	}
	return string(rest[:i]), true
}
