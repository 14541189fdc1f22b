package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// Config is what Serve needs to create and serve one container.
type Config struct {
	Root     string
	ID       string
	Bundle   string // absolute
	InitPath string // the crier binary, for "crier init"
	PidFile  string // absolute, or empty
	// ConsoleSocket receives the pty master when process.terminal is set.
	ConsoleSocket string
	// Buffer says which event types the shim replays to new subscribers;
	// nil keeps every type.
	Buffer map[string]bool
	// Stdio and ExtraFiles go to the container process; Serve closes
	// them once the container has them.
	Stdio      [3]*os.File
	ExtraFiles []*os.File
	// Report receives one line of JSON: {"pid":N} once the container is
	// created, or {"error":"..."}. Serve closes it.
	Report io.WriteCloser
	Log    *log.Logger
}

// Report is the line Serve writes to Config.Report.
type Report struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Serve creates the container and serves it until it is deleted. It
// returns when the container is gone, with an error only when creating it
// failed (that error has also been reported).
func Serve(cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	s, err := newServer(&cfg)
	if err != nil {
		cfg.closeStdio()
		report(cfg.Report, Report{Error: err.Error()})
		return err
	}
	return s.loop()
}

func (cfg *Config) closeStdio() {
	for _, f := range cfg.Stdio {
		if f != nil {
			f.Close()
		}
	}
	for _, f := range cfg.ExtraFiles {
		f.Close()
	}
}

func report(w io.WriteCloser, r Report) {
	if w == nil {
		return
	}
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
	w.Close()
}

// newServer claims the container ID: it builds the state directory under a
// temporary name, with the socket listening and the state file written, and
// renames it into place only if no container has the ID. A watcher on the
// root therefore never sees a directory without its socket.
func newServer(cfg *Config) (*server, error) {
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	dir := Dir(cfg.Root, cfg.ID)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("container %q already exists", cfg.ID)
	}
	spec, err := container.LoadSpec(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cfg.Root, ".new-")
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s := &server{cfg: cfg, spec: spec, dir: dir, status: protocol.StatusCreating}
	if err := s.prepare(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		s.ln.Close()
		os.RemoveAll(tmp)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return nil, fmt.Errorf("container %q already exists", cfg.ID)
		}
		return nil, fmt.Errorf("state dir: rename %s to %s: %w", tmp, dir, err)
	}
	return s, nil
}

func (s *server) prepare(tmp string) error {
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	ln, err := protocol.Listen(filepath.Join(tmp, protocol.SocketName))
	if err != nil {
		return err
	}
	s.ln = ln
	s.createdAt = time.Now()
	shimStart, err := container.StartTime(os.Getpid())
	if err != nil {
		ln.Close()
		return err
	}
	s.shimStart = shimStart
	s.owner = strconv.Itoa(os.Getuid())
	if u, err := user.LookupId(s.owner); err == nil {
		s.owner = u.Username
	}
	if err := writeState(tmp, s.state()); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// state is the current state file content.
func (s *server) state() *State {
	st := &State{
		State: protocol.State{
			OCIVersion:  specs.Version,
			ID:          s.cfg.ID,
			Status:      s.status,
			Bundle:      s.cfg.Bundle,
			Rootfs:      container.RootfsPath(s.cfg.Bundle, s.spec),
			Created:     protocol.FormatTime(s.createdAt),
			Annotations: s.spec.Annotations,
			Owner:       s.owner,
		},
		ShimPid:   os.Getpid(),
		ShimStart: s.shimStart,
	}
	if s.c != nil {
		st.Cgroup = s.c.Cgroup
		if s.status != protocol.StatusStopped {
			st.Pid = s.c.Pid
			st.PidStart = s.pidStart
		}
	}
	return st
}

func (s *server) saveState() {
	if err := writeState(s.dir, s.state()); err != nil {
		s.cfg.Log.Printf("state file: %v", err)
	}
}

// writePidFile writes the pid with no trailing newline, atomically, so a
// reader never sees an empty file.
func writePidFile(path string, pid int) error {
	if path == "" {
		return nil
	}
	if err := writeFileAtomic(path, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// forwardSignals turns SIGCHLD into loop messages, and ignores the signals
// a detached daemon might still get from a terminal it once had.
func forwardSignals() chan os.Signal {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGINT, unix.SIGTERM)
	return ch
}

// accept hands every permitted connection to its own reader goroutine.
func (s *server) accept() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Log.Printf("accept: %v", err)
			continue
		}
		if err := checkPeer(conn); err != nil {
			line, _ := protocol.Marshal(protocol.ErrorReply(err))
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write(line)
			conn.Close()
			continue
		}
		go s.serveConn(conn)
	}
}

// checkPeer admits root and the user the shim runs as (the one who created
// the container); the socket's 0600 mode says the same, this makes sure.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("%w: uid %d may not use this container", protocol.ErrPermission, cred.Uid)
	}
	return nil
}
