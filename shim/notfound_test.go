package shim

import (
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// connPair returns the two ends of a connected Unix stream socket.
func connPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

// TestRequestAfterDelete: a request that reaches the shim once its loop
// has finished, that is once the container is deleted, is answered
// not_found, and the connection is not served further, in the serving
// image too (no Config there).
func TestRequestAfterDelete(t *testing.T) {
	s := &server{rec: record{ID: "c1"}, msgs: make(chan any), quit: make(chan struct{})}
	close(s.quit)
	srv, cli := connPair(t)
	r, ok := s.serveLine(srv, []byte(`{"op":"kill","signal":9}`), &fdConn{conn: srv})
	if r != nil || ok {
		t.Errorf("serveLine after the loop = %v, %v; want nil, false", r, ok)
	}
	var reply protocol.Reply
	if err := protocol.NewDecoder(cli).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	err := reply.Err()
	if reply.Code != protocol.CodeNotFound || !errors.Is(err, protocol.ErrNotExist) || err.Error() != `container "c1" does not exist` {
		t.Errorf("reply %+v, want not_found: container \"c1\" does not exist", reply)
	}
}
