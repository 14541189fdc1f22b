package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// `crier event --all` has the per-ID waiter's race (await.go) for every
// container: one made and deleted while the stream is off the CPU is gone
// before the stream can subscribe to it. So the stream holds a ticket of
// its own, a directory ROOT/.sub/PID-START-RANDOM (AwaitAll), and the shim
// that deletes a container to which that holder is not subscribed puts the
// container's history there as a new file (DeliverAll). A holder that was
// subscribed got the same events from its subscription.

// allDir is the directory of the streams' ticket directories. Its name
// has no dash, so no ID's tickets (awaitPrefix) can take it.
const allDir = ".sub"

// An AllTicket is a stream's claim on the histories of the containers
// deleted in its root while it was not subscribed to them (see above).
type AllTicket struct {
	root  *Root
	subfd int // ROOT/.sub
	dirfd int // ROOT/.sub/NAME
	name  string
	f     *os.File // inotify on dirfd
	buf   []byte
}

// AwaitAll takes a ticket for the histories of the containers deleted
// under the state root at root, making the root (as CreateRoot) if it does
// not exist. The ticket names its holder: this process, which started at
// ownerStart. The tickets of dead holders (alive says, by pid and start
// time) are removed.
func AwaitAll(root string, ownerStart uint64, alive func(pid int, start uint64) bool) (*AllTicket, error) {
	r, err := CreateRoot(root)
	if err != nil {
		return nil, err
	}
	t := &AllTicket{root: r, subfd: -1, dirfd: -1, buf: make([]byte, 4096)}
	prefix := fmt.Sprintf("%d-%d-", os.Getpid(), ownerStart)
	err = retryGone(func() error { return t.take(prefix, alive) })
	if err == nil {
		err = t.watch()
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *AllTicket) take(prefix string, alive func(pid int, start uint64) bool) error {
	path := filepath.Join(t.root.path, allDir)
	subfd, err := makeChecked(t.root.fd, allDir, path)
	if err != nil {
		return err
	}
	sweepHolders(subfd, alive)
	name, err := tempName(prefix)
	if err == nil {
		if err = unix.Mkdirat(subfd, name, 0o700); err != nil {
			err = &os.PathError{Op: "mkdir", Path: filepath.Join(path, name), Err: err}
		}
	}
	if err != nil {
		unix.Close(subfd)
		unix.Unlinkat(t.root.fd, allDir, unix.AT_REMOVEDIR) // if ours and empty
		return err
	}
	t.subfd, t.name = subfd, name
	t.dirfd, err = openChecked(subfd, name, t.path())
	return err
}

func (t *AllTicket) path() string { return filepath.Join(t.root.path, allDir, t.name) }

func (t *AllTicket) watch() error {
	f, fd, err := newInotify()
	if err != nil {
		return err
	}
	t.f = f
	const mask = unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	return watchFD(fd, t.dirfd, mask, t.path())
}

// Next blocks until histories were delivered, and returns them, each once,
// in no particular order; or until ctx ends.
func (t *AllTicket) Next(ctx context.Context) ([][]byte, error) {
	t.f.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { t.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		names, err := readNames(t.dirfd)
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: t.path(), Err: err}
		}
		var got [][]byte
		for _, n := range names {
			if strings.HasPrefix(n, ".") {
				continue // still being written
			}
			b, err := readAt(t.dirfd, n, filepath.Join(t.path(), n), maxDelivery)
			unix.Unlinkat(t.dirfd, n, 0)
			if err != nil {
				return got, err
			}
			got = append(got, b)
		}
		if len(got) > 0 {
			return got, nil
		}
		if err := nextEvents(ctx, t.f, t.buf, t.path()); err != nil {
			return nil, err
		}
	}
}

// Close gives the ticket back: it removes its directory, with whatever was
// delivered and not taken, and .sub if no other ticket is left in it.
func (t *AllTicket) Close() error {
	if t.f != nil {
		t.f.Close()
	}
	var err error
	if t.dirfd >= 0 {
		unix.Close(t.dirfd)
	}
	if t.subfd >= 0 {
		// Made even if it could not be opened (take).
		if t.name != "" {
			err = removeHolder(t.subfd, t.name)
		}
		unix.Close(t.subfd)
		unix.Unlinkat(t.root.fd, allDir, unix.AT_REMOVEDIR)
	}
	t.root.Close()
	t.dirfd, t.subfd = -1, -1
	if err != nil {
		return &os.PathError{Op: "remove", Path: t.path(), Err: err}
	}
	return nil
}

// removeHolder removes the ticket directory name in the directory open at
// subfd, with its files. A delivery may land between the emptying and the
// rmdir: it empties it again.
func removeHolder(subfd int, name string) error {
	var err error
	for range 10 {
		if fd, oerr := unix.Openat(subfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); oerr == nil {
			names, _ := readNames(fd)
			for _, n := range names {
				unix.Unlinkat(fd, n, 0)
			}
			unix.Close(fd)
		}
		err = unix.Unlinkat(subfd, name, unix.AT_REMOVEDIR)
		if !errors.Is(err, unix.ENOTEMPTY) {
			break
		}
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// AwaitAllPath returns the directory of the streams' ticket directories
// under root (AwaitAll), for messages and tests.
func AwaitAllPath(root string) string { return filepath.Join(root, allDir) }

// AwaitedAll reports whether any stream may hold a ticket under the state
// root at root: one stat, for the shim to skip DeliverAll's work.
func AwaitedAll(root string) bool {
	var st unix.Stat_t
	return unix.Lstat(AwaitAllPath(root), &st) == nil
}

// DeliverAll puts history, as a new file, into the ticket directory of
// every stream under the state root at root whose holder is alive (alive
// says, by pid and start time) and not subscribed (subscribed says, by
// pid). Dead holders' directories are removed.
func DeliverAll(root string, history []byte, alive func(pid int, start uint64) bool, subscribed func(pid int) bool) error {
	r, subfd, err := openTickets(root, allDir)
	if err != nil || subfd < 0 {
		return err
	}
	defer r.Close()
	defer unix.Close(subfd)
	path := filepath.Join(root, allDir)
	names, err := readNames(subfd)
	if err != nil {
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
	var errs []error
	left := 0
	for _, n := range names {
		pid, start, ok := parseOwner(n)
		switch {
		case !ok:
			continue
		case !alive(pid, start):
			removeHolder(subfd, n)
			continue
		}
		left++
		if !subscribed(pid) {
			if err := deliverNew(subfd, filepath.Join(path, n), n, history); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if left == 0 {
		unix.Unlinkat(r.fd, allDir, unix.AT_REMOVEDIR)
	}
	return errors.Join(errs...)
}

// deliverNew writes b to a new file in the ticket directory name, under
// a hidden name first, so that its holder takes all of it or nothing.
func deliverNew(subfd int, path, name string, b []byte) error {
	dirfd, err := openChecked(subfd, name, path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // given back meanwhile
	}
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	tmp, err := tempName(".")
	if err != nil {
		return err
	}
	if err := writeNew(dirfd, tmp, b, 0o600); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "write", Path: filepath.Join(path, tmp), Err: err}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, tmp[1:]); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "deliver", Path: filepath.Join(path, tmp[1:]), Err: err}
	}
	return nil
}

// sweepStreams removes the ticket directories of streams whose holders
// are dead, and .sub once empty (SweepAbandoned).
func (r *Root) sweepStreams(alive func(pid int, start uint64) bool) {
	subfd, err := openChecked(r.fd, allDir, filepath.Join(r.path, allDir))
	if err != nil {
		return
	}
	defer unix.Close(subfd)
	sweepHolders(subfd, alive)
	unix.Unlinkat(r.fd, allDir, unix.AT_REMOVEDIR)
}

// sweepHolders removes the ticket directories of dead holders (alive
// says, by pid and start time) in the directory open at subfd.
func sweepHolders(subfd int, alive func(pid int, start uint64) bool) {
	names, _ := readNames(subfd)
	for _, n := range names {
		if pid, start, ok := parseOwner(n); ok && !alive(pid, start) {
			removeHolder(subfd, n)
		}
	}
}
