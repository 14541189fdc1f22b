package shim

import (
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// maxHeldFiles bounds the descriptors the shim holds, across its
// connections, for request lines that have not ended yet. A line may
// carry at most protocol.MaxExecFiles; without this bound a client that
// sends descriptors and never ends its lines (root's sends are not bound
// by its own descriptor limit) could fill the shim's table, and the shim
// could accept no connection until the idle limit freed them. A real exec
// line arrives whole with its descriptors, so they are held for
// microseconds; past the bound the descriptors that arrive are closed at
// once and their line refused, as if the kernel had dropped them.
const maxHeldFiles = 1024

// fileBudget counts the descriptors held for unfinished lines; its
// counter is shared by the connections' goroutines.
type fileBudget struct{ held atomic.Int64 }

// take reserves room for one descriptor, if there is some. A nil budget
// has no bound (the unit tests' connections).
func (b *fileBudget) take() bool {
	if b == nil {
		return true
	}
	if b.held.Add(1) > maxHeldFiles {
		b.held.Add(-1)
		return false
	}
	return true
}

func (b *fileBudget) put(n int) {
	if b != nil {
		b.held.Add(-int64(n))
	}
}

// fdConn reads a client's connection, keeping the descriptors that come
// with its bytes (SCM_RIGHTS), which only an exec request may carry. Go
// receives them close-on-exec (MSG_CMSG_CLOEXEC).
type fdConn struct {
	conn   *net.UnixConn
	budget *fileBudget // shared by the shim's connections
	oob    []byte      // allocated by the first read that could use it
	files  []*os.File
	// truncated is set when descriptors were dropped: by the kernel
	// (they did not fit), or here (more than a line may carry, or past
	// the shim's budget). The request they came with is refused.
	truncated bool
}

func (c *fdConn) Read(p []byte) (int, error) {
	if c.oob == nil {
		c.oob = make([]byte, unix.CmsgSpace(4*protocol.MaxExecFiles))
	}
	n, oobn, flags, _, err := c.conn.ReadMsgUnix(p, c.oob)
	if flags&unix.MSG_CTRUNC != 0 {
		c.truncated = true
	}
	if oobn > 0 {
		c.keep(c.oob[:oobn])
	}
	if n < 0 { // on some errors
		n = 0
	}
	return n, err
}

func (c *fdConn) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		c.truncated = true
		return
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if len(c.files) >= protocol.MaxExecFiles || !c.budget.take() {
				unix.Close(fd)
				c.truncated = true
				continue
			}
			c.files = append(c.files, os.NewFile(uintptr(fd), "passed"))
		}
	}
}

// take returns the descriptors received so far, and whether some were
// lost, and forgets them.
func (c *fdConn) take() ([]*os.File, bool) {
	files, truncated := c.files, c.truncated
	c.files, c.truncated = nil, false
	c.budget.put(len(files))
	return files, truncated
}
