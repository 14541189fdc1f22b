package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths inside a container's rootfs are resolved by descriptor, never as a
// string that is looked up twice: a directory of the rootfs may be a volume
// that another container rewrites while this one is set up, so a checked
// path can name a symlink to the host by the time mount(2) follows it (the
// class of CVE-2021-30465). Every lookup below starts at a held directory
// descriptor and goes through openat2(2) with RESOLVE_IN_ROOT, so symlinks
// and ".." stay inside the root whatever the tree looks like at that
// instant; missing components are created one at a time relative to the
// descriptor of their parent, and the result is an O_PATH descriptor that
// the mount, mknod or chmod acts on.

// maxLinksFollowed bounds the symlinks resolveIn follows itself (those
// openat2 follows count against the kernel's own limit), as the kernel's
// MAXSYMLINKS bounds one lookup.
const maxLinksFollowed = 40

// errNotOrdinary is returned by a strict resolution that met a symlink or a
// non-directory.
var errNotOrdinary = errors.New("not an ordinary directory")

// targetKind says what resolveIn creates when the path does not exist.
type targetKind int

const (
	kindExisting targetKind = iota // create nothing
	kindDir
	kindFile
)

// resolveOpts are the options of one resolution.
type resolveOpts struct {
	kind targetKind
	// strict refuses any symlink on the way and any non-directory: the
	// target of a procfs, sysfs or devpts mount must be an ordinary
	// directory of the rootfs (CVE-2019-19921).
	strict bool
}

// target is a resolved entry inside a root: an O_PATH descriptor of the
// entry and one of the directory it was found in, with its name there.
// The name lets the caller look the entry up again after mounting on it
// (a lookup crosses the new mount, the held descriptor does not).
type target struct {
	dir  int
	name string
	fd   int
}

func (t *target) close() {
	unix.Close(t.fd)
	unix.Close(t.dir)
}

// pathComponents splits p into its components, dropping empty ones and
// ".": neither names anything a symlink could redirect.
func pathComponents(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, c := range parts {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// openat2InRoot opens p below root the way the container would see it.
// EAGAIN is the kernel's answer to a rename racing a ".." walk; the lookup
// is simply tried again.
func openat2InRoot(root int, p string, flags uint64, strict bool) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	if strict {
		how.Resolve |= unix.RESOLVE_NO_SYMLINKS
	}
	if p == "" {
		p = "."
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(root, p, &how)
		if err == unix.EAGAIN && i < 16 {
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if strict && (err == unix.ELOOP || err == unix.ENOTDIR) {
			return -1, errNotOrdinary
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: "/" + p, Err: err}
		}
		return fd, nil
	}
}

// openDirIn returns an O_PATH descriptor of directory p below root,
// creating what is missing when o.kind is not kindExisting.
func openDirIn(root int, p string, o resolveOpts, links *int) (int, error) {
	fd, err := openat2InRoot(root, p, unix.O_PATH|unix.O_DIRECTORY, o.strict)
	if o.kind == kindExisting || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	comps := pathComponents(p)
	if comps[len(comps)-1] == ".." {
		// "missing/..": make "missing", then ".." resolves.
		parent, err := openDirIn(root, strings.Join(comps[:len(comps)-1], "/"), o, links)
		if err != nil {
			return -1, err
		}
		unix.Close(parent)
		return openat2InRoot(root, p, unix.O_PATH|unix.O_DIRECTORY, o.strict)
	}
	t, err := resolveIn(root, p, resolveOpts{kind: kindDir, strict: o.strict}, links)
	if err != nil {
		return -1, err
	}
	unix.Close(t.dir)
	return t.fd, nil
}

// resolveIn resolves p below root to a target, creating it (and missing
// parents) as o says. A symlink in the last component is followed by hand,
// inside root, so that the caller gets the directory that holds the real
// entry. links counts the symlinks followed so far, nil for a fresh count.
func resolveIn(root int, p string, o resolveOpts, links *int) (*target, error) {
	if links == nil {
		links = new(int)
	}
	for {
		comps := pathComponents(p)
		if len(comps) == 0 {
			return nil, errors.New("resolves to the root itself")
		}
		name := comps[len(comps)-1]
		if name == ".." {
			return nil, errors.New(`ends in ".."`)
		}
		dirPath := strings.Join(comps[:len(comps)-1], "/")
		dir, err := openDirIn(root, dirPath, o, links)
		if err != nil {
			return nil, err
		}
		fd, err := openOrCreate(dir, name, o.kind)
		if err != nil {
			unix.Close(dir)
			return nil, &os.PathError{Op: "open", Path: "/" + strings.Join(comps, "/"), Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			unix.Close(dir)
			return nil, os.NewSyscallError("fstat", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if o.strict && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				unix.Close(fd)
				unix.Close(dir)
				return nil, errNotOrdinary
			}
			return &target{dir: dir, name: name, fd: fd}, nil
		}
		link, err := readlinkFD(fd)
		unix.Close(fd)
		unix.Close(dir)
		if err != nil {
			return nil, err
		}
		if o.strict {
			return nil, errNotOrdinary
		}
		if *links++; *links > maxLinksFollowed {
			return nil, &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		if !strings.HasPrefix(link, "/") {
			link = dirPath + "/" + link
		}
		p = link
	}
}

// openOrCreate opens name in dir without following it, after creating it
// as kind says if it is missing. A name created by someone else meanwhile
// is simply opened; O_NOFOLLOW keeps a symlink swapped in from being
// followed out of dir.
func openOrCreate(dir int, name string, kind targetKind) (int, error) {
	const flags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dir, name, flags, 0)
	if err != unix.ENOENT || kind == kindExisting {
		return fd, err
	}
	switch kind {
	case kindDir:
		err = unix.Mkdirat(dir, name, 0o755)
	case kindFile:
		var f int
		f, err = unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(f)
		}
	}
	if err != nil && err != unix.EEXIST {
		return -1, err
	}
	return unix.Openat(dir, name, flags, 0)
}

// readlinkFD reads the symlink an O_PATH descriptor refers to.
func readlinkFD(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", os.NewSyscallError("readlinkat", err)
	}
	return string(buf[:n]), nil
}

// procFD names descriptor fd through /proc/self/fd, so that a syscall
// taking only a path (mount(2), setxattr(2)) acts on exactly what fd
// refers to. Only valid while /proc is the host's procfs, as it is before
// pivot_root (checked by openRootDir).
func procFD(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// mountID returns the id of the mount fd is on and whether fd is the root
// of that mount.
func mountID(fd int) (id uint64, root bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, false, os.NewSyscallError("statx", err)
	}
	return stx.Mnt_id, stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// landed looks t up again in its directory after a mount on t.fd and
// returns a descriptor of what is there now, checking that it is the root
// of a new mount: if the name was swapped meanwhile, the mount went onto
// the old entry (inside the root) and the name no longer shows it, which
// is refused rather than guessed at.
func landed(t *target, before uint64) (int, error) {
	fd, err := unix.Openat(t.dir, t.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open after mount", Path: t.name, Err: err}
	}
	id, isRoot, err := mountID(fd)
	if err == nil && (!isRoot || id == before) {
		err = fmt.Errorf("%s changed while it was mounted on", t.name)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// rootDir is the container's rootfs, held open, with the path the kernel
// gives it (for the check that resolved targets are inside it).
type rootDir struct {
	fd   int
	path string
	// cgroupNS: the container has a cgroup namespace of its own (new or
	// joined), so a cgroup filesystem mounted for it shows its cgroups
	// as the roots (mountCgroup).
	cgroupNS bool
}

// openRootDir opens the rootfs at path before pivot_root. It also checks
// that /proc is a procfs, since procFD relies on it.
func openRootDir(path string) (*rootDir, error) {
	if err := checkProcfs("/proc", false); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	real, err := os.Readlink(procFD(fd))
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &rootDir{fd: fd, path: real}, nil
}

func (r *rootDir) close() { unix.Close(r.fd) }

// relPath returns where fd is inside the root, as "/a/b", from the path
// the kernel keeps for it; an fd outside the root is an error.
func (r *rootDir) relPath(fd int) (string, error) {
	p, err := os.Readlink(procFD(fd))
	if err != nil {
		return "", err
	}
	switch {
	case p == r.path:
		return "/", nil
	case r.path == "/":
		return p, nil
	case strings.HasPrefix(p, r.path+"/"):
		return p[len(r.path):], nil
	}
	return "", fmt.Errorf("resolved to %s, outside the rootfs", p)
}

// checkProcfs checks that p is a procfs and, when mountRoot is set, the
// root of a procfs mount (nothing bound over /proc itself).
func checkProcfs(p string, mountRoot bool) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: p, Err: err}
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a procfs (filesystem magic %#x)", p, st.Type)
	}
	if !mountRoot {
		return nil
	}
	var stat unix.Stat_t
	if err := unix.Fstat(fd, &stat); err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	_, isRoot, err := mountID(fd)
	if err != nil {
		return err
	}
	// Only the root of a procfs has inode 1; a bind of a procfs
	// subdirectory over /proc is a mount root too, but not that.
	if !isRoot || stat.Ino != procRootIno {
		return fmt.Errorf("%s is not the root of a procfs mount", p)
	}
	return nil
}

// procRootIno is the inode number of the root directory of every procfs.
const procRootIno = 1
