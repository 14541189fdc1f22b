package container

import (
	"errors"
	"fmt"
	"io/fs"
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

func createDevices(rootfs string, devs []specs.LinuxDevice) error {
	listed := make(map[string]bool, len(devs))
	for _, d := range devs {
		listed[filepath.Clean("/"+d.Path)] = true
	}
	for _, d := range defaultDevNodes {
		if listed[d.Path] {
			continue
		}
		if err := createDevice(rootfs, d); err != nil {
			return err
		}
	}
	for _, d := range devs {
		if err := createDevice(rootfs, d); err != nil {
			return err
		}
	}
	return nil
}

// createDevice makes d's node under rootfs, mode 0666 and owned by the
// container's root unless d says otherwise. Only the directory is resolved
// through symlinks: a link where the node belongs is replaced, not
// followed.
func createDevice(rootfs string, d specs.LinuxDevice) error {
	typ, err := deviceNodeType(d)
	if err != nil {
		return err
	}
	p := filepath.Clean("/" + d.Path)
	if p == "/" {
		return fmt.Errorf("device path %q is not valid", d.Path)
	}
	dir, err := secureJoin(rootfs, filepath.Dir(p))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(p))
	err = mknodReplacing(dst, typ, unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	if errors.Is(err, unix.EPERM) && typ != unix.S_IFIFO {
		// A user namespace may not create device nodes; the host's node,
		// bound in, behaves the same.
		return bindHostDevice(p, dst)
	}
	if err != nil {
		return err
	}
	return setDeviceOwnership(dst, d)
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

// mknodReplacing replaces whatever the image has at dst: the spec's node
// wins over a file, node or symlink shipped in the rootfs.
func mknodReplacing(dst string, typ uint32, dev uint64) error {
	// The permissions are set afterwards, where the umask does not apply.
	err := unix.Mknod(dst, typ|0o600, int(dev))
	if errors.Is(err, unix.EEXIST) {
		if err := os.Remove(dst); err != nil {
			return err
		}
		err = unix.Mknod(dst, typ|0o600, int(dev))
	}
	if err != nil {
		return &os.PathError{Op: "mknod", Path: dst, Err: err}
	}
	return nil
}

func setDeviceOwnership(dst string, d specs.LinuxDevice) error {
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
	if err := unix.Chmod(dst, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	if err := unix.Lchown(dst, int(uid), int(gid)); err != nil {
		return &os.PathError{Op: "chown", Path: dst, Err: err}
	}
	return nil
}

// bindHostDevice binds the host's node at hostPath onto dst, after making
// dst a plain file; a symlink there would redirect the mount.
func bindHostDevice(hostPath, dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	if err := makeMountTarget(dst, false); err != nil {
		return err
	}
	return doMount(hostPath, dst, "bind", unix.MS_BIND, "")
}

// createDevSymlinks adds the conventional /dev links. /dev/ptmx must point
// at the devpts instance of the container, so an existing one is replaced.
func createDevSymlinks(rootfs string) error {
	dev, err := secureJoin(rootfs, "/dev")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	links := [][2]string{
		{"fd", "/proc/self/fd"},
		{"stdin", "/proc/self/fd/0"},
		{"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dev, l[0])); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	ptmx := filepath.Join(dev, "ptmx")
	if err := os.Remove(ptmx); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink("pts/ptmx", ptmx)
}
