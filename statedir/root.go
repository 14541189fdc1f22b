package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// StateFile is the name of the state file in a container's directory.
const StateFile = "state.json"

// ConfigFile is the name of the container's config, as the shim read it
// from the bundle at create. exec takes the process's defaults and the
// seccomp filter from it, never from the bundle, which may have changed
// since (or been replaced by someone else's).
const ConfigFile = "config.json"

// SocketName is the name of the shim's socket in a container's directory.
const SocketName = protocol.SocketName

// DirPath returns the state directory of container id under root, for
// messages and for waiting on it; it is never opened by that name.
func DirPath(root, id string) string { return filepath.Join(root, id) }

// SocketPath returns the shim socket of container id under root by name.
// Dir.SocketPath is the name to connect to once the directory is checked.
func SocketPath(root, id string) string { return filepath.Join(root, id, SocketName) }

// Root is an open, checked state root.
type Root struct {
	path string
	fd   int
}

// OpenRoot opens the state root at path and checks it (see the package
// comment). A missing root gives an error that is os.ErrNotExist.
func OpenRoot(path string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open state root", Path: path, Err: err}
	}
	if err := check(fd, "state root", path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Root{path: path, fd: fd}, nil
}

// CreateRoot opens the state root at path, making it (and any missing
// parent) mode 0700 first if it does not exist.
func CreateRoot(path string) (*Root, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	return OpenRoot(path)
}

// Path returns the root's path.
func (r *Root) Path() string { return r.path }

// Close closes the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Exists reports whether the root has an entry named id, of any kind.
func (r *Root) Exists(id string) bool {
	var st unix.Stat_t
	return unix.Fstatat(r.fd, id, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// tempPrefix starts the name of a container directory still being made
// (NewTemp).
const tempPrefix = ".new-"

// Names returns the root's container directories: its entries but the
// hidden ones, which are directories still being made.
func (r *Root) Names() ([]string, error) {
	names, err := r.entries()
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	return out, nil
}

func (r *Root) entries() ([]string, error) {
	names, err := readNames(r.fd)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: r.path, Err: err}
	}
	return names, nil
}

// readNames returns the names in the directory open at dirfd, which it
// leaves open.
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// SweepAbandoned removes the directories that creates left half made: a
// shim killed between NewTemp and Publish leaves one that no ID names, so
// no delete would ever find it. Only a directory whose maker, named in
// its name, is no longer alive (alive says, by pid and start time) is
// removed: one still being made is left alone. It returns how many it
// removed. It also removes the tickets of waiters that died (Await), and
// their directories once empty.
func (r *Root) SweepAbandoned(alive func(pid int, start uint64) bool) (int, error) {
	names, err := r.entries()
	if err != nil {
		return 0, err
	}
	r.sweepAwaiting(names, alive)
	r.sweepStreams(alive)
	removed := 0
	var errs []error
	for _, n := range names {
		pid, start, ok := tempOwner(n)
		if !ok || alive(pid, start) {
			continue
		}
		d := &Dir{root: r.path, name: n, rootfd: r.fd, fd: -1}
		if err := d.Remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// tempOwner parses the maker out of a NewTemp name.
func tempOwner(name string) (pid int, start uint64, ok bool) {
	rest, found := strings.CutPrefix(name, tempPrefix)
	if !found {
		return 0, 0, false
	}
	return parseOwner(rest)
}

// parseOwner parses PID-START-RANDOM, the end of a name that says who
// made it (NewTemp, Await).
func parseOwner(s string) (pid int, start uint64, ok bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(parts[1], 10, 64)
	return pid, start, err == nil
}

// OpenDir opens and checks the directory of container id. A missing one
// gives an error that is os.ErrNotExist. The Dir shares r's descriptor:
// close the Dir before r.
func (r *Root) OpenDir(id string) (*Dir, error) {
	d := &Dir{root: r.path, name: id, rootfd: r.fd, fd: -1}
	if err := d.open(); err != nil {
		return nil, err
	}
	return d, nil
}

// Open opens the state root and the directory of container id in it; the
// Dir's Close closes both.
func Open(root, id string) (*Dir, error) {
	r, err := OpenRoot(root)
	if err != nil {
		return nil, err
	}
	d, err := r.OpenDir(id)
	if err != nil {
		r.Close()
		return nil, err
	}
	d.ownRoot = true
	return d, nil
}

// check refuses a directory that another user could change: one not owned
// by our effective uid, or writable by its group or by others.
func check(fd int, what, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat " + what, Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s %s: not a directory", what, path)
	}
	if euid := uint32(os.Geteuid()); st.Uid != euid {
		return fmt.Errorf("%s %s: owned by uid %d, not %d", what, path, st.Uid, euid)
	}
	if perm := st.Mode & 0o7777; perm&0o022 != 0 {
		return fmt.Errorf("%s %s: writable by group or others (mode %04o)", what, path, perm)
	}
	return nil
}

// isNotExist reports whether err says a path is missing.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
