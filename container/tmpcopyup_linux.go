package container

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// tmpcopyup: a tmpfs whose options say "tmpcopyup" starts with a copy of
// what the directory it covers holds (runc's extension, which podman uses
// for volumes over image directories).
//
// The directory is in the rootfs, so everything in it is the image's and
// hostile: the copy works only on descriptors, relative to the directory
// held open before the tmpfs covered it, and follows no symlink. A symlink
// is copied as a symlink (its text, never what it points to); a regular
// file is opened with O_NOFOLLOW and O_NONBLOCK and read only if it is
// still a regular file; a device, FIFO or socket is made again with
// mknodat, never opened. The new tmpfs is visible only in init's mount
// namespace, where nothing else runs yet, so nobody races the writes.

// maxCopyupDepth bounds how deep the copy goes: each level holds two
// directory descriptors.
const maxCopyupDepth = 256

// openCoveredDir opens, for reading, the directory a tmpfs is about to
// cover: once the tmpfs is on it, only this descriptor still reaches it.
func openCoveredDir(t *target) (*os.File, error) {
	fd, err := unix.Openat(t.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tmpcopyup: %w", &os.PathError{Op: "open", Path: t.name, Err: err})
	}
	return os.NewFile(uintptr(fd), t.name), nil
}

// copyUp copies the content of the directory src into the directory dst
// (an O_PATH descriptor of the new tmpfs's root).
func copyUp(src *os.File, dst int) error {
	d, err := unix.Openat(dst, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tmpcopyup: open the tmpfs: %w", err)
	}
	to := os.NewFile(uintptr(d), "tmpfs")
	defer to.Close()
	if err := copyDirContent(src, to, 0); err != nil {
		return fmt.Errorf("tmpcopyup: %w", err)
	}
	return nil
}

// copyDirContent copies every entry of from into to, recursively.
func copyDirContent(from, to *os.File, depth int) error {
	if depth >= maxCopyupDepth {
		return fmt.Errorf("%s: more than %d directories deep", from.Name(), maxCopyupDepth)
	}
	names, err := from.Readdirnames(-1)
	if err != nil {
		return &os.PathError{Op: "readdir", Path: from.Name(), Err: err}
	}
	for _, name := range names {
		if err := copyEntry(from, to, name, depth); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies one entry, by its type as lstat sees it, then gives
// the copy the original's owner and mode (in that order: chown clears
// set-ID bits).
func copyEntry(from, to *os.File, name string, depth int) error {
	path := from.Name() + "/" + name
	var st unix.Stat_t
	if err := unix.Fstatat(int(from.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = copySubdir(from, to, name, &st, depth)
	case unix.S_IFREG:
		err = copyFile(from, to, name, &st)
	case unix.S_IFLNK:
		err = copySymlink(from, to, name, &st)
	default:
		err = copyNode(to, name, &st)
	}
	if err != nil {
		return &os.PathError{Op: "copy", Path: path, Err: err}
	}
	return nil
}

func copySubdir(from, to *os.File, name string, st *unix.Stat_t, depth int) error {
	sfd, err := unix.Openat(int(from.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sub := os.NewFile(uintptr(sfd), from.Name()+"/"+name)
	defer sub.Close()
	if err := unix.Mkdirat(int(to.Fd()), name, 0o700); err != nil {
		return err
	}
	dfd, err := unix.Openat(int(to.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(dfd), to.Name()+"/"+name)
	defer dst.Close()
	if err := copyDirContent(sub, dst, depth+1); err != nil {
		return err
	}
	return setOwnerMode(dfd, st)
}

func copyFile(from, to *os.File, name string, st *unix.Stat_t) error {
	sfd, err := unix.Openat(int(from.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(sfd), name)
	defer src.Close()
	// What was a regular file at lstat may have been swapped since.
	var now unix.Stat_t
	if err := unix.Fstat(sfd, &now); err != nil {
		return err
	}
	if now.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("no longer a regular file")
	}
	dfd, err := unix.Openat(int(to.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(dfd), name)
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	return setOwnerMode(dfd, &now)
}

func copySymlink(from, to *os.File, name string, st *unix.Stat_t) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(from.Fd()), name, buf)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(string(buf[:n]), int(to.Fd()), name); err != nil {
		return err
	}
	return unix.Fchownat(int(to.Fd()), name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
}

// copyNode makes a device, FIFO or socket again; it is never opened.
func copyNode(to *os.File, name string, st *unix.Stat_t) error {
	if err := unix.Mknodat(int(to.Fd()), name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
		return err
	}
	// Just made by this process in a tmpfs nothing else reaches.
	fd, err := unix.Openat(int(to.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchownat(fd, "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	return unix.Fchmodat(int(to.Fd()), name, st.Mode&0o7777, 0)
}

// setOwnerMode gives fd, a file or directory opened for real, st's owner
// and permission bits.
func setOwnerMode(fd int, st *unix.Stat_t) error {
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Fchmod(fd, st.Mode&0o7777)
}
