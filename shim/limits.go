package shim

import (
	"log"
	"net"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// What one container's clients may hold of its shim (docs/protocol.md,
// "Limits"). Only root and the container's creator get past the socket's
// mode, so these guard against a client that leaks connections rather than
// against strangers, and a shim that lives for weeks must survive one.
const (
	// maxConns bounds the connections served at once, subscribers
	// included. Request connections are short (one per CLI command) and
	// the idle limit below ends the ones that say nothing, so what stays
	// is subscribers: crier supports, and benchmarks, a thousand on one
	// container (docs/performance.md, fan-out). 1024 keeps that, and bounds
	// what a client that leaks connections can make a shim hold to about
	// 14 MB (13.5 kB a subscriber), where it had no bound at all.
	maxConns = 1024
	// idleLimit bounds how long a connection that has not subscribed may
	// take to send its next complete request, counted from when it was
	// accepted or last answered. Programs send their request at once; a
	// person typing into socat has half a minute. Subscribers wait for
	// events as long as they like.
	idleLimit = 30 * time.Second
	// maxRefusing bounds the refusals in flight. A refused client is
	// answered at once, but its connection is kept for up to refuseWait
	// to take its request: closed with the request unsent, the client's
	// write would fail (EPIPE) before it reads why. Past this many, the
	// connection is answered and closed without waiting.
	maxRefusing = 16
	refuseWait  = 100 * time.Millisecond
)

// Accept back-off: running out of descriptors (EMFILE, ENFILE) is not
// over when accept returns, and retrying at once spins a core and floods
// the log. The connection waits in the listen backlog meanwhile, and is
// served once a descriptor is free.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptLogEvery limits the log to one line per failure episode,
	// and to one episode a minute however often they come and go.
	acceptLogEvery = time.Minute
)

// acceptBackoff is the accept goroutine's: the current failure episode.
type acceptBackoff struct {
	failures   int
	delay      time.Duration
	since      time.Time
	logged     bool      // this episode was logged
	lastLogged time.Time // when an episode was last logged
	unlogged   int       // episodes since then that were not
}

// failed records a failed accept and waits before the next attempt.
func (b *acceptBackoff) failed(l *log.Logger, err error) {
	if b.failures == 0 {
		b.since, b.delay = time.Now(), acceptBackoffMin
		b.logged = b.lastLogged.IsZero() || b.since.Sub(b.lastLogged) >= acceptLogEvery
		if b.logged {
			l.Printf("accept: %v; retrying every %v at most until it works (%d similar episodes not logged)", err, acceptBackoffMax, b.unlogged)
			b.lastLogged, b.unlogged = b.since, 0
		} else {
			b.unlogged++
		}
	} else {
		b.delay = min(2*b.delay, acceptBackoffMax)
	}
	b.failures++
	time.Sleep(b.delay)
}

// succeeded ends a failure episode, if there was one.
func (b *acceptBackoff) succeeded(l *log.Logger) {
	if b.failures == 0 {
		return
	}
	if b.logged {
		l.Printf("accept: working again after %d failures in %v", b.failures, time.Since(b.since).Round(time.Millisecond))
	}
	b.failures = 0
}

// connSlots counts the connections being served.
type connSlots struct {
	served   chan struct{} // a token per connection served
	refusing chan struct{} // a token per refusal in flight
	busy     []byte        // the refusal line
}

func newConnSlots() *connSlots {
	err := protocol.Errorf(protocol.ErrBusy, "the shim is at its limit of %d connections; close one or try again later", maxConns)
	line, _ := protocol.Marshal(protocol.ErrorReply(err))
	return &connSlots{
		served:   make(chan struct{}, maxConns),
		refusing: make(chan struct{}, maxRefusing),
		busy:     line,
	}
}

// take reserves a slot for a connection. The release it returns must be
// called once, just before the connection is closed, so that a client that
// has seen its connection end can count on the slot being free.
func (cs *connSlots) take() (release func(), ok bool) {
	select {
	case cs.served <- struct{}{}:
		return func() { <-cs.served }, true
	default:
		return nil, false
	}
}

// refuse answers conn with the busy line and closes it.
func (cs *connSlots) refuse(conn *net.UnixConn) {
	select {
	case cs.refusing <- struct{}{}:
		go func() {
			refuse(conn, cs.busy, refuseWait)
			<-cs.refusing
		}()
	default:
		refuse(conn, cs.busy, 0)
	}
}

// refuse writes line to conn, reads what the client sent within wait (see
// maxRefusing), and closes it.
func refuse(conn *net.UnixConn, line []byte, wait time.Duration) {
	// A fresh connection's socket buffer takes the line at once.
	conn.SetWriteDeadline(time.Now().Add(refuseWait))
	conn.Write(line)
	if wait > 0 {
		var buf [512]byte
		conn.SetReadDeadline(time.Now().Add(wait))
		conn.Read(buf[:])
	}
	conn.Close()
}
