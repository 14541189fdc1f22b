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

// mountEntry performs one of spec.Mounts under rootfs. idmapTree is the
// mount's detached tree when it is idmapped, nil otherwise.
func mountEntry(rootfs string, m specs.Mount, idmapTree *os.File) error {
	flags, prop, data, err := parseMountOptions(m.Options)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Destination, err)
	}
	if idmapTree == nil && wantsIDMap(m) {
		// Mounting it unmapped would hand the container the wrong owners.
		return fmt.Errorf("mount %s: idmapped, but no idmapped tree was made for it", m.Destination)
	}
	dst, err := secureJoin(rootfs, m.Destination)
	if err != nil {
		return err
	}
	switch {
	case idmapTree != nil:
		if err := attachIDMappedTree(idmapTree, dst, flags); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
	case isBindMount(m.Type, flags):
		if m.Type == "rbind" {
			flags |= unix.MS_REC
		}
		if err = mountBind(m.Source, dst, flags|unix.MS_BIND); err != nil {
			// Its errors name the source or the host path, not the
			// config entry.
			err = fmt.Errorf("mount %s: %w", m.Destination, err)
		}
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
