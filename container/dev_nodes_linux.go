package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevNodes are the nodes every container gets unless /dev is bound
// from the host; an entry of linux.devices with the same path replaces one.
// It is a constant lookup table and never written to.
var defaultDevNodes = [...]specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

func createDevices(root *rootDir, devs []specs.LinuxDevice) error {
	listed := make(map[string]bool, len(devs))
	for _, d := range devs {
		listed[filepath.Clean("/"+d.Path)] = true
	}
	for _, d := range defaultDevNodes {
		if listed[d.Path] {
			continue
		}
		if err := createDevice(root, d); err != nil {
			return err
		}
	}
	for _, d := range devs {
		if err := createDevice(root, d); err != nil {
			return err
		}
	}
	return nil
}

// createDevice makes d's node inside root, mode 0666 and owned by the
// container's root unless d says otherwise. Only the directory is resolved
// through symlinks (inside root): a link where the node belongs is
// replaced, not followed. Every step after that acts on the directory's
// descriptor or the node's, never on the path again.
func createDevice(root *rootDir, d specs.LinuxDevice) error {
	typ, err := deviceNodeType(d)
	if err != nil {
		return err
	}
	p := filepath.Clean("/" + d.Path)
	if p == "/" {
		return fmt.Errorf("device path %q is not valid", d.Path)
	}
	dir, err := openDirIn(root.fd, filepath.Dir(p), resolveOpts{kind: kindDir}, nil)
	if err != nil {
		return fmt.Errorf("device %s: %w", p, err)
	}
	defer unix.Close(dir)
	name := filepath.Base(p)
	dev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
	err = mknodReplacing(dir, name, typ, dev)
	if errors.Is(err, unix.EPERM) && typ != unix.S_IFIFO {
		// A user namespace may not create device nodes; the host's node,
		// bound in, behaves the same.
		err = bindHostDevice(p, dir, name)
	} else if err == nil {
		err = setDeviceOwnership(dir, name, typ, dev, d)
	}
	if err != nil {
		return fmt.Errorf("device %s: %w", p, err)
	}
	return nil
}

func deviceNodeType(d specs.LinuxDevice) (uint32, error) {
	if d.Major < 0 || d.Minor < 0 || d.Major > 0xfff || d.Minor > 0xfffff {
		return 0, fmt.Errorf("device %s: number %d:%d is out of range", d.Path, d.Major, d.Minor)
	}
	switch d.Type {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("device %s: type %q is not valid", d.Path, d.Type)
}

// mknodReplacing replaces whatever the image has at name in dir: the
// spec's node wins over a file, node or symlink shipped in the rootfs.
func mknodReplacing(dir int, name string, typ uint32, dev uint64) error {
	// The permissions are set afterwards, where the umask does not apply.
	err := unix.Mknodat(dir, name, typ|0o600, int(dev))
	if err == unix.EEXIST {
		if err := unix.Unlinkat(dir, name, 0); err != nil {
			return os.NewSyscallError("unlink old node", err)
		}
		err = unix.Mknodat(dir, name, typ|0o600, int(dev))
	}
	return os.NewSyscallError("mknod", err)
}

// setDeviceOwnership opens the node just made, without following, checks
// it is still that node, and sets its mode and owner through the
// descriptor.
func setDeviceOwnership(dir int, name string, typ uint32, dev uint64, d specs.LinuxDevice) error {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open node", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != typ || (typ != unix.S_IFIFO && st.Rdev != dev) {
		return errors.New("replaced while it was made")
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	var uid, gid uint32
	if d.UID != nil {
		uid = *d.UID
	}
	if d.GID != nil {
		gid = *d.GID
	}
	if err := fchmodFD(fd, mode); err != nil {
		return err
	}
	if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return os.NewSyscallError("chown", err)
	}
	return nil
}

// fchmodFD sets the mode of what an O_PATH descriptor refers to:
// fchmodat2 with AT_EMPTY_PATH where the kernel has it, else chmod through
// /proc/self/fd (the host's procfs, before pivot_root).
func fchmodFD(fd int, mode uint32) error {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if err == unix.ENOSYS || err == unix.EOPNOTSUPP || err == unix.EINVAL {
		err = unix.Chmod(procFD(fd), mode)
	}
	return os.NewSyscallError("chmod", err)
}

// bindHostDevice binds the host's node at hostPath onto name in dir, after
// making it a plain file; a symlink there would redirect the mount.
func bindHostDevice(hostPath string, dir int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if err := unix.Unlinkat(dir, name, 0); err != nil {
			return os.NewSyscallError("unlink symlink", err)
		}
	}
	fd, err := openOrCreate(dir, name, kindFile)
	if err != nil {
		return os.NewSyscallError("create bind target", err)
	}
	d, err := unix.Dup(dir)
	if err != nil {
		unix.Close(fd)
		return os.NewSyscallError("dup", err)
	}
	t := &target{dir: d, name: name, fd: fd}
	defer t.close()
	m, err := mountOn(hostPath, t, "bind", unix.MS_BIND, "")
	if err != nil {
		return fmt.Errorf("bind %s: %w", hostPath, err)
	}
	unix.Close(m)
	return nil
}

// createDevSymlinks adds the conventional /dev links, relative to the
// descriptor of the container's /dev. /dev/ptmx must point at the devpts
// instance of the container, so an existing one is replaced.
func createDevSymlinks(root *rootDir) error {
	dev, err := openDirIn(root.fd, "/dev", resolveOpts{kind: kindDir}, nil)
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	defer unix.Close(dev)
	links := [][2]string{
		{"fd", "/proc/self/fd"},
		{"stdin", "/proc/self/fd/0"},
		{"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"},
	}
	// The host's /proc: the container's is the same kernel's.
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[1], dev, l[0]); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "symlink", Path: "/dev/" + l[0], Err: err}
		}
	}
	if err := unix.Unlinkat(dev, "ptmx", 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: "/dev/ptmx", Err: err}
	}
	if err := unix.Symlinkat("pts/ptmx", dev, "ptmx"); err != nil {
		return &os.PathError{Op: "symlink", Path: "/dev/ptmx", Err: err}
	}
	return nil
}
