package statedir

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// WaitExist blocks until path exists, or ctx ends. It does not poll: it
// watches the deepest existing ancestor of path with inotify and descends
// as the missing directories appear, so it works even when the state root
// itself is yet to be made.
func WaitExist(ctx context.Context, path string) error {
	path = filepath.Clean(path)
	for {
		if _, err := os.Lstat(path); err == nil {
			return nil
		}
		dir, next := existingAncestor(path)
		if err := waitChild(ctx, dir, next); err != nil {
			return err
		}
	}
}

// existingAncestor returns the deepest existing directory above path and
// the name of its child on the way to path.
func existingAncestor(path string) (dir, child string) {
	child = path
	for dir = filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir, filepath.Base(child)
		}
		child = dir
		if dir == "/" {
			return dir, filepath.Base(child)
		}
	}
}

// waitChild returns once dir has an entry name, or once dir itself goes
// away (the caller then looks again from higher up).
func waitChild(ctx context.Context, dir, name string) error {
	f, fd, err := newInotify()
	if err != nil {
		return err
	}
	defer f.Close()
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	// The watch is in place: anything created from now on is seen, so
	// check once for what was created before.
	if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		f.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return context.DeadlineExceeded
			}
			return fmt.Errorf("inotify %s: %w", dir, err)
		}
		if changed(buf[:n], name) {
			return nil
		}
	}
}

// changed reports whether the events in buf name child, or say that the
// watched directory itself went away.
func changed(buf []byte, child string) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		n := int(binary.NativeEndian.Uint32(buf[off+12:]))
		start := off + unix.SizeofInotifyEvent
		if start+n > len(buf) {
			return true
		}
		nameb := buf[start : start+n]
		off = start + n
		if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_Q_OVERFLOW) != 0 {
			return true
		}
		if cstring(nameb) == child {
			return true
		}
	}
	return false
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// WaitGone blocks until path, a container's directory without its socket,
// is gone, or ctx ends: such a directory is being removed, or is what a
// removal cut short left (Dir.Remove), and a waiter must wait for it to go
// rather than look again at once. One that has its socket again is a new
// container's, and WaitGone returns at once.
func WaitGone(ctx context.Context, path string) error {
	f, fd, err := newInotify()
	if err != nil {
		return err
	}
	defer f.Close()
	const mask = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW
	if _, err := unix.InotifyAddWatch(fd, path, mask); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	// A directory that has its socket is a container's made since (one
	// is published with its socket in it): nothing to wait for.
	if _, err := os.Lstat(filepath.Join(path, SocketName)); err == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	// Any event on the watch is its end: the directory was removed or
	// moved (IN_IGNORED follows either).
	if _, err := f.Read(make([]byte, 4096)); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}
