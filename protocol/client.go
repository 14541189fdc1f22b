package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Client is a connection to one container's shim. Its request methods
// may not be called concurrently; use one Client per goroutine. After a
// successful Subscribe the Client carries only events.
type Client struct {
	conn    *net.UnixConn
	dec     *Decoder
	mu      sync.Mutex // serialises requests
	deleted bool       // Next has returned the deleted event
}

var _ io.Closer = (*Client)(nil)

// Dial connects to the shim socket at path. Paths longer than a sockaddr_un
// holds are reached through /proc/self/fd, so any container ID works.
func Dial(ctx context.Context, path string) (*Client, error) {
	var conn *net.UnixConn
	err := withShortPath(path, func(short string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", short)
		if err != nil {
			return err
		}
		conn = c.(*net.UnixConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, unwrapOpError(err))
	}
	return &Client{conn: conn, dec: NewDecoder(conn)}, nil
}

// Listen creates a listening socket at path, mode 0600, however long path is.
func Listen(path string) (*net.UnixListener, error) {
	var l *net.UnixListener
	err := withShortPath(path, func(short string) error {
		old := unix.Umask(0o177)
		defer unix.Umask(old)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
		if err != nil {
			return err
		}
		// The socket file is removed with the state directory, not by
		// Close, which would look for the /proc/self/fd name.
		ln.SetUnlinkOnClose(false)
		l = ln
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, unwrapOpError(err))
	}
	return l, nil
}

// withShortPath calls fn with a name for path that fits in sun_path: path
// itself when short, else /proc/self/fd/N/base with N an O_PATH descriptor
// of path's directory.
func withShortPath(path string, fn func(string) error) error {
	const sunPathMax = 107 // 108 bytes including the NUL
	if len(path) <= sunPathMax {
		return fn(path)
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	if len(short) > sunPathMax {
		return fmt.Errorf("socket name %q too long", filepath.Base(path))
	}
	return fn(short)
}

func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// Close closes the connection; a blocked Next or request returns an error.
func (c *Client) Close() error { return c.conn.Close() }

// watch makes blocking I/O on the connection honour ctx: a deadline from ctx
// becomes the connection's, and cancellation sets a deadline in the past.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	fired := make(chan struct{})
	undo := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	// If the cancellation already started, wait for it: it must not set
	// its past deadline in the middle of the next call.
	return func() {
		if !undo() {
			<-fired
		}
	}
}

func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// Do sends req and returns the shim's reply. It returns an error both when
// the exchange fails and when the reply is an error (a *RemoteError).
func (c *Client) Do(ctx context.Context, req Request) (*Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()
	line, err := Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(line); err != nil {
		// A shim that refuses a connection (another user's) answers
		// before reading and closes: its reply, still to be read, says
		// why; the broken pipe does not.
		var reply Reply
		if errors.Is(err, unix.EPIPE) && c.dec.Decode(&reply) == nil && reply.Err() != nil {
			return &reply, reply.Err()
		}
		return nil, c.ctxErr(ctx, fmt.Errorf("%s: %w", req.Op, unwrapOpError(err)))
	}
	var reply Reply
	if err := c.dec.Decode(&reply); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, c.ctxErr(ctx, fmt.Errorf("%s: %w", req.Op, unwrapOpError(err)))
	}
	if err := reply.Err(); err != nil {
		return &reply, err
	}
	return &reply, nil
}

// Start starts the container's process.
func (c *Client) Start(ctx context.Context) error {
	_, err := c.Do(ctx, Request{Op: OpStart})
	return err
}

// State returns the container's state.
func (c *Client) State(ctx context.Context) (*State, error) {
	r, err := c.Do(ctx, Request{Op: OpState})
	if err != nil {
		return nil, err
	}
	if r.State == nil {
		return nil, errors.New("state: reply has no state")
	}
	return r.State, nil
}

// Kill sends sig to the container's process, or with all to every process
// in the container.
func (c *Client) Kill(ctx context.Context, sig unix.Signal, all bool) error {
	_, err := c.Do(ctx, Request{Op: OpKill, Signal: int(sig), All: all})
	return err
}

// Delete deletes the container; with force it kills it first if needed. The
// shim exits after answering.
func (c *Client) Delete(ctx context.Context, force bool) error {
	_, err := c.Do(ctx, Request{Op: OpDelete, Force: force})
	return err
}

// Pause freezes every process in the container (its status becomes
// paused) and returns once they are all frozen.
func (c *Client) Pause(ctx context.Context) error {
	_, err := c.Do(ctx, Request{Op: OpPause})
	return err
}

// Resume thaws a paused container.
func (c *Client) Resume(ctx context.Context) error {
	_, err := c.Do(ctx, Request{Op: OpResume})
	return err
}

// SubscribeOptions says which events a subscription gets.
type SubscribeOptions struct {
	// NoHistory skips the events the shim buffered before the subscription.
	NoHistory bool
	// Since, when set, resumes after that seq: the buffered events after
	// it (with an EventMissed for those no longer buffered), then the
	// live ones. It overrides NoHistory.
	Since *uint64
}

// Subscribe turns the connection into an event stream; read it with Next.
func (c *Client) Subscribe(ctx context.Context, opts SubscribeOptions) error {
	history := !opts.NoHistory
	_, err := c.Do(ctx, Request{Op: OpSubscribe, History: &history, Since: opts.Since})
	return err
}

// Next returns the next event. It returns io.EOF when the shim closed the
// stream after the deleted event, io.ErrUnexpectedEOF when the stream ended
// before it (the shim died), and a *RemoteError when the shim dropped this
// subscriber.
func (c *Client) Next(ctx context.Context) (Event, error) {
	defer c.watch(ctx)()
	line, err := c.dec.Line()
	if err != nil {
		err = unwrapOpError(err)
		if errors.Is(err, io.EOF) && !c.deleted {
			err = io.ErrUnexpectedEOF
		}
		return Event{}, c.ctxErr(ctx, err)
	}
	// An error reply's fields, beside the event's (Reply shares some of
	// Event's names, so it cannot be embedded here).
	var probe struct {
		Event
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := jsonUnmarshal(line, &probe); err != nil {
		return Event{}, err
	}
	if probe.Event.Type == "" {
		reply := Reply{OK: probe.OK, Error: probe.Error, Code: probe.Code}
		if err := reply.Err(); err != nil {
			return Event{}, err
		}
		return Event{}, fmt.Errorf("unexpected line %q", line)
	}
	if probe.Event.Type == EventDeleted {
		c.deleted = true
	}
	return probe.Event, nil
}

// ExecOptions are an exec request's flags.
type ExecOptions struct {
	// Wait asks for a second reply with the exit status (ExecExit).
	Wait bool
	// IgnorePaused runs the process in a paused container too; it
	// starts once the container is resumed.
	IgnorePaused bool
	// ExecID names the process in its events; empty, the shim makes
	// one up.
	ExecID string
	// Cgroup are exec's --cgroup arguments: the process runs in those
	// sub-cgroups of the container's.
	Cgroup []string
}

// Exec asks the shim to run a process in the container. files go with the
// request (SCM_RIGHTS): first the exec stage's config, then the process's
// descriptors 0, 1, 2, ... (see docs/protocol.md). It returns the process's
// pid once it has exec'd. With o.Wait, read its exit with ExecExit.
func (c *Client) Exec(ctx context.Context, files []*os.File, o ExecOptions) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()
	line, err := Marshal(Request{Op: OpExec, Files: len(files), Wait: o.Wait, IgnorePaused: o.IgnorePaused, ExecID: o.ExecID, Cgroup: JoinArgs(o.Cgroup)})
	if err != nil {
		return 0, err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if _, _, err := c.conn.WriteMsgUnix(line, unix.UnixRights(fds...), nil); err != nil {
		return 0, c.ctxErr(ctx, fmt.Errorf("exec: %w", unwrapOpError(err)))
	}
	reply, err := c.readReply(ctx, OpExec)
	if err != nil {
		return 0, err
	}
	return reply.Pid, nil
}

// Adopt tells the shim of a process crier exec forked itself, by a pidfd
// of it; the shim watches for its exit. It returns the process's pid as
// the shim sees it. o is as for Exec, without Wait.
func (c *Client) Adopt(ctx context.Context, pidfd int, o ExecOptions) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()
	line, err := Marshal(Request{Op: OpAdopt, Files: 1, ExecID: o.ExecID, IgnorePaused: o.IgnorePaused})
	if err != nil {
		return 0, err
	}
	if _, _, err := c.conn.WriteMsgUnix(line, unix.UnixRights(pidfd), nil); err != nil {
		return 0, c.ctxErr(ctx, fmt.Errorf("adopt: %w", unwrapOpError(err)))
	}
	reply, err := c.readReply(ctx, OpAdopt)
	if err != nil {
		return 0, err
	}
	return reply.Pid, nil
}

// ExecExit waits for the second reply to an Exec with wait: the process's
// exit status (128+N for signal N) and the signal's name, if one killed it.
func (c *Client) ExecExit(ctx context.Context) (int, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()
	reply, err := c.readReply(ctx, OpExec)
	if err != nil {
		return 0, "", err
	}
	if reply.ExitStatus == nil {
		return 0, "", errors.New("exec: exit reply has no exit status")
	}
	return *reply.ExitStatus, reply.Signal, nil
}

func (c *Client) readReply(ctx context.Context, op string) (*Reply, error) {
	var reply Reply
	if err := c.dec.Decode(&reply); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, c.ctxErr(ctx, fmt.Errorf("%s: %w", op, unwrapOpError(err)))
	}
	if err := reply.Err(); err != nil {
		return &reply, err
	}
	return &reply, nil
}
