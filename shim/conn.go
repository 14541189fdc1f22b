package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// queueLen bounds each subscriber's queue. A container has few events, so
// a subscriber that lets this many pile up is stuck, and is dropped rather
// than allowed to hold anything up (it is told, and can resume with
// since). It holds a whole replay: the reply, the longest history
// (history.go) and a missed line before each event and after the last.
const queueLen = 2*(maxRepeated+numLifecycle) + 2

// writeTimeout bounds one write to a client, so a client that stopped
// reading costs at most a goroutine for this long.
const writeTimeout = 10 * time.Second

// subscriber is one event stream. The loop owns the queue's sending side
// and err; the writer goroutine drains the queue to the connection.
type subscriber struct {
	conn *net.UnixConn
	ch   chan []byte
	err  error // set before ch is closed: the last line the writer sends
	// release frees the connection's slot (limits.go); the writer calls
	// it just before it closes the connection.
	release func()
}

// send queues line without blocking. It reports false, after failing the
// subscriber, when the queue is full.
func (sub *subscriber) send(line []byte) bool {
	select {
	case sub.ch <- line:
		return true
	default:
		sub.fail(protocol.Errorf(protocol.ErrOverflow, "subscriber dropped: more than %d events unread", queueLen))
		return false
	}
}

// fail ends the stream with an error line.
func (sub *subscriber) fail(err error) {
	sub.err = err
	close(sub.ch)
}

// finish ends the stream cleanly: the client reads EOF after the queue.
func (sub *subscriber) finish() { close(sub.ch) }

func (s *server) write(sub *subscriber) {
	defer s.writers.Done()
	defer func() {
		sub.release()
		sub.conn.Close()
	}()
	for line := range sub.ch {
		sub.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := sub.conn.Write(line); err != nil {
			s.post(unsubscribe{sub})
			for range sub.ch {
			}
			return
		}
	}
	if sub.err != nil {
		line, _ := protocol.Marshal(protocol.ErrorReply(sub.err))
		sub.conn.SetWriteDeadline(time.Now().Add(time.Second))
		sub.conn.Write(line)
	}
}

// post sends m to the loop, or drops it once the loop has finished.
func (s *server) post(m any) {
	select {
	case s.msgs <- m:
	case <-s.quit:
	}
}

func (s *server) subscribe(r *request) {
	sub := &subscriber{conn: r.conn, ch: make(chan []byte, queueLen)}
	line, _ := protocol.Marshal(protocol.Reply{OK: true, Protocol: protocol.Version})
	sub.ch <- line
	if !s.replay(sub, r.req) {
		// send has failed the subscriber: it ends with the error,
		// and is never registered.
		r.sub = sub
		s.writers.Add(1)
		r.reply <- protocol.Reply{OK: true}
		return
	}
	s.subs[sub] = true
	r.sub = sub
	s.writers.Add(1)
	r.reply <- protocol.Reply{OK: true}
}

// replay queues the history a subscription asked for: all of it, or with
// since only the events after that seq, and then a missed line for each
// run of events after since that the history no longer holds (excluded
// by --event-buffer, or dropped as old exec events), so that a resuming
// subscriber is told rather than left to guess. It reports false when
// the subscriber has failed.
func (s *server) replay(sub *subscriber, req protocol.Request) bool {
	if req.Since == nil && req.History != nil && !*req.History {
		return true
	}
	var next uint64 // the seq expected next, with since
	if req.Since != nil {
		next = *req.Since + 1
	}
	send := func(ev protocol.Event) bool {
		line, err := protocol.Marshal(ev)
		return err != nil || sub.send(line)
	}
	for _, ev := range s.rec.History {
		if req.Since != nil {
			if ev.Seq < next {
				continue
			}
			if ev.Seq > next && !send(s.missed(next, ev.Seq-1)) {
				return false
			}
			next = ev.Seq + 1
		}
		if !send(ev) {
			return false
		}
	}
	if req.Since != nil && s.rec.Seq >= next {
		return send(s.missed(next, s.rec.Seq))
	}
	return true
}

// missed is the line that tells a resuming subscriber that the events
// from to to are gone from the history.
func (s *server) missed(from, to uint64) protocol.Event {
	return protocol.Event{Type: protocol.EventMissed, ID: s.rec.ID, From: from, To: to}
}

func (s *server) drop(sub *subscriber) {
	if s.subs[sub] {
		delete(s.subs, sub)
		sub.finish()
	}
}

// serveConn reads requests from one client and answers them in order.
// release frees the connection's slot; it is called just before the
// connection is closed, here or, for a subscriber, by its writer.
func (s *server) serveConn(conn *net.UnixConn, release func()) {
	fc := &fdConn{conn: conn, budget: &s.heldFiles}
	dec := protocol.NewDecoder(fc)
	var sub *subscriber
	for {
		if sub == nil {
			// A connection that sends nothing holds a slot for
			// nothing: each request has idleLimit to arrive.
			conn.SetReadDeadline(time.Now().Add(idleLimit))
		}
		line, err := dec.Line()
		if err != nil {
			if sub == nil {
				s.readFailed(conn, err)
			}
			break
		}
		if sub != nil {
			// The connection carries only events now; a client
			// that keeps talking is ignored until it hangs up.
			files, _ := fc.take()
			closeFiles(files)
			continue
		}
		r, ok := s.serveLine(conn, line, fc)
		if ok && r != nil && r.exit != nil {
			ok = s.waitExecExit(r)
		}
		if r != nil && r.sub != nil {
			sub = r.sub
			sub.release = release
			// Subscribers wait for events as long as they like.
			conn.SetReadDeadline(time.Time{})
			go s.write(sub)
			continue
		}
		if !ok {
			break
		}
	}
	files, _ := fc.take()
	closeFiles(files)
	if sub != nil {
		s.post(unsubscribe{sub})
		return
	}
	release()
	conn.Close()
}

// readFailed answers a connection whose next request could not be read,
// unless the client simply hung up.
func (s *server) readFailed(conn *net.UnixConn, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.reply(conn, protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "no complete request within %v; closing the connection", idleLimit)))
	default:
		s.reply(conn, protocol.ErrorReply(protocol.Errorf(protocol.ErrBadRequest, "%v", err)))
	}
}

// serveLine answers one request line. It returns the request as the loop
// handled it (nil if the line was no request) and whether the connection
// can go on.
func (s *server) serveLine(conn *net.UnixConn, line []byte, fc *fdConn) (*request, bool) {
	files, truncated := fc.take()
	req, err := protocol.DecodeRequest(line)
	switch {
	case err != nil:
	case truncated:
		err = protocol.Errorf(protocol.ErrBadRequest, "%s: descriptors that came with it were dropped: more than %d, or more than the shim holds for unfinished lines", req.Op, protocol.MaxExecFiles)
	case len(files) > 0 && req.Op != protocol.OpExec && req.Op != protocol.OpAdopt:
		err = protocol.Errorf(protocol.ErrBadRequest, "%s: descriptors that the request cannot take came with it", req.Op)
	}
	if err != nil {
		closeFiles(files)
		return nil, s.reply(conn, protocol.ErrorReply(err))
	}
	r := &request{req: req, conn: conn, files: files, reply: make(chan protocol.Reply, 1), written: make(chan struct{})}
	s.post(r)
	var reply protocol.Reply
	select {
	case reply = <-r.reply:
	case <-s.quit:
		// The loop may have answered just before it finished.
		select {
		case reply = <-r.reply:
		default:
			// The loop finishes only once the container is
			// deleted: this request is about one that is gone.
			s.reply(conn, protocol.ErrorReply(fmt.Errorf("container %q %w", s.cfg.ID, protocol.ErrNotExist)))
			return nil, false
		}
	}
	if r.sub != nil {
		return r, true
	}
	ok := s.reply(conn, reply)
	close(r.written)
	return r, ok
}

func (s *server) reply(conn *net.UnixConn, r protocol.Reply) bool {
	line, err := protocol.Marshal(r)
	if err != nil {
		return false
	}
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = conn.Write(line)
	return err == nil
}

// shutdown ends every stream after what is queued, and waits a little for
// the writers so that subscribers get the deleted event before the process
// exits.
func (s *server) shutdown() {
	if s.trimTimer != nil {
		s.trimTimer.Stop()
	}
	for sub := range s.subs {
		sub.finish()
		delete(s.subs, sub)
	}
	close(s.quit)
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	timeout := time.After(writeTimeout)
	select {
	case <-done:
	case <-timeout:
	}
	if s.deleting != nil {
		select {
		case <-s.deleting.written:
		case <-timeout:
		}
	}
}

// detachStdio points the shim's own stdin, stdout and stderr at /dev/null,
// so that it holds nothing of the terminal or pipes create was given.
func detachStdio() {
	null, err := unix.Open(os.DevNull, unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd < 3; fd++ {
		if fd != null {
			unix.Dup3(null, fd, 0)
		}
	}
	if null > 2 {
		unix.Close(null)
	}
}
