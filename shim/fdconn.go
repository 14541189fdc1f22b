package shim

import (
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// fdConn reads a client's connection, keeping the descriptors that come
// with its bytes (SCM_RIGHTS), which only an exec request may carry. Go
// receives them close-on-exec (MSG_CMSG_CLOEXEC).
type fdConn struct {
	conn  *net.UnixConn
	oob   []byte // allocated by the first read that could use it
	files []*os.File
	// truncated is set when the kernel dropped descriptors that did
	// not fit: the request they came with is refused.
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
			c.files = append(c.files, os.NewFile(uintptr(fd), "passed"))
		}
	}
}

// take returns the descriptors received so far, and whether some were
// lost, and forgets them.
func (c *fdConn) take() ([]*os.File, bool) {
	files, truncated := c.files, c.truncated
	c.files, c.truncated = nil, false
	return files, truncated
}
