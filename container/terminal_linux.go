package container

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A container with process.terminal gets a pty from its own devpts
// instance. The parent opens the master through /proc/PID/root once init
// has pivoted, so no descriptor has to cross the sync socket, and hands it
// to the console socket the way runc does: one message whose data is the
// name and whose SCM_RIGHTS carries the descriptor. The parent gives the
// slave to the process's uid first (chownPty). Until start init's stdio is
// /dev/null (initStdio); at start it opens the slave by name and makes it
// its controlling terminal and stdio.
//
// The parent runs as root on the host, and everything under /proc/PID/root
// is the image's: a path walked from there follows the image's symlinks,
// and an absolute one leads back to the host (an image whose /dev/pts is a
// link to /tmp/x would have the parent open the host's /tmp/x/ptmx read
// and write). So the walk is confined to the container's root and takes no
// symlink at all, and what it finds must be the ptmx of a devpts before
// the parent opens it for real.

// Unix98 ptys: the ptmx node is char 5:2, the slaves majors 136 to 143.
const (
	ptmxMajor, ptmxMinor       = 5, 2
	ptySlaveMajor, ptySlaveMax = 136, 143
)

// openPty opens a new pty master in the devpts of process pid, gives its
// slave to uid as the container sees it (chownPty), and returns the master
// with the slave's path inside the container.
func openPty(pid int, uid uint32) (*os.File, string, error) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	master, name, err := openPtyIn(root)
	if err != nil {
		return nil, "", err
	}
	hostUID, err := hostUID(pid, uid)
	if err == nil {
		err = chownPty(root, name, master, hostUID)
	}
	if err != nil {
		master.Close()
		return nil, "", err
	}
	return master, name, nil
}

// hostUID is uid of process pid's user namespace as the host sees it.
func hostUID(pid int, uid uint32) (int, error) {
	path := fmt.Sprintf("/proc/%d/uid_map", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var inside, outside, size uint64
		if n, _ := fmt.Sscan(line, &inside, &outside, &size); n == 3 && uint64(uid) >= inside && uint64(uid)-inside < size {
			return int(outside + uint64(uid) - inside), nil
		}
	}
	return 0, fmt.Errorf("process.user.uid %d is not mapped in the container's user namespace (%s)", uid, path)
}

// openPtyIn opens a new pty master in the devpts of the root directory
// root ("/" for an exec stage already in the container).
func openPtyIn(root string) (*os.File, string, error) {
	path := root + "/dev/pts/ptmx"
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	// O_PATH: look before opening, as opening a device can do things.
	pathFD, err := unix.Openat2(rootFD, "dev/pts/ptmx", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	})
	if errors.Is(err, unix.ELOOP) {
		return nil, "", fmt.Errorf("open %s: the container's /dev/pts/ptmx is reached through a symlink; it must be the ptmx of a devpts mounted on /dev/pts", path)
	}
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pathFD)
	if err := checkPtmx(pathFD, path); err != nil {
		return nil, "", err
	}
	// Reopen what was checked, not the path again.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pathFD), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
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

// checkPtmx makes sure fd is the ptmx node of a devpts file system, not a
// file or a device node the image put in its place.
func checkPtmx(fd int, path string) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if fs.Type != unix.DEVPTS_SUPER_MAGIC {
		return fmt.Errorf("%s is not on a devpts file system (magic %#x): mount devpts on the container's /dev/pts", path, fs.Type)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != ptmxMajor || unix.Minor(st.Rdev) != ptmxMinor {
		return fmt.Errorf("%s is not the ptmx device (mode %#o, device %d:%d)", path, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

// chownPty gives the pty slave at name (a path in the container, as
// openPtyIn returns it) under root to uid, as the file system stores it
// (the host's view when the caller is on the host), and keeps the group
// that devpts gave it (its gid= option), as runc does. The process owns its
// terminal; and in a user namespace the slave, made by the host's root
// opening the master, would otherwise belong to an id the container does
// not map, and init could not open it at start. It goes by path, O_PATH:
// opening the slave here and closing it would hang up the master that the
// console socket's holder already reads.
func chownPty(root, name string, master *os.File, uid int) error {
	path := root + name
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	fd, err := unix.Openat2(rootFD, strings.TrimPrefix(name, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	// It must be the slave of this very master: on the master's devpts,
	// with the master's pty number.
	var st, ms unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := unix.Fstat(int(master.Fd()), &ms); err != nil {
		return os.NewSyscallError("fstat pty master", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return os.NewSyscallError("ioctl TIOCGPTN", err)
	}
	// Minors are 20 bits wide: every slave is major 136.
	slave := unix.Mkdev(ptySlaveMajor, uint32(n))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != slave || st.Dev != ms.Dev {
		return fmt.Errorf("%s is not the slave of the pty just opened (mode %#o, device %d:%d)", path, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if int(st.Uid) == uid {
		return nil
	}
	if err := unix.Fchownat(fd, "", uid, -1, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	return nil
}

// ClearONLCR stops the pty of master from turning "\n" into "\r\n" on
// output, as runc's own console does for a foreground run or exec: what
// the process prints then reaches a pipe or a file as it wrote it.
func ClearONLCR(master *os.File) error {
	tio, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
	if err != nil {
		return os.NewSyscallError("ioctl TCGETS", err)
	}
	tio.Oflag &^= unix.ONLCR
	return os.NewSyscallError("ioctl TCSETS", unix.IoctlSetTermios(int(master.Fd()), unix.TCSETS, tio))
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
	// The container's own /dev/pts could hold anything by that name;
	// only a pty slave may become the process's terminal.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if major := unix.Major(st.Rdev); st.Mode&unix.S_IFMT != unix.S_IFCHR || major < ptySlaveMajor || major > ptySlaveMax {
		return fmt.Errorf("%s is not a pty slave (mode %#o, device %d:%d)", path, st.Mode, major, unix.Minor(st.Rdev))
	}
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

// setConsoleSize gives the pty of master the process's consoleSize, as
// runc does before the process starts; without one the size is the
// kernel's (0x0) until the console socket's holder sets it.
func setConsoleSize(master *os.File, size *specs.Box) error {
	if size == nil || size.Height == 0 || size.Width == 0 {
		return nil
	}
	ws := &unix.Winsize{Row: uint16(min(size.Height, 0xffff)), Col: uint16(min(size.Width, 0xffff))}
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return os.NewSyscallError("ioctl TIOCSWINSZ", err)
	}
	return nil
}
