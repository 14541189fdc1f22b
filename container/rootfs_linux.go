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

// prepareRootfs builds the container's root filesystem at rootfs (absolute
// and clean) inside the init stage's fresh mount namespace, before the
// createContainer hooks; pivotRootfs finishes the job after them.
//
// It sets the propagation of / (linux.rootfsPropagation, rslave by default,
// so that nothing done here reaches the host), binds rootfs onto itself,
// performs spec.Mounts in order with destinations resolved inside rootfs,
// and, unless /dev is bound from the host, populates /dev. idmapTrees holds,
// by index in spec.Mounts, the trees of the idmapped mounts.
func prepareRootfs(spec *specs.Spec, rootfs string, idmapTrees []*os.File) error {
	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	prop, err := rootfsPropagationFlags(linux.RootfsPropagation)
	if err != nil {
		return err
	}
	if err := setMountPropagation("/", prop); err != nil {
		return err
	}
	if err := makeRootfsParentPrivate(rootfs); err != nil {
		return err
	}
	if err := doMount(rootfs, rootfs, "bind", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	for i, m := range spec.Mounts {
		if err := mountLabeled(rootfs, m, linux.MountLabel, idmapTrees[i]); err != nil {
			return err
		}
	}
	if devBoundFromHost(spec.Mounts) {
		return nil
	}
	if err := createDevices(rootfs, linux.Devices); err != nil {
		return err
	}
	return createDevSymlinks(rootfs)
}

// pivotRootfs makes the rootfs prepared by prepareRootfs the process's root
// and applies what must be done from inside it: read-only and masked paths,
// a read-only root and the final propagation of /.
//
// rootfs is absolute: a lookup by path crosses the bind mount that
// prepareRootfs put on it, where the working directory (taken before the
// mount) would not, as when root.path is ".".
func pivotRootfs(spec *specs.Spec, rootfs string) error {
	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	prop, err := rootfsPropagationFlags(linux.RootfsPropagation)
	if err != nil {
		return err
	}
	if err := pivotInto(rootfs); err != nil {
		return err
	}
	// Masking after the read-only binds keeps every mask the topmost mount
	// on its path.
	for _, p := range linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	for _, p := range linux.MaskedPaths {
		if err := maskPath(p, linux.MountLabel); err != nil {
			return err
		}
	}
	if spec.Root.Readonly {
		if err := remountReadonly("/"); err != nil {
			return err
		}
	}
	if linux.RootfsPropagation == "" {
		return nil
	}
	if err := setMountPropagation("/", prop); err != nil {
		return err
	}
	return reapplyMountPropagation(spec.Mounts)
}

// reapplyMountPropagation sets the propagation options of spec.Mounts again
// after a recursive rootfsPropagation has overwritten them: an entry's own
// option ("rshared" on one mount under an "rprivate" root) is the more
// specific request. Called inside the new root.
func reapplyMountPropagation(mounts []specs.Mount) error {
	for _, m := range mounts {
		_, props, _, err := parseMountOptions(m.Options)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		if len(props) == 0 {
			continue
		}
		dst, err := secureJoin("/", m.Destination)
		if err != nil {
			return err
		}
		for _, p := range props {
			if err := setMountPropagation(dst, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// rootfsPropagationFlags maps linux.rootfsPropagation to mount(2) flags.
// The default is rslave rather than rprivate: the container still sees
// mounts the host adds later, yet nothing it does reaches the host.
func rootfsPropagationFlags(s string) (uintptr, error) {
	if s == "" {
		return unix.MS_SLAVE | unix.MS_REC, nil
	}
	p, ok := mountPropagationOptions[s]
	if !ok {
		return 0, fmt.Errorf("rootfs propagation %q is not valid", s)
	}
	return p, nil
}

// makeRootfsParentPrivate makes the mount that holds rootfs private when it
// is shared or unbindable: pivot_root(2) refuses a new root whose parent
// mount is shared (a shared parent would also make the rootfs bind shared),
// and an unbindable one cannot be the source of the rootfs bind. Only the
// mount holding rootfs changes, and only in this mount namespace.
func makeRootfsParentPrivate(rootfs string) error {
	resolved, err := filepath.EvalSymlinks(rootfs)
	if err != nil {
		return err
	}
	mounts, err := readMountinfo()
	if err != nil {
		return err
	}
	var parent *mountinfoEntry
	for i, m := range mounts {
		// mountinfo lists mounts in the order they were attached, so of two
		// on the same path the later one is on top.
		if pathWithin(resolved, m.mountpoint) && (parent == nil || len(m.mountpoint) >= len(parent.mountpoint)) {
			parent = &mounts[i]
		}
	}
	if parent == nil || !(parent.shared || parent.unbindable) {
		return nil
	}
	return setMountPropagation(parent.mountpoint, unix.MS_PRIVATE)
}

// pivotInto uses pivot_root(".", ".") so no directory for the old root has
// to exist inside the new one: the old root ends up stacked on top of the
// new root at ".", from where it is detached.
func pivotInto(root string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: root, Err: err}
	}
	// The kernel makes no promise about where the working directory is
	// left; the old root's own directory is what must be detached.
	if err := unix.Fchdir(oldRoot); err != nil {
		return &os.PathError{Op: "fchdir", Path: "old root", Err: err}
	}
	// Otherwise the detach would propagate to the host's peers and
	// unmount the host's own mounts.
	if err := setMountPropagation(".", unix.MS_SLAVE|unix.MS_REC); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount", Path: "old root", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// readonlyPath binds p onto itself recursively, so mounts below stay
// visible, then makes only the top mount read-only.
func readonlyPath(p string) error {
	if err := doMount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return remountReadonly(p)
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory, labelled with mountLabel as the container's other tmpfs
// mounts are.
func maskPath(p, mountLabel string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		data, err := maskData(mountLabel)
		if err != nil {
			return err
		}
		return doMount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data)
	}
	return doMount("/dev/null", p, "", unix.MS_BIND, "")
}

// remountReadonly keeps the flags the mount already has: a bind remount
// replaces all per-mount flags, so asking for MS_RDONLY alone would drop
// nosuid, noexec and nodev from it (or fail in a user namespace, where
// they are locked).
func remountReadonly(p string) error {
	cur, err := mountFlagsOf(p)
	if err != nil {
		return err
	}
	if err := unix.Mount("", p, "", cur|unix.MS_RDONLY|unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "remount", Path: p, Err: err}
	}
	return nil
}
