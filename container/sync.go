package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The parent and the init stage talk over a socketpair, one JSON message per
// line. The sequence is fixed:
//
//	parent                               init
//	fork into new namespaces     ---->   (reads its config)
//	cgroups applied; msgConfig   ---->
//	                             <----   msgMounted: rootfs prepared
//	prestart, createRuntime hooks
//	msgContinue                  ---->
//	                                     createContainer hooks, pivot_root
//	                             <----   msgReady: the container is created
//	msgStart (at `start`)        ---->
//	                                     startContainer hooks
//	                             <----   msgExec, then execve closes the socket
//
// At any point init may send msgError and exit; EOF from the parent tells
// init to give up.
const (
	msgConfig   = "config"
	msgMounted  = "mounted"
	msgContinue = "continue"
	msgReady    = "ready"
	msgStart    = "start"
	msgExec     = "exec"
	msgError    = "error"
)

// message is one line on the sync socket.
type message struct {
	Type    string      `json:"type"`
	Message string      `json:"message,omitempty"`
	Config  *initConfig `json:"config,omitempty"`
	// Pty, on msgStart, is the terminal init attaches to before exec.
	Pty string `json:"pty,omitempty"`
}

// initConfig is all the init stage needs to know.
type initConfig struct {
	ID     string      `json:"id"`
	Pid    int         `json:"pid"` // init's pid as the host sees it, for hooks
	Bundle string      `json:"bundle"`
	Rootfs string      `json:"rootfs"`
	Spec   *specs.Spec `json:"spec"`
	// Namespaces says which namespaces the parent created, so init knows
	// e.g. whether it may mount.
	NewMountNS  bool `json:"newMountNS"`
	NewCgroupNS bool `json:"newCgroupNS"`
	NewUTSNS    bool `json:"newUTSNS"`
}

// syncConn is one end of the sync socket.
type syncConn struct {
	f   *os.File
	dec *json.Decoder
}

func newSyncConn(f *os.File) *syncConn {
	return &syncConn{f: f, dec: json.NewDecoder(f)}
}

func (c *syncConn) send(m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := c.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sync: send %s: %w", m.Type, err)
	}
	return nil
}

// errSyncEOF means the other side closed the socket.
var errSyncEOF = errors.New("sync: peer closed")

func (c *syncConn) recv() (message, error) {
	var m message
	if err := c.dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return m, errSyncEOF
		}
		return m, fmt.Errorf("sync: receive: %w", err)
	}
	return m, nil
}

// expect receives the next message and checks its type. An error message
// from init becomes the returned error.
func (c *syncConn) expect(typ string) (message, error) {
	m, err := c.recv()
	if err != nil {
		return m, err
	}
	if m.Type == msgError {
		return m, errors.New(m.Message)
	}
	if m.Type != typ {
		return m, fmt.Errorf("sync: got %q, want %q", m.Type, typ)
	}
	return m, nil
}

func (c *syncConn) Close() error { return c.f.Close() }
