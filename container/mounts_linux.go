package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountEntry performs one of spec.Mounts inside root. src, when not nil,
// says where its source comes from other than its path on the host
// (mountSource): a detached tree the parent made (an idmapped mount; a
// bind mount in a user namespace, whose source init may not reach), or a
// source in the rootfs; xattrLabel, when set, labels the new mount's root
// (linux.mountLabel on filesystems that take no context= option). Its
// errors are *MountError.
func mountEntry(root *rootDir, m specs.Mount, src *mountSource, xattrLabel string) error {
	if err := mountEntryIn(root, m, src, xattrLabel); err != nil {
		return mountErr(m, err)
	}
	return nil
}

func mountEntryIn(root *rootDir, m specs.Mount, src *mountSource, xattrLabel string) error {
	flags, prop, data, err := parseMountOptions(m.Options)
	if err != nil {
		return err
	}
	bind := isBindMount(m.Type, flags)
	source := m.Source
	var tree *os.File
	if src != nil {
		tree = src.tree
		if src.inRoot != "" && bind {
			rbind := m.Type == "rbind" || flags&unix.MS_REC != 0
			var done func()
			if source, tree, done, err = openInRootSource(root, src, rbind); err != nil {
				return err
			}
			defer done()
		}
	}
	if tree == nil && wantsIDMap(m) {
		// Mounting it unmapped would hand the container the wrong owners.
		return errors.New("idmapped, but no idmapped tree was made for it")
	}
	if m.Type == "tmpfs" && !bind {
		data = tmpfsModeData(root, m.Destination, data)
	}
	if readonlyLater(m) {
		// Mounts below it, device nodes and links still have to be
		// made: finishReadonly applies the flag after pivot_root.
		flags &^= unix.MS_RDONLY
	}
	kind, err := mountTargetKind(source, bind, tree)
	if err != nil {
		return err
	}
	t, err := resolveIn(root.fd, m.Destination, resolveOpts{kind: kind, strict: specialFilesystems[m.Type]}, nil)
	if errors.Is(err, errNotOrdinary) {
		return fmt.Errorf("filesystem %q must be mounted on ordinary directory", m.Type)
	}
	if err != nil {
		return err
	}
	defer t.close()
	if err := checkProcDestination(root, t, m, source, bind); err != nil {
		return err
	}
	var covered *os.File
	if wantsTmpcopyup(m) {
		if covered, err = openCoveredDir(t); err != nil {
			return err
		}
		defer covered.Close()
	}
	var dst int
	switch {
	case tree != nil:
		dst, err = attachDetachedTree(tree, t, flags)
	case bind:
		if m.Type == "rbind" {
			flags |= unix.MS_REC
		}
		dst, err = mountBind(source, t, flags|unix.MS_BIND)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		dst, err = mountCgroup(m.Type, t, flags, root.cgroupNS)
	case m.Type == "sysfs":
		dst, err = mountSysfs(m.Source, t, flags, data)
	default:
		dst, err = mountFilesystem(m.Source, t, m.Type, flags, data)
	}
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	if covered != nil {
		if err := copyUp(covered, dst); err != nil {
			return err
		}
	}
	for _, p := range prop {
		if err := setMountPropagation(procFD(dst), p); err != nil {
			return err
		}
	}
	if xattrLabel != "" {
		if err := unix.Setxattr(procFD(dst), "security.selinux", []byte(xattrLabel), 0); err != nil {
			return fmt.Errorf("linux.mountLabel %q: setxattr security.selinux: %w", xattrLabel, err)
		}
	}
	return nil
}

// tmpfsModeData gives a tmpfs the mode of the directory it covers, as
// runc does, ahead of the options' own mode= (the last one wins): a tmpfs
// on an image's 1777 /tmp stays 1777. Where the destination does not
// exist yet, the tmpfs keeps its default (1777) and the directories made
// for it get the usual 0755.
func tmpfsModeData(root *rootDir, dest, data string) string {
	fd, err := openat2InRoot(root.fd, dest, unix.O_PATH, false)
	if err != nil {
		return data
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return data
	}
	mode := fmt.Sprintf("mode=%04o", st.Mode&0o7777)
	if data == "" {
		return mode
	}
	return mode + "," + data
}

// specialFilesystems must be mounted on an ordinary directory of the
// rootfs, never through a symlink: the image decides where those lead, and
// a procfs or sysfs the container's own files shadow is how runc's
// CVE-2019-19921 let a container rewrite its LSM labels. A constant
// lookup table, never written to.
var specialFilesystems = map[string]bool{
	"proc": true, "sysfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true,
}

// mountTargetKind is what the mount's target must be: a directory, or a
// file for a bind (of source) or detached tree of a non-directory.
func mountTargetKind(source string, bind bool, tree *os.File) (targetKind, error) {
	switch {
	case tree != nil:
		var st unix.Stat_t
		if err := unix.Fstat(int(tree.Fd()), &st); err != nil {
			return 0, &os.PathError{Op: "fstat", Path: tree.Name(), Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return kindFile, nil
		}
	case bind:
		fi, err := os.Stat(source)
		if err != nil {
			return 0, err
		}
		if !fi.IsDir() {
			return kindFile, nil
		}
	}
	return kindDir, nil
}

// procFiles are the files under /proc that lxcfs-style tools bind over
// with their own views; any other destination inside /proc is refused
// (runc's rule since CVE-2019-19921). A function returning an array value
// so nobody can modify the list.
func procFiles() [11]string {
	return [...]string{
		"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
		"/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
		"/proc/net/dev", "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
	}
}

// checkProcDestination refuses a mount whose target, as resolved, is
// inside /proc or on a procfs: a file bound over /proc/sys/kernel/cap_last_cap
// or /proc/self/attr would lie to the runtime itself. /proc itself may
// take a procfs (a new one, or a bind of a procfs root); the lxcfs files
// may take a bind.
func checkProcDestination(root *rootDir, t *target, m specs.Mount, source string, bind bool) error {
	rel, err := root.relPath(t.fd)
	if err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(t.fd, &st); err != nil {
		return os.NewSyscallError("fstatfs", err)
	}
	if rel != "/proc" && !strings.HasPrefix(rel, "/proc/") && st.Type != unix.PROC_SUPER_MAGIC {
		return nil
	}
	if rel == "/proc" {
		if m.Type == "proc" || bind && checkProcfs(source, true) == nil {
			return nil
		}
		return errors.New("only a procfs may be mounted on /proc")
	}
	files := procFiles()
	if bind && slices.Contains(files[:], rel) {
		return nil
	}
	return fmt.Errorf("resolves to %s, inside /proc, where only a few files may be bound over", rel)
}

// readonlyLater reports whether m's read-only flag waits until the whole
// rootfs is built, as in runc: a tmpfs, or whatever is mounted on /dev,
// is where the mounts below it (/dev/pts, /dev/shm), the device nodes and
// the /dev links are made afterwards.
func readonlyLater(m specs.Mount) bool {
	if m.Type != "tmpfs" && filepath.Clean("/"+m.Destination) != "/dev" {
		return false
	}
	flags, _, _, err := parseMountOptions(m.Options)
	return err == nil && flags&unix.MS_RDONLY != 0
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

// mountOn performs mount(2) onto t's descriptor and returns one of the new
// mount's root. A remount changes the mount already there, so it lands
// on t itself.
func mountOn(src string, t *target, fstype string, flags uintptr, data string) (int, error) {
	before, _, err := mountID(t.fd)
	if err != nil {
		return -1, err
	}
	// The caller's MountError names the mount: the bare errno is the cause.
	if err := unix.Mount(src, procFD(t.fd), fstype, flags, data); err != nil {
		return -1, err
	}
	if flags&unix.MS_REMOUNT != 0 {
		return unix.Dup(t.fd)
	}
	return landed(t, before)
}

// mountBind binds src onto t. The kernel ignores every flag but MS_REC on
// the initial bind, so the others take a second, remounting call.
func mountBind(src string, t *target, flags uintptr) (int, error) {
	dst, err := mountOn(src, t, "", flags&(unix.MS_BIND|unix.MS_REC), "")
	if err != nil {
		return -1, err
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
		if err := remountBind(procFD(dst), rest); err != nil {
			unix.Close(dst)
			return -1, err
		}
	}
	return dst, nil
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
		return os.NewSyscallError("remount", err)
	}
	return nil
}

func mountFilesystem(src string, t *target, fstype string, flags uintptr, data string) (int, error) {
	if src == "" {
		src = fstype
	}
	return mountOn(src, t, fstype, flags, data)
}

// mountSysfs falls back to binding the host's /sys when the kernel refuses
// a new sysfs: only the owner of the network namespace may mount one, which
// a container in its own user namespace but the host's network namespace is
// not.
func mountSysfs(src string, t *target, flags uintptr, data string) (int, error) {
	dst, err := mountFilesystem(src, t, "sysfs", flags, data)
	if errors.Is(err, unix.EPERM) {
		return mountBind("/sys", t, flags|unix.MS_BIND|unix.MS_REC)
	}
	return dst, err
}

// setMountPropagation changes the propagation of the mount at dst. Its
// error does not name dst, often a /proc/self/fd name: the caller's
// MountError names the mount.
func setMountPropagation(dst string, flag uintptr) error {
	return os.NewSyscallError("set propagation", unix.Mount("", dst, "", flag, ""))
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
	// bindOwn: bind ownDir rather than mount the hierarchy.
	bindOwn bool
}

// mountCgroup mounts the cgroup hierarchies at t: cgroup2 itself when the
// host is cgroup v2 or it was asked for by type, otherwise a tmpfs with one
// directory per v1 hierarchy. In a cgroup namespace (cgroupNS) each shows
// the container's own cgroup as its root. Without one, the v1 layout binds
// the container's own cgroup directories instead, as runc does: a
// hierarchy mounted whole would show (and, mounted writable, let the
// container change) every cgroup of the host, and the sub-cgroups the
// container makes belong below its own (delete.bats "runc delete --force
// in cgroupv1 with subcgroups").
func mountCgroup(fstype string, t *target, flags uintptr, cgroupNS bool) (int, error) {
	hs, unified, err := hostCgroupHierarchies()
	if err != nil {
		return -1, err
	}
	if !unified && fstype == "cgroup" {
		if !cgroupNS {
			for i := range hs {
				hs[i].bindOwn = hs[i].ownDir != ""
			}
		}
		return mountCgroupV1(hs, t, flags)
	}
	h := cgroupHierarchy{fstype: "cgroup2"}
	for _, c := range hs {
		if c.fstype == "cgroup2" {
			h = c
		}
	}
	return mountCgroupHierarchy(h, t, flags)
}

// mountCgroupV1 builds the v1 layout: the tmpfs stays writable until the
// directories and links are in place. They are made relative to the
// tmpfs's own descriptor: it is new, and nothing else can reach it.
func mountCgroupV1(hs []cgroupHierarchy, t *target, flags uintptr) (int, error) {
	dst, err := mountFilesystem("tmpfs", t, "tmpfs", flags&^unix.MS_RDONLY, "mode=755")
	if err != nil {
		return -1, err
	}
	if err := mountCgroupV1Layout(hs, dst, flags); err != nil {
		unix.Close(dst)
		return -1, err
	}
	return dst, nil
}

func mountCgroupV1Layout(hs []cgroupHierarchy, dir int, flags uintptr) error {
	for _, h := range hs {
		if err := mountCgroupIn(h, dir, flags); err != nil {
			return err
		}
	}
	if err := linkCgroupComounts(hs, dir); err != nil {
		return err
	}
	if flags&unix.MS_RDONLY == 0 {
		return nil
	}
	return remountBind(procFD(dir), flags)
}

// mountCgroupIn mounts hierarchy h on a new directory h.name in dir.
func mountCgroupIn(h cgroupHierarchy, dir int, flags uintptr) error {
	fd, err := openOrCreate(dir, h.name, kindDir)
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: h.name, Err: err}
	}
	d, err := unix.Dup(dir)
	if err != nil {
		unix.Close(fd)
		return os.NewSyscallError("dup", err)
	}
	sub := &target{dir: d, name: h.name, fd: fd}
	defer sub.close()
	m, err := mountCgroupHierarchy(h, sub, flags)
	if err != nil {
		return err
	}
	unix.Close(m)
	return nil
}

// mountCgroupHierarchy mounts one hierarchy at t. Without a cgroup
// namespace of its own, a process in a user namespace may not mount cgroup
// filesystems; binding its own cgroup from the host gives the view a
// namespace would have.
func mountCgroupHierarchy(h cgroupHierarchy, t *target, flags uintptr) (int, error) {
	if h.bindOwn {
		return mountBind(h.ownDir, t, flags|unix.MS_BIND)
	}
	dst, err := mountFilesystem(h.fstype, t, h.fstype, flags, h.data)
	if errors.Is(err, unix.EPERM) && h.ownDir != "" {
		return mountBind(h.ownDir, t, flags|unix.MS_BIND)
	}
	return dst, err
}

// linkCgroupComounts adds the links tools expect for comounted controllers,
// such as cpu and cpuacct -> cpu,cpuacct.
func linkCgroupComounts(hs []cgroupHierarchy, dir int) error {
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
			err := unix.Symlinkat(h.name, dir, c)
			if err != nil && err != unix.EEXIST {
				return &os.PathError{Op: "symlink", Path: c, Err: err}
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

// mountsAround returns rootfs as mountinfo shows it (its symlinks
// resolved: the kernel lists the paths it resolved) and this process's
// mounts, for the work done on the mounts outside or above it.
func mountsAround(rootfs string) (string, []mountinfoEntry, error) {
	resolved, err := filepath.EvalSymlinks(rootfs)
	if err != nil {
		return "", nil, err
	}
	mounts, err := readMountinfo()
	return resolved, mounts, err
}

// readMountinfo returns this process's mounts, from /proc/self/mountinfo.
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
