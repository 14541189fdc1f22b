package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

func specVersion() string { return specs.Version }

// setup checks the global flags once the command line is parsed.
func (a *app) setup() error {
	if a.logFormat != "text" && a.logFormat != "json" {
		return fmt.Errorf("--log-format: %q is not text or json", a.logFormat)
	}
	if a.root == "" {
		return errors.New("--root: empty path")
	}
	root, err := filepath.Abs(a.root)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	a.root = root
	return nil
}

// fail reports err as one line on stderr, and in the log file when there is
// one, and sets a non-zero exit code.
func (a *app) fail(err error) {
	var ee *exitError
	if errors.As(err, &ee) {
		a.exitCode = ee.code
		return
	}
	a.errOut().WriteString(verb.ErrorLine(err))
	a.logf("error", verb.ErrorText(err))
	a.exitCode = 1
	var ce *codedError
	if errors.As(err, &ce) {
		a.exitCode = ce.code
	}
}

// codedError is an error reported as usual, with an exit code other than 1
// (exec's 255 when the process did not run, as runc's).
type codedError struct {
	err  error
	code int
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// exitError carries an exit status that is not an error report, such as
// the container's own from `run`.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// logf writes a line in runc's (logrus's) format to the --log file; debug
// lines go to stderr when there is none, as runc's do. (Errors reach
// stderr as fail's one plain line.)
func (a *app) logf(level, msg string) {
	f := os.Stderr
	if a.stderr != nil {
		f = a.stderr
	}
	switch {
	case a.logPath != "":
		var err error
		if f, err = os.OpenFile(a.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return
		}
		defer f.Close()
	case level != "debug":
		return
	}
	f.Write(verb.LogLine(a.logFormat, level, msg, time.Now()))
}

func (a *app) debugf(format string, args ...any) {
	if a.debug {
		a.logf("debug", fmt.Sprintf(format, args...))
	}
}

// checkID validates a container ID argument.
func checkID(id string) error { return container.ValidateID(id) }

func (a *app) dir(id string) string { return statedir.DirPath(a.root, id) }

// notExist is the error for an ID with no state directory.
func notExist(id string) error { return fmt.Errorf("container %q %w", id, protocol.ErrNotExist) }

// openDir opens and checks the state directory of id (statedir.Open): a
// root or directory that another user could have written is refused.
func (a *app) openDir(id string) (*statedir.Dir, error) {
	d, err := statedir.Open(a.root, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notExist(id)
	}
	return d, err
}

// openState returns the open state directory of id and its state file,
// with the status corrected when the shim is dead and the process gone.
// The caller closes the Dir.
func (a *app) openState(id string) (*statedir.Dir, *statedir.State, bool, error) {
	d, err := a.openDir(id)
	if err != nil {
		return nil, nil, false, err
	}
	st, err := d.ReadState()
	if err != nil {
		d.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, false, notExist(id)
		}
		return nil, nil, false, err
	}
	shimAlive := container.Alive(st.ShimPid, st.ShimStart)
	if !shimAlive && st.Status != protocol.StatusStopped && !container.Alive(st.Pid, st.PidStart) {
		st.Status = protocol.StatusStopped
	}
	if st.Status == protocol.StatusStopped {
		st.Pid = 0
	}
	return d, st, shimAlive, nil
}

// readState is openState for a caller that needs only the state.
func (a *app) readState(id string) (*statedir.State, bool, error) {
	d, st, alive, err := a.openState(id)
	if err != nil {
		return nil, false, err
	}
	d.Close()
	return st, alive, nil
}

// dial connects to the shim of id, through its checked state directory. It
// tells apart a container that does not exist from one whose shim is dead.
func (a *app) dial(ctx context.Context, id string) (*protocol.Client, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	d, err := a.openDir(id)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	sock, err := d.SocketPath()
	if err != nil {
		return nil, err
	}
	c, err := protocol.Dial(ctx, sock)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, unix.ENOENT):
		return nil, notExist(id)
	case errors.Is(err, unix.ECONNREFUSED):
		return nil, errShimDead
	}
	return nil, fmt.Errorf("container %q: %w", id, err)
}

// errShimDead is dial's error for a state directory whose shim is gone.
var errShimDead = errors.New("the container's shim is not running")

// ctx returns the context for a request that should not hang.
func requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// requestError words the error of a request to the shim: the shim's own
// reply is already one line for people; a connection closed instead of
// a reply means the shim exited under the request.
func requestError(err error) error {
	// A reset or a broken pipe is the same death seen a moment earlier:
	// the shim died with our request unread.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("the container's shim exited before it answered (%w)", err)
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
