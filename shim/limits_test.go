package shim

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// TestAcceptBackoff: one log line when accept starts failing and one when
// it works again, however many failures between; the delay doubles up to
// its cap.
func TestAcceptBackoff(t *testing.T) {
	var out bytes.Buffer
	l := log.New(&out, "", 0)
	var b acceptBackoff
	emfile := os.NewSyscallError("accept4", unix.EMFILE)
	b.failed(l, emfile)
	b.failed(l, emfile)
	if b.delay != 2*acceptBackoffMin || b.failures != 2 {
		t.Errorf("after two failures: delay %v, failures %d", b.delay, b.failures)
	}
	b.succeeded(l)
	b.succeeded(l)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "too many open files") || !strings.Contains(lines[1], "working again after 2 failures") {
		t.Errorf("log %q", out.String())
	}
	// A second episode within the minute is counted, not logged.
	b.failed(l, emfile)
	b.succeeded(l)
	if b.unlogged != 1 || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("second episode: unlogged %d, log %q", b.unlogged, out.String())
	}
}

// TestConnSlots: past maxConns a connection is answered with the busy
// error and closed; a released slot is free again.
func TestConnSlots(t *testing.T) {
	cs := newConnSlots()
	var releases []func()
	for range maxConns {
		release, ok := cs.take()
		if !ok {
			t.Fatalf("slot %d refused", len(releases))
		}
		releases = append(releases, release)
	}
	if _, ok := cs.take(); ok {
		t.Fatal("a slot past the limit")
	}
	for _, wait := range []bool{true, false} {
		if !wait {
			// Every refusal slot taken: refused without waiting.
			for range maxRefusing {
				cs.refusing <- struct{}{}
			}
		}
		server, client := socketPair(t)
		client.Write([]byte(`{"op":"state"}` + "\n"))
		cs.refuse(server)
		line, err := protocol.NewDecoder(client).Line()
		if err != nil || !strings.Contains(string(line), `"code":"busy"`) {
			t.Errorf("refused client read %q, %v", line, err)
		}
		client.SetReadDeadline(time.Now().Add(testWait))
		if _, err := client.Read(make([]byte, 1)); err == nil {
			t.Error("refused connection not closed")
		}
	}
	releases[0]()
	if _, ok := cs.take(); !ok {
		t.Error("released slot not free")
	}
}

func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestReadFailed: a request line that cannot be read is answered, unless
// the client hung up.
func TestReadFailed(t *testing.T) {
	s := &server{}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{os.ErrDeadlineExceeded, "no complete request within 30s"},
		{protocol.ErrLineTooLong, `"line too long","code":"bad_request"`},
	} {
		server, client := socketPair(t)
		s.readFailed(server, tc.err)
		server.Close()
		line, err := protocol.NewDecoder(client).Line()
		if err != nil || !strings.Contains(string(line), tc.want) {
			t.Errorf("%v: client read %q, %v", tc.err, line, err)
		}
	}
	server, client := socketPair(t)
	s.readFailed(server, net.ErrClosed)
	server.Close()
	if line, err := protocol.NewDecoder(client).Line(); !errors.Is(err, io.EOF) {
		t.Errorf("hung-up client read %q, %v, want EOF", line, err)
	}
}
