package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/relay"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// A connection whose first byte is NUL carries a command line that
// crier's pre-runtime entry relays instead of starting a Go runtime for it
// (internal/relay has the exchange). The shim runs the verb as the CLI
// would, through internal/verb and its own loop, and sends back what the
// CLI would have printed and its exit code.

// peekRelay reports whether the connection's first bytes, which it waits
// for (under the read deadline) without taking them, are relay.Magic; err
// is why nothing could be read. The entry sends its request in one write,
// so the magic is there whole once anything is.
func peekRelay(conn *net.UnixConn) (bool, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false, err
	}
	var b [len(relay.Magic)]byte
	var n int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return rerr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return false, err
	case rerr != nil:
		return false, os.NewSyscallError("recvfrom", rerr)
	case n == 0:
		return false, io.EOF
	}
	return string(b[:n]) == relay.Magic, nil
}

// serveRelay answers one relayed command line and ends the connection; a
// delete's is left to the shim's exit to close, which the entry waits for.
func (s *server) serveRelay(conn *net.UnixConn, release func()) {
	// A relayed event is a subscriber, which the loop's end finishes
	// (serveRelayedEvent); any other command is a request (answering).
	s.answering.add()
	answered := sync.OnceFunc(s.answering.done)
	defer answered()
	c, err := readRelayed(conn)
	if err == nil && (c.Root != filepath.Clean(s.rec.Root) || c.ID != s.rec.ID || s.finished()) {
		err = errors.New("relay: another container's command line")
	}
	if err == nil {
		// The CLI's checks of the root and the directory, as they are
		// now (a mode changed since create, say): it refuses to work
		// in them, so the relay does not either.
		var d *statedir.Dir
		if d, err = statedir.Open(c.Root, c.ID); err == nil {
			d.Close()
		}
	}
	if err == nil {
		err = writeOut(conn, []byte(relay.Accepted))
	} else {
		// Not one the shim takes as the CLI would: the entry goes on
		// into the CLI, which has done nothing yet.
		writeOut(conn, []byte(relay.Declined))
	}
	if err != nil {
		release()
		conn.Close()
		return
	}
	if c.Verb == "event" {
		answered()
		s.serveRelayedEvent(conn, release, c)
		return
	}
	d := &loopDoer{s: s, conn: conn}
	stdout, err := runRelayed(d, c)
	var out []byte
	if len(stdout) > 0 {
		out = relay.AppendFrame(out, relay.Stdout, stdout)
	}
	code := byte(0)
	if err != nil {
		out = relay.AppendFrame(out, relay.Stderr, []byte(verb.ErrorLine(err)))
		logRelayed(c.LogPath, c.LogFormat, verb.ErrorText(err))
		code = 1
	}
	writeOut(conn, relay.AppendFrame(out, relay.Exit, []byte{code}))
	if d.deleted != nil {
		// The loop exits once this is written; the connection closes
		// with the process.
		close(d.deleted.written)
		return
	}
	release()
	conn.Close()
}

// readRelayed reads and parses a relayed command line.
func readRelayed(conn *net.UnixConn) (*relay.Command, error) {
	h := make([]byte, relay.HeaderSize)
	if _, err := io.ReadFull(conn, h); err != nil {
		return nil, err
	}
	nargs, ncwd, err := relay.ParseHeader(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, nargs+ncwd+1)
	if _, err := io.ReadFull(conn, b); err != nil {
		return nil, err
	}
	if b[nargs+ncwd] != '\n' {
		return nil, errors.New("relay: request not ended by a newline")
	}
	args, err := relay.SplitArgs(b[:nargs])
	if err != nil {
		return nil, err
	}
	c, ok := relay.Parse(args, string(b[nargs:nargs+ncwd]))
	if !ok {
		return nil, errors.New("relay: a command line the CLI runs itself")
	}
	return c, nil
}

// finished reports whether the loop has ended: the container is deleted.
func (s *server) finished() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// runRelayed runs c's verb as cmd/runtime does once it has reached the
// shim, and returns what it prints on stdout.
func runRelayed(d verb.Doer, c *relay.Command) ([]byte, error) {
	ctx := context.Background()
	var err error
	switch c.Verb {
	case "state":
		var st *protocol.State
		if st, err = verb.State(ctx, d); err == nil {
			return st.AppendIndented(nil), nil
		}
	case "start":
		_, err = d.Do(ctx, protocol.Request{Op: protocol.OpStart})
	case "kill":
		sig, perr := verb.ParseKillSignal(c.Signal)
		if perr != nil {
			return nil, fmt.Errorf("kill: %w", perr)
		}
		err = verb.Kill(ctx, d, c.ID, sig, c.All)
	case "delete":
		_, err = d.Do(ctx, protocol.Request{Op: protocol.OpDelete, Force: c.Force})
	case "pause":
		_, err = d.Do(ctx, protocol.Request{Op: protocol.OpPause})
	case "resume":
		_, err = d.Do(ctx, protocol.Request{Op: protocol.OpResume})
	default:
		err = fmt.Errorf("relay: no verb %q", c.Verb)
	}
	return nil, err
}

// logRelayed writes the error line to the --log file path, as the CLI's
// fail does; like it, it says nothing when the file cannot be opened.
func logRelayed(path, format, msg string) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	f.Write(verb.LogLine(format, "error", msg, time.Now()))
	f.Close()
}

// writeOut writes b to the entry, within writeTimeout: one that stops
// reading must not hold the connection's goroutine.
func writeOut(conn *net.UnixConn, b []byte) error {
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := conn.Write(b)
	return err
}

// loopDoer sends a relayed verb's requests to the shim's own loop, as a
// connection's requests go (serveLine).
type loopDoer struct {
	s    *server
	conn *net.UnixConn
	// deleted is a delete request that the loop took: it waits for
	// its answer to be written before it ends.
	deleted *request
}

func (d *loopDoer) Do(_ context.Context, req protocol.Request) (*protocol.Reply, error) {
	s := d.s
	r := &request{req: req, conn: d.conn, reply: make(chan protocol.Reply, 1), written: make(chan struct{})}
	reply, ok := s.ask(r)
	if !ok {
		return nil, s.gone()
	}
	if req.Op == protocol.OpDelete && reply.OK {
		d.deleted = r
	} else {
		close(r.written)
	}
	if err := reply.Err(); err != nil {
		return &reply, err
	}
	return &reply, nil
}
