package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
// performs spec.Mounts in order with destinations resolved inside rootfs,
// and, unless /dev is bound from the host, populates /dev.
func prepareRootfs(spec *specs.Spec, rootfs string) error {
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
	for _, m := range spec.Mounts {
		if err := mountEntry(rootfs, m); err != nil {
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
		if err := maskPath(p); err != nil {
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
	return setMountPropagation("/", prop)
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
// directory.
func maskPath(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return doMount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
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

// mountEntry performs one of spec.Mounts under rootfs.
func mountEntry(rootfs string, m specs.Mount) error {
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		return fmt.Errorf("mount %s: idmapped mounts are not supported", m.Destination)
	}
	flags, prop, data, err := parseMountOptions(m.Options)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Destination, err)
	}
	dst, err := secureJoin(rootfs, m.Destination)
	if err != nil {
		return err
	}
	switch {
	case isBindMount(m.Type, flags):
		if m.Type == "rbind" {
			flags |= unix.MS_REC
		}
		err = mountBind(m.Source, dst, flags|unix.MS_BIND)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		err = mountCgroup(m.Type, dst, flags)
	case m.Type == "sysfs":
		err = mountSysfs(m.Source, dst, flags, data)
	default:
		err = mountFilesystem(m.Source, dst, m.Type, flags, data)
	}
	if err != nil {
		return err
	}
	for _, p := range prop {
		if err := setMountPropagation(dst, p); err != nil {
			return err
		}
	}
	return nil
}

func isBindMount(fstype string, flags uintptr) bool {
	return flags&unix.MS_BIND != 0 || fstype == "bind" || fstype == "rbind"
}

// devBoundFromHost reports whether the last mount on /dev is a bind: the
// container then uses the host's nodes and gets none of its own.
func devBoundFromHost(mounts []specs.Mount) bool {
	bound := false
	for _, m := range mounts {
		if filepath.Clean("/"+m.Destination) != "/dev" {
			continue
		}
		flags, _, _, err := parseMountOptions(m.Options)
		bound = err == nil && isBindMount(m.Type, flags)
	}
	return bound
}

// mountBind binds src onto dst. The kernel ignores every flag but MS_REC on
// the initial bind, so the others take a second, remounting call.
func mountBind(src, dst string, flags uintptr) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := makeMountTarget(dst, fi.IsDir()); err != nil {
		return err
	}
	if err := doMount(src, dst, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return err
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
		return remountBind(dst, rest)
	}
	return nil
}

// remountBind applies per-mount flags to the bind mount at dst. In a user
// namespace the kernel locks the flags a mount had when the namespace was
// created and refuses a remount that would clear them, so on EPERM it
// retries keeping what the mount already has.
func remountBind(dst string, flags uintptr) error {
	flags |= unix.MS_REMOUNT | unix.MS_BIND
	err := unix.Mount("", dst, "", flags, "")
	if errors.Is(err, unix.EPERM) {
		cur, serr := mountFlagsOf(dst)
		if serr != nil {
			return serr
		}
		// Only one atime mode can win; keep the one asked for.
		const atimeFlags = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME
		if flags&atimeFlags != 0 {
			cur &^= atimeFlags
		}
		err = unix.Mount("", dst, "", flags|cur, "")
	}
	if err != nil {
		return &os.PathError{Op: "remount", Path: dst, Err: err}
	}
	return nil
}

// makeMountTarget creates what dst must be for the mount: a directory, or
// an empty file for a non-directory source. An existing entry is left as
// it is and never opened, since it could be a FIFO or a device.
func makeMountTarget(dst string, dir bool) error {
	if dir {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func mountFilesystem(src, dst, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if src == "" {
		src = fstype
	}
	return doMount(src, dst, fstype, flags, data)
}

// mountSysfs falls back to binding the host's /sys when the kernel refuses
// a new sysfs: only the owner of the network namespace may mount one, which
// a container in its own user namespace but the host's network namespace is
// not.
func mountSysfs(src, dst string, flags uintptr, data string) error {
	err := mountFilesystem(src, dst, "sysfs", flags, data)
	if errors.Is(err, unix.EPERM) {
		return mountBind("/sys", dst, flags|unix.MS_BIND|unix.MS_REC)
	}
	return err
}

// doMount is mount(2) with the error wrapped once.
func doMount(src, dst, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, dst, err)
	}
	return nil
}

func setMountPropagation(dst string, flag uintptr) error {
	if err := unix.Mount("", dst, "", flag, ""); err != nil {
		return fmt.Errorf("set propagation of %s: %w", dst, err)
	}
	return nil
}

// statfsMountFlags maps the per-mount flags statfs(2) reports to the
// mount(2) flags that set them; the two only partly share values. It is a
// constant lookup table and never written to.
var statfsMountFlags = [...]struct {
	st int64
	ms uintptr
}{
	{unix.ST_RDONLY, unix.MS_RDONLY},
	{unix.ST_NOSUID, unix.MS_NOSUID},
	{unix.ST_NODEV, unix.MS_NODEV},
	{unix.ST_NOEXEC, unix.MS_NOEXEC},
	{unix.ST_NOATIME, unix.MS_NOATIME},
	{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
	{unix.ST_RELATIME, unix.MS_RELATIME},
	{0x2000, unix.MS_NOSYMFOLLOW}, // ST_NOSYMFOLLOW, missing from x/sys
}

// mountFlagsOf returns the per-mount flags of the mount at p.
func mountFlagsOf(p string) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: p, Err: err}
	}
	var flags uintptr
	for _, f := range statfsMountFlags {
		if st.Flags&f.st != 0 {
			flags |= f.ms
		}
	}
	return flags, nil
}

func pathWithin(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// hostCgroupRoot is where the host mounts its cgroup hierarchies.
const hostCgroupRoot = "/sys/fs/cgroup"

// cgroupHierarchy is one cgroup hierarchy the host mounts at or under
// /sys/fs/cgroup.
type cgroupHierarchy struct {
	name   string // directory under /sys/fs/cgroup, "" for a v2-only host
	fstype string // "cgroup" or "cgroup2"
	data   string // mount data selecting the same hierarchy
	ownDir string // host path of this process's cgroup in it, if known
}

// mountCgroup mounts the cgroup hierarchies at dst: cgroup2 itself when the
// host is cgroup v2 or it was asked for by type, otherwise a tmpfs with one
// directory per v1 hierarchy. In a cgroup namespace each shows the
// container's own cgroup as its root.
func mountCgroup(fstype, dst string, flags uintptr) error {
	hs, unified, err := hostCgroupHierarchies()
	if err != nil {
		return err
	}
	if !unified && fstype == "cgroup" {
		return mountCgroupV1(hs, dst, flags)
	}
	h := cgroupHierarchy{fstype: "cgroup2"}
	for _, c := range hs {
		if c.fstype == "cgroup2" {
			h = c
		}
	}
	return mountCgroupHierarchy(h, dst, flags)
}

// mountCgroupV1 builds the v1 layout: the tmpfs stays writable until the
// directories and links are in place.
func mountCgroupV1(hs []cgroupHierarchy, dst string, flags uintptr) error {
	if err := mountFilesystem("tmpfs", dst, "tmpfs", flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return err
	}
	for _, h := range hs {
		if err := mountCgroupHierarchy(h, filepath.Join(dst, h.name), flags); err != nil {
			return err
		}
	}
	if err := linkCgroupComounts(hs, dst); err != nil {
		return err
	}
	if flags&unix.MS_RDONLY == 0 {
		return nil
	}
	return remountBind(dst, flags)
}

// mountCgroupHierarchy mounts one hierarchy at dst. Without a cgroup
// namespace of its own, a process in a user namespace may not mount cgroup
// filesystems; binding its own cgroup from the host gives the view a
// namespace would have.
func mountCgroupHierarchy(h cgroupHierarchy, dst string, flags uintptr) error {
	err := mountFilesystem(h.fstype, dst, h.fstype, flags, h.data)
	if errors.Is(err, unix.EPERM) && h.ownDir != "" {
		return mountBind(h.ownDir, dst, flags|unix.MS_BIND)
	}
	return err
}

// linkCgroupComounts adds the links tools expect for comounted controllers,
// such as cpu and cpuacct -> cpu,cpuacct.
func linkCgroupComounts(hs []cgroupHierarchy, dst string) error {
	names := make(map[string]bool, len(hs))
	for _, h := range hs {
		names[h.name] = true
	}
	for _, h := range hs {
		if !strings.Contains(h.name, ",") {
			continue
		}
		for _, c := range strings.Split(h.name, ",") {
			if c == "" || names[c] {
				continue
			}
			err := os.Symlink(h.name, filepath.Join(dst, c))
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
	}
	return nil
}

// hostCgroupHierarchies reads the host's cgroup layout from mountinfo,
// which before pivot_root still lists the host's mounts. unified reports a
// v2-only host, whose single hierarchy is mounted at /sys/fs/cgroup itself.
func hostCgroupHierarchies() (hs []cgroupHierarchy, unified bool, err error) {
	mounts, err := readMountinfo()
	if err != nil {
		return nil, false, err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, false, err
	}
	byName := map[string]int{}
	for _, m := range mounts {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		var name string
		switch {
		case m.mountpoint == hostCgroupRoot && m.fstype == "cgroup2":
			unified = true
		case filepath.Dir(m.mountpoint) == hostCgroupRoot:
			name = filepath.Base(m.mountpoint)
		default:
			continue // some other container's cgroup mount, seen from the host
		}
		h := cgroupHierarchy{name: name, fstype: m.fstype, ownDir: ownCgroupDir(string(own), m)}
		if m.fstype == "cgroup" {
			h.data = cgroupV1MountData(m.superOpts)
		}
		if i, ok := byName[name]; ok {
			hs[i] = h // mounted over the earlier one
			continue
		}
		byName[name] = len(hs)
		hs = append(hs, h)
	}
	if unified {
		return []cgroupHierarchy{hs[byName[""]]}, true, nil
	}
	return hs, false, nil
}

// cgroupV1MountData keeps the super options that select the hierarchy:
// controllers, name= and its flags. Read-only comes from the container's
// mount, and release_agent may only be set from the initial namespaces.
func cgroupV1MountData(superOpts string) string {
	var keep []string
	for _, o := range strings.Split(superOpts, ",") {
		if o == "" || o == "rw" || o == "ro" || strings.HasPrefix(o, "release_agent=") {
			continue
		}
		keep = append(keep, o)
	}
	return strings.Join(keep, ",")
}

// ownCgroupDir finds this process's cgroup in the hierarchy mounted by m,
// from the contents of /proc/self/cgroup: the "0::" line for cgroup2, the
// line whose controllers m carries for v1. It returns "" when there is
// none or it lies outside the mount.
func ownCgroupDir(procCgroup string, m mountinfoEntry) string {
	opts := strings.Split(m.superOpts, ",")
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !cgroupLineMatches(parts[0], parts[1], m.fstype, opts) {
			continue
		}
		rel := parts[2]
		if m.root != "/" {
			if !pathWithin(rel, m.root) {
				return ""
			}
			rel = strings.TrimPrefix(rel, m.root)
		}
		dir := filepath.Join(m.mountpoint, rel)
		if !pathWithin(dir, m.mountpoint) {
			return ""
		}
		return dir
	}
	return ""
}

func cgroupLineMatches(id, controllers, fstype string, superOpts []string) bool {
	if fstype == "cgroup2" {
		return id == "0" && controllers == ""
	}
	if controllers == "" {
		return false
	}
	for _, c := range strings.Split(controllers, ",") {
		if !slices.Contains(superOpts, c) {
			return false
		}
	}
	return true
}

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

func readMountinfo() ([]mountinfoEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mounts []mountinfoEntry
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		m, err := parseMountinfoLine(line)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}
