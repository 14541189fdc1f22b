package container

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/internal/flatjson"
	"github.com/crier-runtime/crier/internal/jsondec"
	"github.com/crier-runtime/crier/protocol"
)

// The parent and the init stage talk over a socketpair, one JSON message per
// line. The sequence is fixed:
//
//	parent                               init
//	fork into new namespaces,
//	born in its cgroups          ---->   (reads its config)
//	cgroup limits set; msgConfig ---->
//	(a speculative init, forked before the config was read, gets
//	msgSpec, the config's bytes, as soon as the parent has read them,
//	then msgConfig with Placed before its cgroups are made, and builds
//	the rootfs up to the first mount that shows cgroups while the
//	parent makes them and moves it in:)
//	cgroup limits set; msgPlaced ---->   moves its main thread into
//	                                     the v1 cgroups (MoveSelf)
//	                             <----   (for an idmapped bind whose source
//	                                     is in the rootfs, at its turn:)
//	                             <----   msgIDMap: its clone, to be mapped
//	msgIDMapDone                 ---->
//	                             <----   msgMounted: rootfs prepared
//	prestart, createRuntime hooks
//	msgContinue                  ---->
//	                                     createContainer hooks, pivot_root
//	                             <----   msgReady: the container is created
//	(with a terminal: the master
//	to the console socket)
//	msgTerminal                  ---->
//	                                     the slave becomes init's
//	                                     terminal and stdio
//	                             <----   msgAttached
//	msgStart (at `start`)        ---->
//	(or none, with StartAtOnce:
//	init goes on at once)
//	                                     startContainer hooks
//	                             <----   msgExec
//	                                     (a filter that notifies:)
//	                             <----   msgSeccomp: the listener's fd
//	listener to the agent,
//	msgSeccompDone               ---->
//	                                     execve closes the socket
//
// At any point init may send msgError and exit; EOF from the parent tells
// init to give up. msgConfig may carry descriptors (SCM_RIGHTS): the
// detached trees of the idmapped mounts, see idmap_linux.go, and with a
// user namespace of the bind mounts, see bindsrc_linux.go.
const (
	msgConfig = "config"
	msgPlaced = "placed"
	// msgSpec, to a speculative init before its config, is config.json
	// as the parent read it (SpecJSON), which init decodes while it
	// waits; msgConfig then leaves its SpecJSON out (SpecAhead) if the
	// spec is those bytes.
	msgSpec     = "spec"
	msgMounted  = "mounted"
	msgContinue = "continue"
	msgReady    = "ready"
	msgStart    = "start"
	// msgTerminal's Pty is the pty slave init makes its terminal and
	// stdio while created, as runc's init has them; msgAttached says done.
	msgTerminal = "terminal"
	msgAttached = "attached"
	msgExec     = "exec"
	msgError    = "error"
	// msgExecFailed is msgError for the execve of the process itself,
	// whose message the parent passes on as the process's own
	// (protocol.ErrExecFailed).
	msgExecFailed = "execFailed"
	// msgSeccomp's Message is the descriptor number of the listener in
	// init (seccomp_agent_linux.go); msgSeccompDone says it reached the
	// agent.
	msgSeccomp     = "seccomp"
	msgSeccompDone = "seccompDone"
	// msgIDMap's Message is the index in spec.Mounts of the mount whose
	// tree comes with it (rootfssrc_linux.go); msgIDMapDone says the
	// parent has mapped it.
	msgIDMap     = "idmap"
	msgIDMapDone = "idmapDone"
)

// message is one line on the sync socket.
type message struct {
	Type    string      `json:"type"`
	Message string      `json:"message,omitempty"`
	Config  *initConfig `json:"config,omitempty"`
	// Pty, on msgTerminal, is the terminal init attaches to.
	Pty string `json:"pty,omitempty"`
	// SpecJSON, on msgSpec, is config.json's bytes.
	SpecJSON json.RawMessage `json:"specJSON,omitempty"`
}

// initConfig is all the init stage needs to know.
type initConfig struct {
	ID     string      `json:"id"`
	Pid    int         `json:"pid"` // init's pid as the host sees it, for hooks
	Bundle string      `json:"bundle"`
	Rootfs string      `json:"rootfs"`
	Spec   *specs.Spec `json:"-"`
	// SpecJSON is Spec on the wire: config.json's bytes as the parent read
	// them when init's spec is the config itself (specForInit changed
	// nothing), so that the parent does not encode the spec again, which
	// would first build encoding/json's encoders for every runtime-spec
	// type. The receiver decodes it into Spec (decodeSpec).
	SpecJSON json.RawMessage `json:"spec"`
	// Namespaces says which namespaces the parent created, so init knows
	// e.g. whether it may mount.
	NewMountNS  bool `json:"newMountNS"`
	NewCgroupNS bool `json:"newCgroupNS"`
	NewUTSNS    bool `json:"newUTSNS"`
	// NoPivot: enter the rootfs with MS_MOVE and chroot (moveRootInto).
	NoPivot bool `json:"noPivot,omitempty"`
	// Trees lists, in order, the index in Spec.Mounts of each detached
	// mount tree that came with the config: the idmapped mounts
	// (idmap_linux.go) and, with a user namespace, the bind mounts
	// (bindsrc_linux.go).
	Trees []int `json:"trees,omitempty"`
	// SeccompNoFlags: linux.seccomp.flags is an empty list, which
	// SpecJSON loses when the parent encoded the spec (seccomp.NoFlags).
	SeccompNoFlags bool `json:"seccompNoFlags,omitempty"`
	// Chdir and Unshare are for a speculative init (enterSpeculated):
	// the bundle, and the namespaces its clone did not make.
	Chdir   string  `json:"chdir,omitempty"`
	Unshare uintptr `json:"unshare,omitempty"`
	// Placed: the config came before init was in its cgroups, and
	// msgPlaced follows once it is, before which init touches nothing
	// of the container's.
	Placed bool `json:"placed,omitempty"`
	// MoveSelf are cgroup directories init moves its main thread into
	// itself, once placed and before anything else of the container's
	// (cgroup.MoveSelf); the parent has moved it into the others.
	MoveSelf []string `json:"moveSelf,omitempty"`
	// SpecAhead: SpecJSON is left out, as it is the msgSpec sent before.
	SpecAhead bool `json:"specAhead,omitempty"`
	// StartAtOnce: init starts the process after msgReady without
	// waiting for msgStart (Config.StartAtOnce).
	StartAtOnce bool `json:"startAtOnce,omitempty"`
}

// wireSpec is the config as init decodes it: linuxSpec, and without
// linux.resources either, which the parent applies (see linuxSpec for why).
type wireSpec struct {
	linuxSpec
	Linux *struct {
		specs.Linux
		Resources json.RawMessage `json:"resources,omitempty"`
	} `json:"linux,omitempty"`
}

// decodeSpec fills Spec from SpecJSON.
func (ic *initConfig) decodeSpec() error {
	if len(ic.SpecJSON) == 0 {
		return nil
	}
	spec, err := decodeWireSpec(ic.SpecJSON)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ic.useSpec(spec)
	return nil
}

// useSpec makes spec, decoded from the wire, the config's.
func (ic *initConfig) useSpec(spec *specs.Spec) {
	ic.Spec = spec
	if spec.Linux != nil {
		seccomp.KeepNoFlags(spec.Linux.Seccomp, ic.SeccompNoFlags)
	}
}

// decodeWireSpec decodes init's spec (wireSpec).
func decodeWireSpec(b []byte) (*specs.Spec, error) {
	var ws wireSpec
	if err := jsondec.Unmarshal(b, &ws); err != nil {
		return nil, err
	}
	spec := &ws.Spec
	if ws.Linux != nil {
		spec.Linux = &ws.Linux.Linux
	}
	return spec, nil
}

// maxSyncFiles is how many descriptors one message on the sync socket can
// carry: the kernel's SCM_MAX_FD.
const maxSyncFiles = 253

// syncConn is one end of the sync socket.
type syncConn struct {
	f   *os.File
	r   *filesReader
	dec *json.Decoder
}

func newSyncConn(f *os.File) *syncConn {
	c := &syncConn{f: f, r: &filesReader{f: f}}
	c.dec = json.NewDecoder(c.r)
	return c
}

// sendFiles sends m with files attached to its first byte.
func (c *syncConn) sendFiles(m message, files []*os.File) error {
	if len(files) == 0 {
		return c.send(m)
	}
	b, err := m.marshal()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("sync: send %s: %w", m.Type, err)
	}
	var n int
	werr := rc.Write(func(fd uintptr) bool {
		n, err = unix.SendmsgN(int(fd), b, unix.UnixRights(fds...), nil, 0)
		return err != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err == nil && n < len(b) {
		_, err = c.f.Write(b[n:])
	}
	if err != nil {
		return fmt.Errorf("sync: send %s: %w", m.Type, os.NewSyscallError("sendmsg", err))
	}
	return nil
}

// takeFiles returns the descriptors received so far and forgets them.
func (c *syncConn) takeFiles() []*os.File {
	fs := c.r.files
	c.r.files = nil
	return fs
}

// filesReader reads the socket with recvmsg and keeps the descriptors that
// come with the bytes: read(2) would have the kernel close them.
type filesReader struct {
	f     *os.File
	oob   []byte
	files []*os.File
}

func (r *filesReader) Read(p []byte) (int, error) {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	if r.oob == nil {
		r.oob = make([]byte, unix.CmsgSpace(maxSyncFiles*4))
	}
	var n, oobn, flags int
	rerr := rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, err = unix.Recvmsg(int(fd), p, r.oob, unix.MSG_CMSG_CLOEXEC)
			if err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	})
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, os.NewSyscallError("recvmsg", err)
	}
	if oobn > 0 {
		if err := r.keepFiles(r.oob[:oobn]); err != nil {
			return 0, err
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return 0, errors.New("more descriptors than a message can carry")
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *filesReader) keepFiles(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return err
		}
		for _, fd := range fds {
			r.files = append(r.files, os.NewFile(uintptr(fd), "fd "+fmt.Sprint(fd)))
		}
	}
	return nil
}

func (c *syncConn) send(m message) error {
	b, err := m.marshal()
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
	if m.Config != nil {
		if err := m.Config.decodeSpec(); err != nil {
			return m, fmt.Errorf("sync: receive %s: %w", m.Type, err)
		}
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

func (c *syncConn) Close() error {
	closeFiles(c.takeFiles())
	return c.f.Close()
}

// startInit is the start exchange (msgStart, then msgExec and the close
// that execve makes, or msgError) written and read without encoding/json.
// Without send, init was told to start at once (initConfig.StartAtOnce):
// msgStart is not sent, and the rest read as ever.
// The serving shim calls Container.Start, and the caches encoding/json
// keeps for message, whose Config reaches the whole runtime-spec type
// tree, would stay resident there for the container's life. listener,
// if set, takes init's seccomp listener when init sends msgSeccomp.
func (c *syncConn) startInit(send bool, listener func(fd int) error) error {
	if send {
		o := flatjson.Begin(nil)
		o.String("type", msgStart)
		if _, err := c.f.Write(append(o.End(), '\n')); err != nil {
			return fmt.Errorf("sync: send %s: %w", msgStart, err)
		}
	}
	// Init sends nothing between msgReady and msgStart, but read on from
	// whatever the decoder may hold all the same.
	lines := bufio.NewReaderSize(io.MultiReader(c.dec.Buffered(), c.r), 512)
	m, err := recvFlat(lines)
	switch {
	case err != nil:
		return err
	case m.Type == msgError:
		return errors.New(m.Message)
	case m.Type != msgExec:
		return fmt.Errorf("sync: got %q, want %q", m.Type, msgExec)
	}
	// execve closes init's end (close-on-exec); anything else is an error
	// sent after msgExec because execve itself failed, or the listener of
	// a filter that notifies, once.
	for {
		m, err = recvFlat(lines)
		if errors.Is(err, errSyncEOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Type == msgExecFailed {
			return protocol.Errorf(protocol.ErrExecFailed, "%s", m.Message)
		}
		if m.Type != msgSeccomp || listener == nil {
			return errors.New(m.Message)
		}
		fd, err := strconv.Atoi(m.Message)
		if err != nil {
			return fmt.Errorf("sync: %s: bad descriptor %q", msgSeccomp, m.Message)
		}
		if err := listener(fd); err != nil {
			return err
		}
		listener = nil
		done := flatjson.Begin(nil)
		done.String("type", msgSeccompDone)
		if _, err := c.f.Write(append(done.End(), '\n')); err != nil {
			return fmt.Errorf("sync: send %s: %w", msgSeccompDone, err)
		}
	}
}

// handListener is init's seccomp.Handoff: it tells the parent which
// descriptor the listener is and waits until the parent has sent it to
// the agent (seccomp_agent_linux.go). fd is the socket's descriptor,
// known beforehand: os.File.Fd may make a call (fcntl) that the filter
// notifies.
func (c *syncConn) handListener(fd, listener int) error {
	prefix := `{"type":"` + msgSeccomp + `","message":"`
	if err := writeListenerFD(fd, prefix, `"}`, listener); err != nil {
		return fmt.Errorf("sync: send %s: %w", msgSeccomp, err)
	}
	_, err := c.expect(msgSeccompDone)
	return err
}

// flatMessage is what startInit reads of init's messages.
type flatMessage struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// recvFlat reads one message with only string type and message fields,
// falling back to encoding/json (and its small cache for flatMessage) for
// anything flatjson leaves to it, such as escapes.
func recvFlat(r *bufio.Reader) (flatMessage, error) {
	var m flatMessage
	line, err := r.ReadBytes('\n')
	// encoding/json's decoder stops after a value, before the newline
	// that ends its line: a parent that read msgReady with it (the create
	// image, when it serves instead of re-executing) finds that newline
	// first here.
	for err == nil && len(bytes.TrimSpace(line)) == 0 {
		line, err = r.ReadBytes('\n')
	}
	if errors.Is(err, io.EOF) {
		return m, errSyncEOF
	}
	if err != nil {
		return m, fmt.Errorf("sync: receive: %w", err)
	}
	ok := flatjson.Scan(line[:len(line)-1], func(key []byte, v flatjson.Value) bool {
		var dst *string
		switch k := string(key); {
		case k == "type":
			dst = &m.Type
		case k == "message":
			dst = &m.Message
		case strings.EqualFold(k, "type"), strings.EqualFold(k, "message"):
			return false // case folding is encoding/json's business
		default:
			return true
		}
		switch v.Kind {
		case flatjson.String:
			*dst = v.Str()
		case flatjson.Null:
		default:
			return false
		}
		return true
	})
	if !ok {
		m = flatMessage{}
		if err := json.Unmarshal(line, &m); err != nil {
			return m, fmt.Errorf("sync: receive: %w", err)
		}
	}
	return m, nil
}
