package statedir

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Ident tells a container directory from another that had the same name
// before it: a container may be deleted and a new one made under its ID
// while a watcher still holds what it learnt of the first. A filesystem
// may give the new directory the inode number of the old one (ext4 does,
// at once); the inode's generation (ext4, xfs, btrfs) and its birth time
// tell them apart. tmpfs gives neither, and never reuses an inode number.
type Ident struct {
	Ino   uint64
	Gen   uint32 // 0 where the filesystem has none
	Birth int64  // ns since the epoch; 0 where the filesystem has none
}

// IsZero reports whether the Ident is no directory's (the zero value).
func (id Ident) IsZero() bool { return id == Ident{} }

// Ident returns the identity of the directory name in r, never following
// a link. A missing one gives an error that is os.ErrNotExist.
func (r *Root) Ident(name string) (Ident, error) {
	fd, err := unix.Openat(r.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Ident{}, &os.PathError{Op: "open", Path: DirPath(r.path, name), Err: err}
	}
	defer unix.Close(fd)
	id, err := fdIdent(fd)
	if err != nil {
		return Ident{}, &os.PathError{Op: "statx", Path: DirPath(r.path, name), Err: err}
	}
	return id, nil
}

// Ident returns the identity of the open directory.
func (d *Dir) Ident() (Ident, error) {
	if err := d.open(); err != nil {
		return Ident{}, err
	}
	id, err := fdIdent(d.fd)
	if err != nil {
		return Ident{}, &os.PathError{Op: "statx", Path: d.Path(), Err: err}
	}
	return id, nil
}

// fsIocGetVersion is FS_IOC_GETVERSION, _IOR('v', 1, long), which
// x/sys/unix lacks. (It writes an int, whatever its number says.)
const fsIocGetVersion uint = 2<<30 | (bits.UintSize/8)<<16 | 'v'<<8 | 1

func fdIdent(fd int) (Ident, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return Ident{}, err
	}
	id := Ident{Ino: stx.Ino}
	if stx.Mask&unix.STATX_BTIME != 0 {
		id.Birth = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	// Best effort: filesystems without generations refuse the ioctl.
	if gen, err := unix.IoctlGetUint32(fd, fsIocGetVersion); err == nil {
		id.Gen = gen
	}
	return id, nil
}

// RootWatch reports the container directories that appear in and vanish
// from a state root, through inotify: crier event --all learns of new
// containers from it without polling.
type RootWatch struct {
	path string
	f    *os.File
	buf  []byte
}

// Change is one name of the root that appeared (Gone false) or vanished.
// Hidden names, directories still being made, are never reported: a
// container's directory appears when it is renamed to its ID (Publish),
// with its shim's socket already listening.
type Change struct {
	Name string
	Gone bool
}

// ErrRootGone is Next's error once the watched root was moved away, or
// removed. (inotify reports a removal only once the last descriptor of the
// directory is closed, and the Root holds one: a root removed while it is
// watched, which rmdir allows only when it is empty, goes unnoticed.)
var ErrRootGone = errors.New("the state root was removed or moved")

// Watch starts watching r for container directories. The watch is on the
// checked directory r holds open, not on its path, so a root swapped for
// another since OpenRoot is not the one watched. Changes that happen after
// Watch returns are reported; list the ones before with Names, after
// Watch, and expect a name to be reported by both.
func (r *Root) Watch() (*RootWatch, error) {
	f, fd, err := newInotify()
	if err != nil {
		return nil, err
	}
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_MOVED_FROM |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if err := watchFD(fd, r.fd, mask, r.path); err != nil {
		f.Close()
		return nil, err
	}
	return &RootWatch{path: r.path, f: f, buf: make([]byte, 64<<10)}, nil
}

// newInotify returns a new inotify instance and its descriptor,
// non-blocking so that reads wait on the netpoller and honour deadlines
// (which f.Fd would undo).
func newInotify() (f *os.File, fd int, err error) {
	fd, err = unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, -1, os.NewSyscallError("inotify_init1", err)
	}
	return os.NewFile(uintptr(fd), "inotify"), fd, nil
}

// watchFD adds to the inotify instance fd a watch on the directory open
// at dirfd, not on a path, so that one swapped in since it was checked is
// not the one watched; path names it in errors.
func watchFD(fd, dirfd int, mask uint32, path string) error {
	if _, err := unix.InotifyAddWatch(fd, "/proc/self/fd/"+strconv.Itoa(dirfd), mask); err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	return nil
}

// Close stops the watch.
func (w *RootWatch) Close() error { return w.f.Close() }

// Next blocks until names of the root change, and returns the changes in
// the order they happened. overflow says the kernel dropped changes (its
// queue was full): the caller must list the root again. It returns
// ErrRootGone, wrapped with the root's path, once the root went.
func (w *RootWatch) Next(ctx context.Context) (changes []Change, overflow bool, err error) {
	// A deadline an earlier call's context left is no longer this one's.
	w.f.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for len(changes) == 0 && !overflow {
		n, err := w.f.Read(w.buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			return nil, false, fmt.Errorf("inotify %s: %w", w.path, err)
		}
		gone := false
		eachEvent(w.buf[:n], func(mask uint32, name string) {
			switch {
			case mask&unix.IN_Q_OVERFLOW != 0:
				overflow = true
			case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_UNMOUNT) != 0:
				gone = true
			case name == "" || strings.HasPrefix(name, "."):
			default:
				changes = append(changes, Change{Name: name, Gone: mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0})
			}
		})
		if gone {
			return nil, false, fmt.Errorf("state root %s: %w", w.path, ErrRootGone)
		}
	}
	return changes, overflow, nil
}

// eachEvent calls fn with the mask and name of each inotify event in buf.
func eachEvent(buf []byte, fn func(mask uint32, name string)) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		start := off + unix.SizeofInotifyEvent
		end := start + int(binary.NativeEndian.Uint32(buf[off+12:]))
		if end > len(buf) {
			return
		}
		fn(mask, cstring(buf[start:end]))
		off = end
	}
}
