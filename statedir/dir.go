package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// Dir is one container's state directory, used through its descriptor.
// A Dir from At opens itself, and its root, at its first use.
type Dir struct {
	root string
	name string // the entry in the root: the ID, or a temporary name
	// rootfd and fd are -1 until opened. ownRoot says Close closes
	// rootfd too.
	rootfd, fd int
	ownRoot    bool
}

// At returns the directory of container id under root, to be opened (and
// checked) at its first use. The shim's serving image uses it: it
// inherits no descriptor of the directory across its exec.
func At(root, id string) *Dir {
	return &Dir{root: root, name: id, rootfd: -1, fd: -1, ownRoot: true}
}

// Path returns the directory's path, for messages.
func (d *Dir) Path() string { return filepath.Join(d.root, d.name) }

// Root returns the path of the state root the directory is in.
func (d *Dir) Root() string { return d.root }

// open opens the directory in its root with O_NOFOLLOW and checks it; a Dir
// from At opens and checks its root first.
func (d *Dir) open() error {
	if d.fd >= 0 {
		return nil
	}
	if d.rootfd < 0 {
		r, err := OpenRoot(d.root)
		if err != nil {
			return err
		}
		d.rootfd = r.fd
	}
	fd, err := openChecked(d.rootfd, d.name, d.Path())
	if err != nil {
		return err
	}
	d.fd = fd
	return nil
}

// openChecked opens the directory name in the directory open at dirfd,
// never through a link, and checks it (check); path names it in errors. A
// missing one gives an error that is os.ErrNotExist.
func openChecked(dirfd int, name, path string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("state directory %s: not a directory", path)
		}
		return -1, &os.PathError{Op: "open state directory", Path: path, Err: err}
	}
	if err := check(fd, "state directory", path); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Close closes the directory's descriptors.
func (d *Dir) Close() error {
	var err error
	if d.fd >= 0 {
		err = unix.Close(d.fd)
		d.fd = -1
	}
	if d.ownRoot && d.rootfd >= 0 {
		unix.Close(d.rootfd)
		d.rootfd = -1
	}
	return err
}

// SocketPath returns a name of the shim socket that resolves through the
// open, checked directory: /proc/self/fd/N/shim.sock. It is valid while d
// is open.
func (d *Dir) SocketPath() (string, error) {
	if err := d.open(); err != nil {
		return "", err
	}
	return "/proc/self/fd/" + strconv.Itoa(d.fd) + "/" + SocketName, nil
}

// NewTemp makes a container directory under a hidden, unpredictable name
// in r, mode 0700, to be filled and then published under its ID (Publish),
// so that no reader ever sees a container directory half made. The name
// says who makes it, .new-PID-START-RANDOM with START the maker's start
// time (ownerStart, /proc/PID/stat): one that a maker killed before it
// published left behind can be told from one still being made
// (SweepAbandoned). The Dir shares r's descriptor.
func (r *Root) NewTemp(ownerStart uint64) (*Dir, error) {
	name, err := tempName(fmt.Sprintf("%s%d-%d-", tempPrefix, os.Getpid(), ownerStart))
	if err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(r.fd, name, 0o700); err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(r.path, name), Err: err}
	}
	d := &Dir{root: r.path, name: name, rootfd: r.fd, fd: -1}
	// The mode exactly, whatever the umask took from it.
	err = unix.Fchmodat(r.fd, name, 0o700, 0)
	if err == nil {
		err = d.open()
	}
	if err != nil {
		unix.Unlinkat(r.fd, name, unix.AT_REMOVEDIR)
		return nil, err
	}
	return d, nil
}

// Publish renames a directory from NewTemp to id, unless id exists: then
// its error wraps protocol.ErrExist.
func (d *Dir) Publish(id string) error {
	err := unix.Renameat2(d.rootfd, d.name, d.rootfd, id, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		d.name = id
		return nil
	case errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY):
		return fmt.Errorf("container %q %w", id, protocol.ErrExist)
	}
	return fmt.Errorf("state directory: rename %s to %s: %w", d.Path(), id, err)
}

// Remove removes the directory: the four files the shim keeps there and
// the directory itself in five system calls or, if anything else is in it,
// whatever it holds, never following a link. It closes d.
func (d *Dir) Remove() error {
	defer d.Close()
	if err := d.open(); err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	// The state file first: a directory without one is a removal cut
	// short (its shim killed here), which the CLI's delete finishes.
	unix.Unlinkat(d.fd, StateFile, 0)
	unix.Unlinkat(d.fd, SocketName, 0)
	unix.Unlinkat(d.fd, ConfigFile, 0)
	unix.Unlinkat(d.fd, JournalFile, 0)
	err := unix.Unlinkat(d.rootfd, d.name, unix.AT_REMOVEDIR)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err := removeContents(d.fd, d.Path()); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.rootfd, d.name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: d.Path(), Err: err}
	}
	return nil
}

// removeContents empties the directory open at fd. Entries are unlinked,
// not followed; a subdirectory is opened with O_NOFOLLOW and emptied first.
func removeContents(fd int, path string) error {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(dup), path)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		err := unix.Unlinkat(fd, n, 0)
		if errors.Is(err, unix.EISDIR) {
			err = removeSubdir(fd, n, filepath.Join(path, n))
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "remove", Path: filepath.Join(path, n), Err: err}
		}
	}
	return nil
}

func removeSubdir(parent int, name, path string) error {
	sub, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = removeContents(sub, path)
	unix.Close(sub)
	if err != nil {
		return err
	}
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}

// Lock takes an exclusive lock on the directory (flock), blocking until it
// is free: a shim that comes back for a dead one holds it while it takes
// the container over, so that two never do. unlock releases it.
func (d *Dir) Lock() (unlock func(), err error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(d.fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "lock", Path: d.Path(), Err: err}
	}
	return func() { unix.Flock(d.fd, unix.LOCK_UN) }, nil
}

// RemoveSocket removes the socket file of a shim that is gone, so that a
// new one can listen on its path.
func (d *Dir) RemoveSocket() error {
	if err := d.open(); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, SocketName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: filepath.Join(d.Path(), SocketName), Err: err}
	}
	return nil
}
