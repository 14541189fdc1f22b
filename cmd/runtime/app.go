package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
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
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintln(os.Stderr, "crier:", msg)
	a.logf("error", msg)
	a.exitCode = 1
}

// exitError carries an exit status that is not an error report, such as
// the container's own from `run`.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func (a *app) logf(level, msg string) {
	if a.logPath == "" {
		return
	}
	f, err := os.OpenFile(a.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if a.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": now})
		f.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(f, "time=%q level=%s msg=%q\n", now, level, msg)
}

func (a *app) debugf(format string, args ...any) {
	if a.debug {
		a.logf("debug", fmt.Sprintf(format, args...))
	}
}

// checkID validates a container ID argument.
func checkID(id string) error { return container.ValidateID(id) }

func (a *app) dir(id string) string { return shim.Dir(a.root, id) }

// errNotExist is the error for an ID with no state directory.
func errNotExist(id string) error { return fmt.Errorf("container %q does not exist", id) }

// readState returns the state file of id, with the status corrected when
// the shim is dead and the process gone.
func (a *app) readState(id string) (*shim.State, bool, error) {
	st, err := shim.ReadState(a.dir(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, errNotExist(id)
	}
	if err != nil {
		return nil, false, err
	}
	shimAlive := container.Alive(st.ShimPid, st.ShimStart)
	if !shimAlive && st.Status != protocol.StatusStopped && !container.Alive(st.Pid, st.PidStart) {
		st.Status = protocol.StatusStopped
	}
	if st.Status == protocol.StatusStopped {
		st.Pid = 0
	}
	return st, shimAlive, nil
}

// dial connects to the shim of id. It tells apart a container that does not
// exist from one whose shim is dead.
func (a *app) dial(ctx context.Context, id string) (*protocol.Client, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	c, err := protocol.Dial(ctx, shim.SocketPath(a.root, id))
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, unix.ENOENT):
		return nil, errNotExist(id)
	case errors.Is(err, unix.ECONNREFUSED):
		return nil, errShimDead
	}
	return nil, err
}

// errShimDead is dial's error for a state directory whose shim is gone.
var errShimDead = errors.New("the container's shim is not running")

// ctx returns the context for a request that should not hang.
func requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// remoteMessage strips the sentinel prefix that the wire code already
// carries, for a cleaner one-line message.
func remoteMessage(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("the container's shim exited before it answered (%w)", err)
	}
	var re *protocol.RemoteError
	if errors.As(err, &re) {
		for _, p := range []string{"invalid state: ", "bad request: ", "not found: "} {
			if m, ok := strings.CutPrefix(re.Message, p); ok {
				return errors.New(m)
			}
		}
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
