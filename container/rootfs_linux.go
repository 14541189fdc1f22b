package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// prepareRootfs builds the container's root filesystem at rootfs (absolute
// and clean) inside the init stage's fresh mount namespace, before the
// createContainer hooks; pivotRootfs finishes the job after them.
//
// It sets the propagation of / (linux.rootfsPropagation, rslave by default,
// so that nothing done here reaches the host), binds rootfs onto itself,
// performs spec.Mounts in order with destinations resolved inside rootfs
// by descriptor (resolve_linux.go), and, unless /dev is bound from the
// host, populates /dev the same way. srcs holds, by index in
// spec.Mounts, the sources that do not come by path (mountEntry).
//
// hostNS says the container has no mount namespace of its own: the
// mounts are then made in the host's, as runc makes them, below a bind of
// the rootfs that is made a slave (nothing made below it reaches the
// host's other mounts), and the host's own mounts keep their propagation.
// They stay there after the container is gone, as with runc.
//
// placed, when not nil, is called once before the first mount that needs
// the container's cgroups (cgroupMount), or at the end: until then init
// may not be in them yet.
func prepareRootfs(spec *specs.Spec, rootfs string, srcs []*mountSource, hostNS bool, placed func() error) error {
	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	var err error
	if hostNS {
		err = bindRootfsInHostNS(rootfs)
	} else {
		err = bindRootfs(linux, rootfs)
	}
	if err != nil {
		return err
	}
	root, err := openRootDir(rootfs)
	if err != nil {
		return err
	}
	defer root.close()
	root.cgroupNS = hasNamespaceIn(linux, specs.CgroupNamespace)
	for i, m := range spec.Mounts {
		if placed != nil && cgroupMount(m) {
			if err := placed(); err != nil {
				return err
			}
			placed = nil
		}
		if err := mountLabeled(root, m, linux.MountLabel, srcs[i]); err != nil {
			return err
		}
	}
	if placed != nil {
		if err := placed(); err != nil {
			return err
		}
	}
	if devBoundFromHost(spec.Mounts) {
		return nil
	}
	if err := createDevices(root, linux.Devices); err != nil {
		return err
	}
	return createDevSymlinks(root)
}

// bindRootfs, in the container's new mount namespace, sets the
// propagation of / and binds rootfs onto itself.
func bindRootfs(linux *specs.Linux, rootfs string) error {
	prop, err := rootfsPropagationFlags(linux.RootfsPropagation)
	if err != nil {
		return err
	}
	if err := setMountPropagation("/", prop); err != nil {
		return &MountError{Target: "/", Flags: prop, Err: err}
	}
	if err := makeRootfsParentPrivate(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, rootfs, "bind", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &MountError{Source: rootfs, Target: rootfs, Type: "bind", Flags: unix.MS_BIND | unix.MS_REC, Err: err}
	}
	return nil
}

// bindRootfsInHostNS binds rootfs onto itself in the host's mount
// namespace and makes the bind (and what it holds) a slave, touching no
// other mount's propagation.
func bindRootfsInHostNS(rootfs string) error {
	if err := unix.Mount(rootfs, rootfs, "bind", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &MountError{Source: rootfs, Target: rootfs, Type: "bind", Flags: unix.MS_BIND | unix.MS_REC, Err: err}
	}
	if err := setMountPropagation(rootfs, unix.MS_SLAVE|unix.MS_REC); err != nil {
		return &MountError{Target: rootfs, Flags: unix.MS_SLAVE | unix.MS_REC, Err: err}
	}
	return nil
}

// pivotRootfs makes the rootfs prepared by prepareRootfs the process's root
// and applies what must be done from inside it: read-only and masked paths,
// a read-only root and the final propagation of /.
//
// rootfs is absolute: a lookup by path crosses the bind mount that
// prepareRootfs put on it, where the working directory (taken before the
// mount) would not, as when root.path is ".".
func pivotRootfs(spec *specs.Spec, rootfs string, noPivot bool) error {
	enter := pivotInto
	if noPivot {
		enter = moveRootInto
	}
	if err := enter(rootfs); err != nil {
		return err
	}
	return finishRootfs(spec)
}

// finishRootfs applies, from inside the container's root, what waits for
// the rest to be in place: read-only mounts, read-only and masked paths,
// a read-only root and the final propagation of /.
func finishRootfs(spec *specs.Spec) error {
	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	prop, err := rootfsPropagationFlags(linux.RootfsPropagation)
	if err != nil {
		return err
	}
	if err := checkProcMounted(spec.Mounts); err != nil {
		return err
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	if err := finishReadonly(root, spec.Mounts); err != nil {
		return err
	}
	// Masking after the read-only binds keeps every mask the topmost mount
	// on its path.
	for _, p := range linux.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return fmt.Errorf("readonly path %s: %w", p, err)
		}
	}
	if err := maskPaths(root, linux.MaskedPaths, linux.MountLabel); err != nil {
		return err
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
		return &MountError{Target: "/", Flags: prop, Err: err}
	}
	return reapplyMountPropagation(root, spec.Mounts)
}

// finishReadonly makes read-only the mounts whose flag readonlyLater held
// back, now that everything below them is in place. mount_setattr(2) on
// the resolved descriptor sets that one flag and leaves the others.
func finishReadonly(root int, mounts []specs.Mount) error {
	for _, m := range mounts {
		if !readonlyLater(m) {
			continue
		}
		fd, err := openat2InRoot(root, m.Destination, unix.O_PATH, false)
		if err != nil {
			return mountErr(m, fmt.Errorf("remount read-only: %w", err))
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr)
		unix.Close(fd)
		if err != nil {
			return mountErr(m, fmt.Errorf("remount read-only: %w", os.NewSyscallError("mount_setattr", err)))
		}
	}
	return nil
}

// reapplyMountPropagation sets the propagation options of spec.Mounts again
// after a recursive rootfsPropagation has overwritten them: an entry's own
// option ("rshared" on one mount under an "rprivate" root) is the more
// specific request. Called inside the new root, whose descriptor is root;
// mount_setattr(2) acts on the resolved descriptor, with no path (and no
// /proc of the container's) in between.
func reapplyMountPropagation(root int, mounts []specs.Mount) error {
	for _, m := range mounts {
		_, props, _, err := parseMountOptions(m.Options)
		if err != nil {
			return mountErr(m, err)
		}
		if len(props) == 0 {
			continue
		}
		if err := setPropagationIn(root, m.Destination, props); err != nil {
			return mountErr(m, err)
		}
	}
	return nil
}

func setPropagationIn(root int, dest string, props []uintptr) error {
	fd, err := openat2InRoot(root, dest, unix.O_PATH, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, p := range props {
		flags := uint(unix.AT_EMPTY_PATH)
		if p&unix.MS_REC != 0 {
			flags |= unix.AT_RECURSIVE
		}
		attr := unix.MountAttr{Propagation: uint64(p &^ unix.MS_REC)}
		if err := unix.MountSetattr(fd, "", flags, &attr); err != nil {
			return os.NewSyscallError("set propagation", err)
		}
	}
	return nil
}

// checkProcMounted checks, when the config mounts a procfs on /proc, that
// what is on /proc after pivot_root is the root of a procfs: the runtime
// goes on to write the process's LSM labels and read its own state there,
// and a file or directory put over them would lie to it.
func checkProcMounted(mounts []specs.Mount) error {
	for _, m := range mounts {
		if m.Type == "proc" && filepath.Clean("/"+m.Destination) == "/proc" {
			return checkProcfs("/proc", true)
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
	resolved, mounts, err := mountsAround(rootfs)
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
	if err := setMountPropagation(parent.mountpoint, unix.MS_PRIVATE); err != nil {
		return &MountError{Target: parent.mountpoint, Flags: unix.MS_PRIVATE, Err: err}
	}
	return nil
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
		return &MountError{Target: "old root", Flags: unix.MS_SLAVE | unix.MS_REC, Err: err}
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
// visible, then makes only the top mount read-only. It works on
// descriptors only: a clone of the tree at p (open_tree), made read-only
// while detached (mount_setattr) and attached over the same descriptor
// (move_mount). A path that does not exist is skipped.
func readonlyPath(root int, p string) error {
	fd, err := openat2InRoot(root, p, unix.O_PATH, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return os.NewSyscallError("open_tree", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return os.NewSyscallError("mount_setattr", err)
	}
	return attachTree(tree, fd)
}

// attachTree attaches the detached tree over the entry fd refers to.
func attachTree(tree, fd int) error {
	err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	return os.NewSyscallError("move_mount", err)
}

// maskPaths masks each of paths once (a path listed twice gets one mount,
// as in runc), the directories all with one tmpfs: the first directory
// gets it, the others a clone of that mount.
func maskPaths(root int, paths []string, mountLabel string) error {
	seen := make(map[string]bool, len(paths))
	dirMask := -1
	defer func() {
		if dirMask >= 0 {
			unix.Close(dirMask)
		}
	}()
	for _, p := range paths {
		if seen[filepath.Clean(p)] {
			continue
		}
		seen[filepath.Clean(p)] = true
		if err := maskPath(root, p, mountLabel, &dirMask); err != nil {
			return fmt.Errorf("masked path %s: %w", p, err)
		}
	}
	return nil
}

// maskPath hides p: the container's /dev/null over a file, an empty
// read-only tmpfs over a directory, labelled with mountLabel as the
// container's other tmpfs mounts are. *dirMask, once a directory has been
// masked, holds that tmpfs (O_PATH), which later directories get a clone
// of. /dev/null is checked to be the null device before it is bound
// anywhere.
func maskPath(root int, p, mountLabel string, dirMask *int) error {
	fd, err := openat2InRoot(root, p, unix.O_PATH, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return maskDir(root, fd, p, mountLabel, dirMask)
	}
	null, err := openDevNull(root)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	tree, err := unix.OpenTree(null, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return os.NewSyscallError("open_tree /dev/null", err)
	}
	defer unix.Close(tree)
	return attachTree(tree, fd)
}

// maskDir masks the directory fd (p in root) with the shared tmpfs: a
// clone of it once there is one, else a new one, which it keeps.
func maskDir(root, fd int, p, mountLabel string, dirMask *int) error {
	if *dirMask >= 0 {
		tree, err := unix.OpenTree(*dirMask, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		if err != nil {
			return os.NewSyscallError("open_tree of the masking tmpfs", err)
		}
		defer unix.Close(tree)
		return attachTree(tree, fd)
	}
	data, err := maskData(mountLabel)
	if err != nil {
		return err
	}
	if err := mountOnDir(fd, "tmpfs", "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return err
	}
	// The path now leads to the new tmpfs.
	m, err := openat2InRoot(root, p, unix.O_PATH, false)
	if err != nil {
		return err
	}
	*dirMask = m
	return nil
}

// mountOnDir mounts a filesystem on the directory fd refers to: mount(2)
// onto ".", after fchdir to it, is the directory the descriptor holds. The
// working directory goes back to / (where pivotInto left it).
func mountOnDir(fd int, src, fstype string, flags uintptr, data string) error {
	if err := unix.Fchdir(fd); err != nil {
		return os.NewSyscallError("fchdir", err)
	}
	err := unix.Mount(src, ".", fstype, flags, data)
	if err != nil {
		err = fmt.Errorf("mount %s: %w", fstype, err)
	}
	if cerr := unix.Chdir("/"); err == nil && cerr != nil {
		err = os.NewSyscallError("chdir /", cerr)
	}
	return err
}

// openDevNull opens the container's /dev/null, refusing anything but the
// null device: a masked file must read as empty, whatever the image put
// at /dev/null.
func openDevNull(root int) (int, error) {
	fd, err := openat2InRoot(root, "/dev/null", unix.O_PATH|unix.O_NOFOLLOW, true)
	if errors.Is(err, errNotOrdinary) {
		return -1, errors.New("/dev/null is not an ordinary path: it goes through a symlink")
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fstat /dev/null", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		unix.Close(fd)
		return -1, errors.New("/dev/null is not the null device")
	}
	return fd, nil
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

// cgroupMount reports whether m shows cgroups: a cgroup filesystem, whose
// root is the container's cgroup namespace's, or a bind from the host's
// cgroup hierarchies.
func cgroupMount(m specs.Mount) bool {
	return m.Type == "cgroup" || m.Type == "cgroup2" ||
		m.Source == hostCgroupRoot || strings.HasPrefix(m.Source, hostCgroupRoot+"/")
}
