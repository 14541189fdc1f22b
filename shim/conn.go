package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// queueLen bounds each subscriber's queue. It holds a whole replay: the
// reply, the longest history (history.go) and a missed line before each
// event and after the last.
const queueLen = 2*(maxRepeated+numLifecycle) + 2

// writeTimeout bounds how long the shim's exit waits for its subscribers'
// writers.
const writeTimeout = 10 * time.Second

// subscriber is one event stream. The loop owns the queue's sending side;
// the writer goroutine drains the queue to the connection.
//
// A subscriber that reads too slowly loses nothing the shim keeps, and is
// told of the rest: when its queue is full the loop stops queuing for it
// (lagging), and once the writer has written all it had, the loop replays
// from the history what came after the last event it queued, with a
// missed line for each run of events the history no longer holds (replay),
// and goes on live. containerd lost exits to a full channel (#8892); here
// the exit is a lifecycle event, always kept, so it always arrives.
type subscriber struct {
	conn *net.UnixConn
	ch   chan []byte
	// release frees the connection's slot (limits.go); the writer calls
	// it just before it closes the connection.
	release func()
	// queued is the seq of the last event queued (the loop's).
	queued uint64
	// lagging is set by the loop when the queue is full, and cleared by
	// it when the writer has caught up (caughtUp); kick wakes a writer
	// that was waiting on an empty queue when it was set.
	lagging atomic.Bool
	kick    chan struct{}
	// pending counts the lines queued and not yet written, so that the
	// loop can tell a subscriber with nothing in flight (idle.go).
	pending atomic.Int32
	// watch is set for a relayed `crier event` (relay_event.go): the
	// writer frames and filters the lines, and ends the connection once
	// the command is over.
	watch *relayWatch
}

func newSubscriber(conn *net.UnixConn) *subscriber {
	return &subscriber{conn: conn, ch: make(chan []byte, queueLen), kick: make(chan struct{}, 1)}
}

// send queues line, the event with seq (or its missed line's last), unless
// the subscriber is lagging. It never blocks: a full queue makes the
// subscriber lag.
func (sub *subscriber) send(seq uint64, line []byte) {
	if sub.lagging.Load() {
		return
	}
	sub.pending.Add(1)
	select {
	case sub.ch <- line:
		if seq > 0 {
			sub.queued = seq
		}
	default:
		sub.pending.Add(-1)
		sub.lagging.Store(true)
		select {
		case sub.kick <- struct{}{}:
		default:
		}
	}
}

// finish ends the stream: the client reads EOF after the queue.
func (sub *subscriber) finish() { close(sub.ch) }

// caughtUp tells the loop that a lagging subscriber's writer has written
// everything it was given.
type caughtUp struct{ sub *subscriber }

func (s *server) write(sub *subscriber) {
	defer s.writers.Done()
	defer func() {
		sub.release()
		sub.conn.Close()
	}()
	over := false // a relayed event's command is
	var expired <-chan time.Time
	if t := sub.watch.timer(); t != nil {
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case line, ok := <-sub.ch:
			if !ok {
				if sub.watch != nil && !over {
					sub.watch.finish(sub.conn, sub.watch.ShimGone())
				}
				return
			}
			// No deadline: a slow reader is caught up, not dropped;
			// one that has gone makes the write fail.
			var err error
			if sub.watch != nil {
				over, err = sub.watch.emit(sub.conn, line)
			} else {
				_, err = sub.conn.Write(line)
			}
			sub.pending.Add(-1)
			if err != nil || over {
				s.post(unsubscribe{sub})
				for range sub.ch {
				}
				return
			}
		case <-sub.kick:
		case <-expired:
			sub.watch.finish(sub.conn, sub.watch.TimedOut(sub.watch.Timeout))
			s.post(unsubscribe{sub})
			for range sub.ch {
			}
			return
		}
		if len(sub.ch) == 0 && sub.lagging.Load() {
			s.post(caughtUp{sub})
		}
	}
}

// catchUp replays to a lagging subscriber, now that its writer has caught
// up, what came after the last event it was given.
func (s *server) catchUp(sub *subscriber) {
	if !s.subs[sub] || !sub.lagging.Load() {
		return
	}
	sub.lagging.Store(false)
	since := sub.queued
	s.replay(sub, protocol.Request{Since: &since})
}

// post sends m to the loop, or drops it once the loop has finished.
func (s *server) post(m any) {
	select {
	case s.msgs <- m:
	case <-s.quit:
	}
}

func (s *server) subscribe(r *request) {
	sub := newSubscriber(r.conn)
	sub.watch = r.watch
	line, _ := protocol.Marshal(protocol.Reply{OK: true, Protocol: protocol.Version})
	sub.send(0, line)
	s.replay(sub, r.req)
	if !sub.lagging.Load() {
		// From here on it is given every event as it happens.
		sub.queued = s.rec.Seq
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
// subscriber is told rather than left to guess.
func (s *server) replay(sub *subscriber, req protocol.Request) {
	s.replayLines(req, sub.send)
}

// replayLines is replay for any taker of the lines: put calls it with each
// line and the seq it stands for (a missed line's last).
func (s *server) replayLines(req protocol.Request, put func(seq uint64, line []byte)) {
	if req.Since == nil && req.History != nil && !*req.History {
		return
	}
	var next uint64 // the seq expected next, with since
	if req.Since != nil {
		next = *req.Since + 1
	}
	send := func(ev protocol.Event) {
		if line, err := protocol.Marshal(ev); err == nil {
			seq := ev.Seq
			if ev.Type == protocol.EventMissed {
				seq = ev.To
			}
			put(seq, line)
		}
	}
	for _, ev := range s.rec.History {
		if req.Since != nil {
			if ev.Seq < next {
				continue
			}
			if ev.Seq > next {
				send(s.missed(next, ev.Seq-1))
			}
			next = ev.Seq + 1
		}
		send(ev)
	}
	if req.Since != nil && s.rec.Seq >= next {
		send(s.missed(next, s.rec.Seq))
	}
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
//
// sub is set for a subscriber handed over by the create image (idle.go),
// whose connection carries only events already.
func (s *server) serveConn(conn *net.UnixConn, release func(), sub *subscriber) {
	if sub == nil {
		conn.SetReadDeadline(time.Now().Add(idleLimit))
		relayed, err := peekRelay(conn)
		if err != nil {
			s.readFailed(conn, err)
			release()
			conn.Close()
			return
		}
		if relayed {
			s.serveRelay(conn, release)
			return
		}
	}
	fc := &fdConn{conn: conn, budget: &s.heldFiles}
	dec := protocol.NewDecoder(fc)
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
	s.answering.add()
	defer s.answering.done()
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
	reply, answered := s.ask(r)
	if !answered {
		s.reply(conn, protocol.ErrorReply(s.gone()))
		return nil, false
	}
	if r.sub != nil {
		return r, true
	}
	ok := s.reply(conn, reply)
	close(r.written)
	return r, ok
}

// ask gives r to the loop and returns its reply; ok is false when the
// loop finished without answering it.
func (s *server) ask(r *request) (reply protocol.Reply, ok bool) {
	s.post(r)
	select {
	case reply = <-r.reply:
		return reply, true
	case <-s.quit:
		// The loop may have answered just before it finished.
		select {
		case reply = <-r.reply:
			return reply, true
		default:
			return protocol.Reply{}, false
		}
	}
}

// gone is the error for a request the loop finished without answering:
// it finishes only once the container is deleted, so the request is
// about one that is gone.
func (s *server) gone() error { return fmt.Errorf("container %q %w", s.rec.ID, protocol.ErrNotExist) }

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
	s.stopOOM()
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
	select {
	case <-s.answering.drained():
	case <-timeout:
	}
	// The loop's own delete (deleteWhenStopped) has no wire to wait for.
	if s.deleting != nil && s.deleting.written != nil {
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

// pending counts requests in progress; drained says when there are none.
// (A sync.WaitGroup may not be added to while it is waited on from zero,
// and requests keep coming while the shim waits.)
type pending struct {
	mu   sync.Mutex
	n    int
	none chan struct{} // closed when n drops to 0, for drained
}

func (p *pending) add() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

func (p *pending) done() {
	p.mu.Lock()
	p.n--
	if p.n == 0 && p.none != nil {
		close(p.none)
		p.none = nil
	}
	p.mu.Unlock()
}

// drained returns a channel that is closed once no request is in
// progress.
func (p *pending) drained() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if p.n == 0 {
		close(ch)
	} else {
		p.none = ch
	}
	return ch
}
