package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
)

// consoleListener receives the pty master that the shim sends when a
// container with process.terminal is run in the foreground without
// --console-socket: crier itself plays the console socket's part.
type consoleListener struct {
	dir    string
	ln     *net.UnixListener
	master chan *os.File
	err    chan error
	// restore gives the user's terminal back its mode once proxy has made
	// it raw; Close calls it too, so that no way out of run leaves the
	// terminal raw.
	restore func()
}

func listenConsole() (*consoleListener, error) {
	dir, err := os.MkdirTemp("", "crier-console-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	cl := &consoleListener{dir: dir, ln: ln, master: make(chan *os.File, 1), err: make(chan error, 1)}
	go cl.accept()
	return cl, nil
}

func (cl *consoleListener) path() string { return filepath.Join(cl.dir, "console.sock") }

func (cl *consoleListener) accept() {
	conn, err := cl.ln.AcceptUnix()
	if err != nil {
		cl.err <- err
		return
	}
	defer conn.Close()
	master, err := recvMaster(conn)
	if err != nil {
		cl.err <- err
		return
	}
	cl.master <- master
}

// recvMaster reads the pty master sent on conn as runc sends it: the name
// as data, the descriptor as SCM_RIGHTS.
func recvMaster(conn *net.UnixConn) (*os.File, error) {
	buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("console socket: no descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("console socket: no descriptor received")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (cl *consoleListener) Close() {
	cl.restoreTerminal()
	cl.ln.Close()
	os.RemoveAll(cl.dir)
}

// proxy copies between our stdio and the pty until the container's side
// closes, with our terminal in raw mode and its size passed on.
func (cl *consoleListener) proxy() (stop func(), err error) {
	var master *os.File
	select {
	case master = <-cl.master:
	case err := <-cl.err:
		return nil, err
	}
	if !stdoutIsTerminal() {
		// Before start: none of the output is translated.
		if err := container.ClearONLCR(master); err != nil {
			return nil, err
		}
	}
	cl.restore = makeRaw(int(os.Stdin.Fd()))
	resize := make(chan os.Signal, 1)
	signal.Notify(resize, unix.SIGWINCH)
	copySize(master)
	go func() {
		for range resize {
			copySize(master)
		}
	}()
	go io.Copy(master, os.Stdin)
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master)
		close(done)
	}()
	return func() {
		<-done
		signal.Stop(resize)
		cl.restoreTerminal()
		master.Close()
	}, nil
}

func (cl *consoleListener) restoreTerminal() {
	if cl.restore != nil {
		cl.restore()
		cl.restore = nil
	}
}

// makeRaw puts a terminal on fd in raw mode and returns the undo; it does
// nothing when fd is not a terminal.
func makeRaw(fd int) func() {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return func() {}
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}

// stdoutIsTerminal says whether our stdout is a terminal. When it is not
// (a pipe, a file), the pty's ONLCR is cleared (container.ClearONLCR), as
// runc does: scripts and tests compare that output. On a terminal, which
// proxy makes raw (no output processing of its own), the pty's translation
// is what keeps lines from stair-stepping, so it stays; there runc's
// output and ours differ by that "\r" only.
func stdoutIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS)
	return err == nil
}

// copySize gives the pty our terminal's window size.
func copySize(master *os.File) {
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
}
