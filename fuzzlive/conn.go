package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// replyTimeout bounds the wait for any one reply: a shim that takes
// longer under the fuzzer has hung, for this purpose.
const replyTimeout = 20 * time.Second

// stats are the run's counters, shared by the workers.
type stats struct {
	requests  atomic.Int64 // lines sent, complete or not
	conns     atomic.Int64
	replies   atomic.Int64 // replies read and checked
	withFiles atomic.Int64 // requests that carried descriptors
	files     atomic.Int64 // descriptors sent
	execs     atomic.Int64 // exec requests with their descriptors
	tooLong   atomic.Int64
	partial   atomic.Int64
	subs      atomic.Int64
	idle      atomic.Int64 // connections left silent past the idle limit
	busy      atomic.Int64 // connections refused at the limit

	mu       sync.Mutex
	failures []string
	nfail    int
	scenario map[string]int64
}

func (s *stats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nfail++
	if len(s.failures) < 30 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

func (s *stats) count(scenario string) {
	s.mu.Lock()
	s.scenario[scenario]++
	s.mu.Unlock()
}

// worker opens connection after connection to the shim, each one a
// scenario, until the run has sent its requests.
type worker struct {
	g     gen
	sock  string
	st    *stats
	pool  *fdPool
	quota *atomic.Int64 // requests still to send, shared
}

// reply is what the fuzzer reads of a shim's reply.
type reply struct {
	OK       *bool  `json:"ok"`
	Error    string `json:"error"`
	Code     string `json:"code"`
	Protocol int    `json:"protocol"`
	State    *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"state"`
}

func (w *worker) run() {
	for w.quota.Load() > 0 {
		w.one()
	}
}

func (w *worker) one() {
	scenarios := []struct {
		name   string
		weight int
		fn     func(*net.UnixConn) int
	}{
		{"pipelined", 40, w.pipelined},
		{"mutated", 30, w.mutated},
		{"binary", 8, w.binary},
		{"oversized", 2, w.oversized},
		{"exact-maxline", 1, w.exactMaxLine},
		{"truncated", 6, w.truncated},
		{"files", 8, w.withFiles},
		{"files-no-newline", 1, w.filesNoNewline},
		{"subscribe", 3, w.subscribe},
		{"trickle", 1, w.trickle},
		{"drop", 2, w.drop},
	}
	total := 0
	for _, s := range scenarios {
		total += s.weight
	}
	n := w.g.r.IntN(total)
	for _, s := range scenarios {
		if n -= s.weight; n >= 0 {
			continue
		}
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: w.sock, Net: "unix"})
		if err != nil {
			w.st.fail("%s: connect: %v", s.name, err)
			time.Sleep(100 * time.Millisecond)
			return
		}
		w.st.conns.Add(1)
		w.st.count(s.name)
		sent := s.fn(conn)
		conn.Close()
		w.st.requests.Add(int64(sent))
		w.quota.Add(-int64(sent))
		return
	}
}

// lines returns k request lines, each valid, mutated or garbage.
func (w *worker) lines(k int, mutateShare int) []byte {
	var b []byte
	for range k {
		line := w.g.valid()
		if w.g.r.IntN(100) < mutateShare {
			line = w.g.mutate(line)
		}
		b = append(append(b, line...), '\n')
	}
	return b
}

// pipelined sends up to 64 valid requests in one go, or in pieces, and
// checks every reply; then closes, or shuts down its sending side and
// checks for EOF.
func (w *worker) pipelined(conn *net.UnixConn) int {
	return w.exchange(conn, w.lines(1+w.g.r.IntN(64), 0), "pipelined")
}

// mutated is pipelined with most lines damaged.
func (w *worker) mutated(conn *net.UnixConn) int {
	return w.exchange(conn, w.lines(1+w.g.r.IntN(32), 80), "mutated")
}

// binary sends random bytes: each newline-terminated piece a line.
func (w *worker) binary(conn *net.UnixConn) int {
	return w.exchange(conn, w.g.garbage(1+w.g.r.IntN(4096)), "binary")
}

// oversized sends a line over MaxLine, maybe after valid ones.
func (w *worker) oversized(conn *net.UnixConn) int {
	b := w.lines(w.g.r.IntN(4), 0)
	b = append(b, `{"op":"state","pad":"`...)
	b = append(b, bytes.Repeat([]byte{'a'}, protocol.MaxLine+w.g.r.IntN(3*protocol.MaxLine))...)
	if w.g.r.IntN(2) == 0 {
		b = append(b, "\"}\n"...)
	}
	w.st.tooLong.Add(1)
	return w.exchange(conn, b, "oversized")
}

// exactMaxLine sends a valid request exactly MaxLine long, newline
// included: the longest the shim must take.
func (w *worker) exactMaxLine(conn *net.UnixConn) int {
	line := []byte(`{"op":"hello"}`)
	line = append(line, bytes.Repeat([]byte{' '}, protocol.MaxLine-1-len(line))...)
	return w.exchange(conn, append(line, '\n'), "exact-maxline")
}

// truncated sends requests and then half of one.
func (w *worker) truncated(conn *net.UnixConn) int {
	b := w.lines(w.g.r.IntN(4), 30)
	last := w.g.valid()
	b = append(b, last[:w.g.r.IntN(len(last))+1]...)
	if b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	w.st.partial.Add(1)
	return w.exchange(conn, b, "truncated")
}

// exchange sends payload (spoiled where it would change the container)
// in one write or in pieces, from another goroutine, and checks what comes
// back: one reply per line, as the oracle says; then, after SHUT_WR or a
// line over MaxLine, EOF.
func (w *worker) exchange(conn *net.UnixConn, payload []byte, what string) int {
	p := makePlan(payload)
	shut := w.g.r.IntN(2) == 0
	if p.partial > 0 && !p.closed && !p.stream && !shut && w.g.r.IntN(4) != 0 {
		// A half line then close: nothing to read. Most partial
		// payloads are shut down instead, to get their reply.
		shut = true
	}
	writeDone := make(chan error, 1)
	go func() {
		err := w.write(conn, p.send)
		if shut && err == nil {
			err = conn.CloseWrite()
		}
		writeDone <- err
	}()
	br := bufio.NewReaderSize(conn, 4096)
	conn.SetReadDeadline(time.Now().Add(replyTimeout))
	for i, exp := range p.exps {
		if !w.check(br, exp, fmt.Sprintf("%s line %d of %d", what, i+1, p.lines), p.send) {
			<-writeDone
			return p.lines
		}
	}
	switch {
	case p.stream:
		w.st.subs.Add(1)
		if shut {
			// SHUT_WR ends a subscription: what was queued, then EOF.
			w.readToEOF(br, what+" subscription after SHUT_WR")
		}
	case p.closed:
		w.readToEOF(br, what+" after a line over MaxLine")
	case shut:
		if p.partial > 0 {
			exp := expectation{code: "bad_request"}
			if p.partial > protocol.MaxLine {
				exp.tooLong = true
			}
			if !w.check(br, exp, what+" partial line after SHUT_WR", p.send) {
				break
			}
		}
		w.readToEOF(br, what+" after SHUT_WR")
	}
	conn.SetReadDeadline(time.Now())
	if err := <-writeDone; err != nil && !p.closed && !(p.partial > protocol.MaxLine) && !p.stream {
		w.st.fail("%s: write: %v", what, err)
	}
	return p.lines
}

// write sends b in one write or in random pieces.
func (w *worker) write(conn *net.UnixConn, b []byte) error {
	conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	if w.g.r.IntN(4) != 0 {
		_, err := conn.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(len(b), 1+w.g.r.IntN(700))
		if _, err := conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// check reads one reply and compares it with exp.
func (w *worker) check(br *bufio.Reader, exp expectation, what string, sent []byte) bool {
	line, err := br.ReadBytes('\n')
	if err != nil {
		w.st.fail("%s: no reply (want %+v): %v; sent %q", what, exp, err, clip(sent))
		return false
	}
	var r reply
	if err := json.Unmarshal(line, &r); err != nil || r.OK == nil {
		w.st.fail("%s: reply %q is not a reply: %v", what, clip(line), err)
		return false
	}
	w.st.replies.Add(1)
	switch {
	case exp.tooLong:
		if *r.OK || r.Code != "bad_request" || r.Error != "line too long" {
			w.st.fail("%s: want line too long, got %s", what, clip(line))
			return false
		}
	case *r.OK != exp.ok || !exp.ok && r.Code != exp.code:
		w.st.fail("%s: want ok=%v code=%q, got %s; sent %q", what, exp.ok, exp.code, clip(line), clip(sent))
		return false
	case r.State != nil && r.State.Status != "running" && r.State.Status != "paused":
		w.st.fail("%s: container is %s", what, r.State.Status)
	case exp.sub && r.Protocol != protocol.Version:
		w.st.fail("%s: subscribe reply %s", what, clip(line))
	}
	return true
}

// readToEOF reads until the shim closes the connection. Events of a
// subscription may come first; ECONNRESET counts as EOF (the shim closed
// with input unread).
func (w *worker) readToEOF(br *bufio.Reader, what string) {
	_, err := io.Copy(io.Discard, br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		w.st.fail("%s: want EOF, got %v", what, err)
	}
}

// withFiles sends requests with descriptors (SCM_RIGHTS), one line per
// sendmsg, each waiting for its reply: any op with descriptors of any
// kind, exec with the number it says (of kinds an exec stage cannot block
// on), adopt with a pidfd or something else.
func (w *worker) withFiles(conn *net.UnixConn) int {
	br := bufio.NewReaderSize(conn, 4096)
	n := 1 + w.g.r.IntN(8)
	sent := 0
	for i := range n {
		line, fds, exp := w.fileRequest()
		conn.SetWriteDeadline(time.Now().Add(replyTimeout))
		if _, _, err := conn.WriteMsgUnix(append(line, '\n'), unix.UnixRights(fds...), nil); err != nil {
			w.st.fail("files: sendmsg: %v", err)
			return sent
		}
		sent++
		w.st.withFiles.Add(1)
		w.st.files.Add(int64(len(fds)))
		conn.SetReadDeadline(time.Now().Add(replyTimeout))
		if !w.checkAny(br, exp, fmt.Sprintf("files request %d %q with %d descriptors", i+1, clip(line), len(fds))) {
			return sent
		}
	}
	return sent
}

// fileExp is what a request with descriptors may get: ok, or one of codes.
type fileExp struct {
	ok    bool
	codes []string
}

func (w *worker) fileRequest() ([]byte, []int, fileExp) {
	refused := fileExp{codes: []string{"bad_request"}}
	switch k := w.g.r.IntN(100); {
	case k < 2:
		// A real exec, whose stage fails on the config; or refused for
		// its config (not a regular file), its exec id, or while the
		// container is paused.
		fds := w.pool.execFiles(w.g.r, 1+w.g.r.IntN(6))
		w.st.execs.Add(1)
		line := `{"op":"exec","files":` + strconv.Itoa(len(fds)) + `,"execId":"` + w.g.execID() + `"}`
		return []byte(line), fds, fileExp{codes: []string{"internal", "invalid_state", "bad_request"}}
	case k < 12:
		// An exec that says a number other than what comes.
		fds := w.pool.any(w.g.r, 1+w.g.r.IntN(8))
		line := `{"op":"exec","files":` + strconv.Itoa(len(fds)+1+w.g.r.IntN(4)) + `}`
		return []byte(line), fds, refused
	case k < 20:
		// Adopt: of the helper process (taken once, refused after, or
		// refused while paused), or of anything else.
		line := []byte(`{"op":"adopt","files":1,"execId":"` + w.g.execID() + `"}`)
		if w.g.r.IntN(2) == 0 {
			return line, []int{w.pool.helperPidfd}, fileExp{ok: true, codes: []string{"bad_request", "invalid_state"}}
		}
		return line, []int{w.pool.notPidfd(w.g.r)}, fileExp{codes: []string{"bad_request", "invalid_state"}}
	default:
		// Any other request, valid or not: refused for its descriptors.
		line := w.g.valid()
		if w.g.r.IntN(2) == 0 {
			line = w.g.mutate(line)
		}
		line = bytes.ReplaceAll(line, []byte{'\n'}, []byte{' '})
		if len(line) > 4096 {
			line = line[:4096]
		}
		if req, err := protocol.DecodeRequest(line); err == nil && (req.Op == protocol.OpExec || req.Op == protocol.OpAdopt || dangerous(req)) {
			line = append([]byte{'#'}, line...)
		}
		n := 1 + w.g.r.IntN(4)
		if w.g.r.IntN(20) == 0 {
			n = protocol.MaxExecFiles
		}
		return line, w.pool.any(w.g.r, n), refused
	}
}

// checkAny reads one reply and checks it is one exp allows.
func (w *worker) checkAny(br *bufio.Reader, exp fileExp, what string) bool {
	line, err := br.ReadBytes('\n')
	if err != nil {
		w.st.fail("%s: no reply: %v", what, err)
		return false
	}
	var r reply
	if err := json.Unmarshal(line, &r); err != nil || r.OK == nil {
		w.st.fail("%s: reply %q is not a reply: %v", what, clip(line), err)
		return false
	}
	w.st.replies.Add(1)
	if *r.OK {
		if !exp.ok {
			w.st.fail("%s: want a refusal, got %s", what, clip(line))
		}
		return true
	}
	for _, c := range exp.codes {
		if r.Code == c {
			return true
		}
	}
	w.st.fail("%s: want one of %v, got %s", what, exp.codes, clip(line))
	return true
}

// filesNoNewline sends a few one-byte pieces, each with up to 253
// descriptors, and no newline: the shim holds them until the line ends.
// Then it ends the line (refused), or closes.
func (w *worker) filesNoNewline(conn *net.UnixConn) int {
	k := 1 + w.g.r.IntN(4)
	for range k {
		fds := w.pool.any(w.g.r, 1+w.g.r.IntN(protocol.MaxExecFiles))
		conn.SetWriteDeadline(time.Now().Add(replyTimeout))
		if _, _, err := conn.WriteMsgUnix([]byte{' '}, unix.UnixRights(fds...), nil); err != nil {
			w.st.fail("files-no-newline: sendmsg: %v", err)
			return 1
		}
		w.st.files.Add(int64(len(fds)))
	}
	w.st.withFiles.Add(1)
	if w.g.r.IntN(2) == 0 {
		return 1
	}
	conn.Write([]byte(`{"op":"state"}` + "\n"))
	conn.SetReadDeadline(time.Now().Add(replyTimeout))
	w.checkAny(bufio.NewReader(conn), fileExp{codes: []string{"bad_request"}}, "files-no-newline then a state line")
	return 1
}

// subscribe subscribes (with history, without, since some seq), reads
// the reply, then talks on the stream (lines, descriptors, a line over
// MaxLine, which ends it) and closes, or shuts down its sending side and
// reads to EOF.
func (w *worker) subscribe(conn *net.UnixConn) int {
	req := `{"op":"subscribe"}`
	switch w.g.r.IntN(4) {
	case 0:
		req = `{"op":"subscribe","history":false}`
	case 1:
		req = `{"op":"subscribe","since":` + strconv.FormatUint(w.g.r.Uint64()>>w.g.r.IntN(64), 10) + `}`
	}
	conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	if _, err := conn.Write([]byte(req + "\n")); err != nil {
		w.st.fail("subscribe: write: %v", err)
		return 1
	}
	sent := 1
	br := bufio.NewReaderSize(conn, 4096)
	conn.SetReadDeadline(time.Now().Add(replyTimeout))
	if !w.check(br, expectation{ok: true, sub: true}, "subscribe "+req, []byte(req)) {
		return sent
	}
	w.st.subs.Add(1)
	ended := false
	switch w.g.r.IntN(4) {
	case 0:
		b := w.lines(1+w.g.r.IntN(16), 50)
		sent += bytes.Count(b, []byte{'\n'})
		conn.Write(b)
	case 1:
		conn.Write(append(bytes.Repeat([]byte{'x'}, protocol.MaxLine+1), '\n'))
		sent++
		ended = true
	case 2:
		conn.WriteMsgUnix([]byte("junk\n"), unix.UnixRights(w.pool.any(w.g.r, 3)...), nil)
		sent++
	}
	if ended || w.g.r.IntN(2) == 0 {
		if !ended {
			conn.CloseWrite()
		}
		conn.SetReadDeadline(time.Now().Add(replyTimeout))
		w.readToEOF(br, "subscription after SHUT_WR or a long line")
	}
	return sent
}

// trickle sends a valid request a few bytes at a time.
func (w *worker) trickle(conn *net.UnixConn) int {
	line := append(w.g.valid(), '\n')
	p := makePlan(line)
	for b := p.send; len(b) > 0; {
		n := min(len(b), 1+w.g.r.IntN(3))
		conn.Write(b[:n])
		b = b[n:]
		time.Sleep(time.Duration(w.g.r.IntN(2000)) * time.Microsecond)
	}
	conn.SetReadDeadline(time.Now().Add(replyTimeout))
	w.check(bufio.NewReader(conn), p.exps[0], "trickle", p.send)
	return 1
}

// drop connects and closes at once, or after writing without reading
// (the shim's reply meets a closed socket).
func (w *worker) drop(conn *net.UnixConn) int {
	if w.g.r.IntN(2) == 0 {
		return 0
	}
	p := makePlan(w.lines(1+w.g.r.IntN(8), 50))
	conn.Write(p.send)
	return p.lines
}

// idle holds a connection silent past the shim's idle limit and checks
// that it is told and closed.
func idle(sock string, st *stats, wait time.Duration) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		st.fail("idle: connect: %v", err)
		return
	}
	defer conn.Close()
	st.idle.Add(1)
	conn.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil || !bytes.Contains(line, []byte("no complete request within")) {
		st.fail("idle: want the idle limit's line, got %q, %v", line, err)
	}
}

func clip(b []byte) string {
	if len(b) > 160 {
		return string(b[:160]) + "..." + strconv.Itoa(len(b)) + " bytes"
	}
	return string(b)
}
