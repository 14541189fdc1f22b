package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// --pidfd-socket (create, run and exec), as runc's: the path of an AF_UNIX
// stream socket that receives a pidfd of the container's process (the
// init, or the exec'd process) in one message, SCM_RIGHTS with the name
// "pidfd:PID" as the payload, the form runc's console and pidfd sockets
// share. A supervisor then signals and waits for that process without
// the races of a pid.
//
// The socket is dialled before anything is created, so a wrong path
// fails at once; the pidfd is sent once the process exists (create has
// returned its pid), before the caller gets control back.

// pidfdSocket is a connection to a --pidfd-socket, or nil without one.
type pidfdSocket struct {
	conn *net.UnixConn
	path string
}

// dialPidfdSocket connects to path; "" is no socket (nil, nil).
func dialPidfdSocket(path string) (*pidfdSocket, error) {
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--pidfd-socket: %w", err)
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: abs, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("--pidfd-socket: %w", err)
	}
	return &pidfdSocket{conn: conn, path: abs}, nil
}

// send sends a pidfd of pid.
func (s *pidfdSocket) send(pid int) error {
	if s == nil {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("--pidfd-socket %s: %w", s.path, os.NewSyscallError("pidfd_open "+strconv.Itoa(pid), err))
	}
	defer unix.Close(fd)
	return s.sendFD(fd, pid)
}

// sendFD sends fd, a pidfd of pid.
func (s *pidfdSocket) sendFD(fd, pid int) error {
	if s == nil {
		return nil
	}
	name := []byte("pidfd:" + strconv.Itoa(pid))
	if _, _, err := s.conn.WriteMsgUnix(name, unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("--pidfd-socket %s: send: %w", s.path, err)
	}
	return nil
}

// Close closes the connection.
func (s *pidfdSocket) Close() {
	if s != nil {
		s.conn.Close()
	}
}
