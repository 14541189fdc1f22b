package protocol_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// A step is one exchange of the fake shim: it reads a request with op want
// (nothing when want is empty), then writes send verbatim.
type step struct {
	want string
	send string
}

// lines joins canned lines, each with its newline.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// fakeShim serves one connection on path with the canned steps, then closes
// it, or with hold keeps it open until the test ends. It returns the
// requests it read, in order, once it is done.
func fakeShim(t *testing.T, path string, hold bool, steps ...step) <-chan []protocol.Request {
	t.Helper()
	ln, err := protocol.Listen(path)
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(path), err)
	}
	ctx := t.Context()
	reqs := make(chan []protocol.Request, 1)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var got []protocol.Request
		defer func() { reqs <- got }()
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("fake shim: accept: %v", err)
			}
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		dec := protocol.NewDecoder(conn)
		for _, s := range steps {
			if s.want != "" {
				line, err := dec.Line()
				if err != nil {
					t.Errorf("fake shim: reading a %s request: %v", s.want, err)
					return
				}
				req, err := protocol.DecodeRequest(line)
				if err != nil {
					t.Errorf("fake shim: client sent %q: %v", line, err)
					return
				}
				if req.Op != s.want {
					t.Errorf("fake shim: client sent %q, want op %q", line, s.want)
				}
				got = append(got, req)
			}
			if _, err := io.WriteString(conn, s.send); err != nil {
				if ctx.Err() == nil {
					t.Errorf("fake shim: write: %v", err)
				}
				return
			}
		}
		if hold {
			<-ctx.Done()
		}
	}()
	return reqs
}

// socketPaths returns a socket path that fits in sun_path and one that
// does not, each in a fresh directory.
func socketPaths(t *testing.T) map[string]string {
	t.Helper()
	short, err := os.MkdirTemp("", "crier")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120), strings.Repeat("e", 200))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{
		"short": filepath.Join(short, protocol.SocketName),
		"long":  filepath.Join(long, protocol.SocketName),
	}
	if n := len(paths["short"]); n > 107 {
		t.Fatalf("short path is %d bytes", n)
	}
	if n := len(paths["long"]); n <= 108 {
		t.Fatalf("long path is only %d bytes", n)
	}
	return paths
}

func dial(t *testing.T, path string) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial(t.Context(), path)
	if err != nil {
		t.Fatalf("Dial(%d-byte path): %v", len(path), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenDial(t *testing.T) {
	for name, path := range socketPaths(t) {
		t.Run(name, func(t *testing.T) {
			reqs := fakeShim(t, path, false,
				step{want: "hello", send: lines(`{"ok":true,"protocol":1}`)},
				step{want: "state", send: lines(`{"ok":true,"state":{"ociVersion":"1.2.0","id":"c1","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-02T03:04:05.000000000Z","owner":"root","future":true}}`)},
			)
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatalf("Listen left no socket at the path: %v", err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
				t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
			}
			c := dial(t, path)
			r, err := c.Do(t.Context(), protocol.Request{Op: protocol.OpHello})
			if err != nil || !r.OK || r.Protocol != protocol.Version {
				t.Fatalf("hello = %+v, %v", r, err)
			}
			st, err := c.State(t.Context())
			if err != nil {
				t.Fatalf("State: %v", err)
			}
			want := &protocol.State{OCIVersion: "1.2.0", ID: "c1", Pid: 42, Status: "running", Bundle: "/b", Rootfs: "/b/rootfs", Created: "2026-01-02T03:04:05.000000000Z", Owner: "root"}
			if !reflect.DeepEqual(st, want) {
				t.Errorf("State = %+v, want %+v", st, want)
			}
			if got := <-reqs; len(got) != 2 {
				t.Errorf("fake shim read %d requests, want 2", len(got))
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	paths := socketPaths(t)
	for name, path := range paths {
		t.Run(name+"/no socket", func(t *testing.T) {
			_, err := protocol.Dial(t.Context(), path)
			if !errors.Is(err, unix.ENOENT) {
				t.Errorf("Dial = %v, want ENOENT", err)
			}
		})
		t.Run(name+"/no directory", func(t *testing.T) {
			_, err := protocol.Dial(t.Context(), filepath.Join(filepath.Dir(path), "gone", protocol.SocketName))
			if err == nil {
				t.Errorf("Dial into a missing directory succeeded")
			}
		})
		t.Run(name+"/dead shim", func(t *testing.T) {
			// A socket file nobody listens on, as a SIGKILLed shim leaves.
			ln, err := protocol.Listen(path)
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			defer os.Remove(path)
			_, err = protocol.Dial(t.Context(), path)
			if !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("Dial = %v, want ECONNREFUSED", err)
			}
		})
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("s", 100)+".sock")
	if _, err := protocol.Listen(long); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Listen with a 100-byte socket name = %v, want a too long error", err)
	}
}

func TestRequestErrors(t *testing.T) {
	path := socketPaths(t)["long"]
	reply := func(code, msg string) string {
		return lines(`{"ok":false,"error":"` + msg + `","code":"` + code + `"}`)
	}
	reqs := fakeShim(t, path, false,
		step{want: "start", send: reply("invalid_state", "container c1 is running, not created")},
		step{want: "state", send: reply("not_found", "container c1 does not exist")},
		step{want: "kill", send: reply("bad_request", "kill: invalid signal 0")},
		step{want: "delete", send: reply("internal", "delete: something broke")},
		step{want: "start", send: reply("some_future_code", "newer shim")},
		step{want: "subscribe", send: reply("invalid_state", "no")},
		step{want: "state", send: lines(`{"ok":true}`)},
		step{want: "start", send: lines(`{"ok":true}`)},
		step{want: "kill", send: lines(`{"ok":true}`)},
		step{want: "delete", send: lines(`{"ok":true}`)},
		step{want: "state", send: lines(`this is not json`)},
		step{want: "start"}, // and then the connection closes, unanswered
	)
	c := dial(t, path)
	ctx := t.Context()
	startErr := c.Start(ctx)
	_, stateErr := c.State(ctx)
	killErr := c.Kill(ctx, unix.SIGKILL, true)

	for _, tc := range []struct {
		name     string
		err      error
		sentinel error
		code     string
		msg      string
	}{
		{"start", startErr, protocol.ErrInvalidState, protocol.CodeInvalidState, "container c1 is running, not created"},
		{"state", stateErr, protocol.ErrNotExist, protocol.CodeNotFound, "container c1 does not exist"},
		{"kill", killErr, protocol.ErrBadRequest, protocol.CodeBadRequest, "kill: invalid signal 0"},
		{"delete", c.Delete(ctx, false), nil, protocol.CodeInternal, "delete: something broke"},
		{"future code", c.Start(ctx), nil, "some_future_code", "newer shim"},
		{"subscribe", c.Subscribe(ctx, protocol.SubscribeOptions{}), protocol.ErrInvalidState, protocol.CodeInvalidState, "no"},
	} {
		var re *protocol.RemoteError
		if !errors.As(tc.err, &re) {
			t.Errorf("%s: error %v (%T) is not a *RemoteError", tc.name, tc.err, tc.err)
			continue
		}
		if re.Code != tc.code || tc.err.Error() != tc.msg {
			t.Errorf("%s: error %q code %q, want %q code %q", tc.name, tc.err, re.Code, tc.msg, tc.code)
		}
		for _, s := range []error{protocol.ErrInvalidState, protocol.ErrNotExist, protocol.ErrBadRequest, protocol.ErrOverflow} {
			if want := s == tc.sentinel; errors.Is(tc.err, s) != want {
				t.Errorf("%s: errors.Is(%v, %v) = %v", tc.name, tc.err, s, !want)
			}
		}
	}

	if st, err := c.State(ctx); err == nil {
		t.Errorf("State with a reply without state = %+v, want an error", st)
	}
	if err := c.Start(ctx); err != nil {
		t.Errorf("Start: %v", err)
	}
	if err := c.Kill(ctx, unix.SIGTERM, false); err != nil {
		t.Errorf("Kill: %v", err)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := c.State(ctx); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("State with a malformed reply: %v", err)
	}
	if err := c.Start(ctx); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Start with no reply before EOF: %v, want io.ErrUnexpectedEOF", err)
	}

	// What the client put on the wire.
	want := []protocol.Request{
		{Op: "start"},
		{Op: "state"},
		{Op: "kill", Signal: 9, All: true},
		{Op: "delete"},
		{Op: "start"},
		{Op: "subscribe", History: func() *bool { b := true; return &b }()},
		{Op: "state"},
		{Op: "start"},
		{Op: "kill", Signal: 15},
		{Op: "delete", Force: true},
		{Op: "state"},
		{Op: "start"},
	}
	if got := <-reqs; !reflect.DeepEqual(got, want) {
		t.Errorf("requests on the wire:\n got %+v\nwant %+v", got, want)
	}
}

const (
	created = `{"type":"created","id":"c1","timestamp":"2026-01-02T03:04:05.000000001Z","seq":1,"pid":42}`
	started = `{"type":"started","id":"c1","timestamp":"2026-01-02T03:04:05.000000002Z","seq":2,"pid":42}`
	stopped = `{"type":"stopped","id":"c1","timestamp":"2026-01-02T03:04:05.000000003Z","seq":3,"pid":42,"exitStatus":137,"signal":"SIGKILL"}`
	paused  = `{"type":"paused","id":"c1","timestamp":"2026-01-02T03:04:05.000000004Z","seq":4,"future":{"a":1}}`
	deleted = `{"type":"deleted","id":"c1","timestamp":"2026-01-02T03:04:05.000000005Z","seq":5}`
	subOK   = `{"ok":true,"protocol":1}`
)

func TestSubscribeEvents(t *testing.T) {
	for name, path := range socketPaths(t) {
		t.Run(name, func(t *testing.T) {
			reqs := fakeShim(t, path, false,
				step{want: "subscribe", send: lines(subOK, created)},
				// Live events, the first one split across writes.
				step{send: started[:10]},
				step{send: started[10:] + "\n" + lines(stopped, paused, deleted)},
			)
			c := dial(t, path)
			ctx := t.Context()
			if err := c.Subscribe(ctx, protocol.SubscribeOptions{NoHistory: true}); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			var got []protocol.Event
			for {
				ev, err := c.Next(ctx)
				if err != nil {
					if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("Next after %d events: %v, want io.EOF", len(got), err)
					}
					break
				}
				got = append(got, ev)
			}
			status := 137
			want := []protocol.Event{
				{Type: "created", ID: "c1", Timestamp: "2026-01-02T03:04:05.000000001Z", Seq: 1, Pid: 42},
				{Type: "started", ID: "c1", Timestamp: "2026-01-02T03:04:05.000000002Z", Seq: 2, Pid: 42},
				{Type: "stopped", ID: "c1", Timestamp: "2026-01-02T03:04:05.000000003Z", Seq: 3, Pid: 42, ExitStatus: &status, Signal: "SIGKILL"},
				{Type: "paused", ID: "c1", Timestamp: "2026-01-02T03:04:05.000000004Z", Seq: 4},
				{Type: "deleted", ID: "c1", Timestamp: "2026-01-02T03:04:05.000000005Z", Seq: 5},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events:\n got %+v\nwant %+v", got, want)
			}
			if _, err := c.Next(ctx); !errors.Is(err, io.EOF) {
				t.Errorf("Next after EOF: %v, want io.EOF again", err)
			}
			no := false
			if r := <-reqs; len(r) != 1 || !reflect.DeepEqual(r[0].History, &no) {
				t.Errorf("subscribe request %+v, want history false", r)
			}
		})
	}
}

func TestNextUnexpectedEOF(t *testing.T) {
	for _, tc := range []struct {
		name string
		send string
		n    int // events before the end
	}{
		{"no events", "", 0},
		{"before deleted", lines(created, started, stopped), 3},
		{"half line", lines(created) + stopped[:20], 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := socketPaths(t)["long"]
			fakeShim(t, path, false, step{want: "subscribe", send: lines(subOK) + tc.send})
			c := dial(t, path)
			if err := c.Subscribe(t.Context(), protocol.SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tc.n; i++ {
				if _, err := c.Next(t.Context()); err != nil {
					t.Fatalf("event %d: %v", i+1, err)
				}
			}
			if _, err := c.Next(t.Context()); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Next = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestNextRemoteError(t *testing.T) {
	path := socketPaths(t)["short"]
	fakeShim(t, path, false, step{want: "subscribe", send: lines(subOK, created,
		`{"ok":false,"error":"subscriber dropped: more than 64 events unread","code":"overflow"}`)})
	c := dial(t, path)
	ctx := t.Context()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev, err := c.Next(ctx); err != nil || ev.Type != protocol.EventCreated {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
	_, err := c.Next(ctx)
	var re *protocol.RemoteError
	if !errors.As(err, &re) || !errors.Is(err, protocol.ErrOverflow) || re.Code != protocol.CodeOverflow {
		t.Fatalf("Next = %v (%T), want an overflow RemoteError", err, err)
	}
	if err.Error() != "subscriber dropped: more than 64 events unread" {
		t.Errorf("message %q", err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Next after the error line = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestNextOddLines(t *testing.T) {
	path := socketPaths(t)["short"]
	fakeShim(t, path, false, step{want: "subscribe", send: lines(subOK, `{"ok":true}`, `not json`, `{"ok":false,"error":"create failed: boom","code":"internal"}`)})
	c := dial(t, path)
	ctx := t.Context()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(ctx); err == nil || !strings.Contains(err.Error(), "unexpected line") {
		t.Errorf("Next on an OK reply line = %v, want an unexpected line error", err)
	}
	if _, err := c.Next(ctx); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Next on a malformed line = %v", err)
	}
	_, err := c.Next(ctx)
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Code != protocol.CodeInternal || err.Error() != "create failed: boom" {
		t.Errorf("Next on an internal error line = %v", err)
	}
}

func TestNextContext(t *testing.T) {
	subscribed := func(t *testing.T) *protocol.Client {
		path := socketPaths(t)["long"]
		fakeShim(t, path, true, step{want: "subscribe", send: lines(subOK, created)})
		c := dial(t, path)
		if err := c.Subscribe(t.Context(), protocol.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(t.Context()); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("deadline", func(t *testing.T) {
		c := subscribed(t)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		begin := time.Now()
		if _, err := c.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Next past the deadline = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(begin); d < 90*time.Millisecond || d > 5*time.Second {
			t.Errorf("Next returned after %v with a 100ms deadline", d)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		c := subscribed(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := c.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Next after cancel = %v, want context.Canceled", err)
		}
	})

	t.Run("already done", func(t *testing.T) {
		c := subscribed(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Next with a cancelled context = %v, want context.Canceled", err)
		}
	})
}

// TestNextAfterTimeout checks that a Next that timed out does not spoil the
// next call: the stream goes on where it was. The timed-out context's
// AfterFunc may run only after Next has returned, so this is a race, tried
// many times; it shows most readily under -race.
func TestNextAfterTimeout(t *testing.T) {
	const rounds = 300
	path := socketPaths(t)["short"]
	ln, err := protocol.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	send := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := protocol.NewDecoder(conn).Line(); err != nil {
				return err
			}
			if _, err := io.WriteString(conn, subOK+"\n"); err != nil {
				return err
			}
			for range send {
				time.Sleep(2 * time.Millisecond)
				if _, err := io.WriteString(conn, created+"\n"); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	c := dial(t, path)
	if err := c.Subscribe(t.Context(), protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	failures := 0
	for i := range rounds {
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		_, err := c.Next(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: Next with nothing to read = %v", i, err)
		}
		send <- struct{}{}
		ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
		ev, err := c.Next(ctx)
		cancel()
		if err != nil {
			failures++
			if ev, err = c.Next(t.Context()); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		if ev.Type != protocol.EventCreated {
			t.Fatalf("round %d: Next = %+v", i, ev)
		}
	}
	close(send)
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if failures > 0 {
		t.Errorf("in %d of %d rounds, Next with a fresh 10s context failed after a Next that timed out", failures, rounds)
	}
}

func TestRequestContext(t *testing.T) {
	path := socketPaths(t)["short"]
	fakeShim(t, path, true, step{want: "start"}) // never answers
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with no answer = %v, want context.DeadlineExceeded", err)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	path := socketPaths(t)["short"]
	fakeShim(t, path, true, step{want: "subscribe", send: lines(subOK)})
	c := dial(t, path)
	if err := c.Subscribe(t.Context(), protocol.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Next(context.Background()); done <- err }()
	// Whether Close lands before Next blocks or after, Next must return
	// an error rather than hang or report a clean end.
	c.Close()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("Next on a closed client = %v, want an error other than io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}
