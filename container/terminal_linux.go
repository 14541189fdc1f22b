package container

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// A container with process.terminal gets a pty from its own devpts
// instance. The parent opens the master through /proc/PID/root once init
// has pivoted, so no descriptor has to cross the sync socket, and hands it
// to the console socket the way runc does: one message whose data is the
// name and whose SCM_RIGHTS carries the descriptor. At start, init opens
// the slave by name and makes it its controlling terminal and stdio.

// openPty opens a new pty master in the devpts of process pid and returns
// it with the slave's path inside the container.
func openPty(pid int) (*os.File, string, error) {
	path := fmt.Sprintf("/proc/%d/root/dev/pts/ptmx", pid)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, "", os.NewSyscallError("ioctl TIOCSPTLCK", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, "", os.NewSyscallError("ioctl TIOCGPTN", err)
	}
	return master, fmt.Sprintf("/dev/pts/%d", n), nil
}

// sendConsole passes the pty master to whoever listens on socketPath.
func sendConsole(socketPath string, master *os.File) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socketPath, Net: "unix"})
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	rights := unix.UnixRights(int(master.Fd()))
	if _, _, err := conn.WriteMsgUnix([]byte(master.Name()), rights, nil); err != nil {
		return fmt.Errorf("console socket %s: send: %w", socketPath, err)
	}
	return nil
}

// attachTerminal makes the pty slave at path init's controlling terminal
// and its stdin, stdout and stderr.
func attachTerminal(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Setsid(); err != nil {
		return os.NewSyscallError("setsid", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 0); err != nil {
		return os.NewSyscallError("ioctl TIOCSCTTY", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return os.NewSyscallError("dup3", err)
		}
	}
	return nil
}
