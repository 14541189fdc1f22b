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

// A container can come and go before a waiter that began before it was
// made gets to subscribe: `crier event --monitor ID &` followed at once by
// a short create, start and delete loses the race whenever the waiter is
// off the CPU for those few milliseconds, and would then wait for the ID
// forever. So a waiter for an ID that does not exist takes a ticket first,
// an empty file ROOT/.sub-ID/PID-START-RANDOM (Await), and the shim that
// deletes the container writes its history into every ticket it finds
// (Deliver). The waiter then has the events whether it subscribed in time
// or not.
//
// The ticket's name says who holds it, as a NewTemp name does: a ticket
// whose holder is dead is removed by whoever comes across it (Deliver,
// Await, SweepAbandoned) rather than written.

// awaitPrefix starts the name of the directory of an ID's tickets. It is
// short enough for the longest ID (container.MaxIDLength, 250) to make a
// name the kernel takes (NAME_MAX, 255).
const awaitPrefix = ".sub-"

// maxDelivery bounds what a ticket is read up to: a history is some 16 kB.
const maxDelivery = 1 << 20

// A Ticket is a waiter's claim on the events of a container that does not
// exist yet (see above). Close gives it back.
type Ticket struct {
	root  *Root
	id    string
	dirfd int
	name  string
}

// Await takes a ticket for the events of container id under the state root
// at root, making the root (as CreateRoot) if it does not exist. The ticket
// names its holder: this process, which started at ownerStart. Tickets of
// dead holders (alive says, by pid and start time) found on the way are
// removed.
func Await(root, id string, ownerStart uint64, alive func(pid int, start uint64) bool) (*Ticket, error) {
	r, err := CreateRoot(root)
	if err != nil {
		return nil, err
	}
	t := &Ticket{root: r, id: id, dirfd: -1}
	prefix := fmt.Sprintf("%d-%d-", os.Getpid(), ownerStart)
	if err = retryGone(func() error { return t.take(prefix, alive) }); err != nil {
		r.Close()
		return nil, err
	}
	return t, nil
}

func (t *Ticket) take(prefix string, alive func(pid int, start uint64) bool) error {
	dir := awaitPrefix + t.id
	path := filepath.Join(t.root.path, dir)
	dirfd, err := makeChecked(t.root.fd, dir, path)
	if err != nil {
		return err
	}
	sweepTickets(dirfd, alive)
	name, err := tempName(prefix)
	if err == nil {
		if err = writeNew(dirfd, name, nil, 0o600); err != nil {
			err = &os.PathError{Op: "create", Path: filepath.Join(path, name), Err: err}
		}
	}
	if err != nil {
		unix.Close(dirfd)
		unix.Unlinkat(t.root.fd, dir, unix.AT_REMOVEDIR) // if ours and empty
		return err
	}
	t.dirfd, t.name = dirfd, name
	return nil
}

// Close gives the ticket back: it removes it, and its directory if no
// other ticket is left in it.
func (t *Ticket) Close() error {
	if t.dirfd < 0 {
		return nil
	}
	err := unix.Unlinkat(t.dirfd, t.name, 0)
	unix.Unlinkat(t.root.fd, awaitPrefix+t.id, unix.AT_REMOVEDIR)
	unix.Close(t.dirfd)
	t.root.Close()
	t.dirfd = -1
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: t.path(), Err: err}
	}
	return nil
}

func (t *Ticket) path() string {
	return filepath.Join(t.root.path, awaitPrefix+t.id, t.name)
}

// Delivered returns the history a deleted container's shim wrote into the
// ticket, or false while there is none.
func (t *Ticket) Delivered() ([]byte, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(t.dirfd, t.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, false, &os.PathError{Op: "stat", Path: t.path(), Err: err}
	}
	if st.Size == 0 {
		return nil, false, nil
	}
	b, err := readAt(t.dirfd, t.name, t.path(), maxDelivery)
	return b, err == nil, err
}

// Wait blocks until the container's directory exists (it returns nil,
// nil: subscribe to it), or until a history was delivered into the ticket
// (it returns the history), or until ctx ends. It does not poll: it
// watches the root and the ticket's directory with inotify.
func (t *Ticket) Wait(ctx context.Context) ([]byte, error) {
	f, fd, err := newInotify()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const gone = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	watches := []struct {
		fd   int
		path string
		mask uint32
	}{
		{t.root.fd, t.root.path, unix.IN_CREATE | unix.IN_MOVED_TO | gone},
		// A delivery swaps a full file in for the empty ticket.
		{t.dirfd, filepath.Dir(t.path()), unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_CLOSE_WRITE | gone},
	}
	for _, w := range watches {
		if err := watchFD(fd, w.fd, w.mask, w.path); err != nil {
			return nil, err
		}
	}
	// Anything may have happened before the watches were in place, and
	// events are only hints: look again after each read.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		if got, ok, err := t.Delivered(); ok || err != nil {
			return got, err
		}
		if t.root.Exists(t.id) {
			return nil, nil
		}
		if err := nextEvents(ctx, f, buf, t.root.path); err != nil {
			return nil, err
		}
	}
}

// nextEvents reads the next events of the inotify instance f into buf, for
// their wake-up alone. It fails with ctx's error once ctx ends (its
// AfterFunc must have set f's deadline), and with ErrRootGone, wrapped
// with path, if a watched directory went away.
func nextEvents(ctx context.Context, f *os.File, buf []byte, path string) error {
	n, err := f.Read(buf)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("inotify %s: %w", path, err)
	}
	gone := false
	eachEvent(buf[:n], func(mask uint32, _ string) {
		gone = gone || mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_UNMOUNT) != 0
	})
	if gone {
		return fmt.Errorf("%s: %w", path, ErrRootGone)
	}
	return nil
}

// AwaitPath returns the directory of the tickets for container id under
// root (Await), for messages and tests.
func AwaitPath(root, id string) string { return filepath.Join(root, awaitPrefix+id) }

// Awaited reports whether anyone may hold a ticket for container id under
// the state root at root: one stat, for the shim to skip Deliver's work.
func Awaited(root, id string) bool {
	var st unix.Stat_t
	return unix.Lstat(AwaitPath(root, id), &st) == nil
}

// Deliver writes history into every ticket of a waiter for container id
// under the state root at root, and removes the tickets whose holders are
// dead (alive says, by pid and start time). A ticket given back meanwhile
// is not made again.
func Deliver(root, id string, history []byte, alive func(pid int, start uint64) bool) error {
	dir := awaitPrefix + id
	r, dirfd, err := openTickets(root, dir)
	if err != nil || dirfd < 0 {
		return err
	}
	defer r.Close()
	defer unix.Close(dirfd)
	path := filepath.Join(root, dir)
	names := sweepTickets(dirfd, alive)
	var errs []error
	for _, n := range names {
		if err := deliverOne(dirfd, path, n, history); err != nil {
			errs = append(errs, err)
		}
	}
	if len(names) == 0 {
		unix.Unlinkat(r.fd, dir, unix.AT_REMOVEDIR)
	}
	return errors.Join(errs...)
}

// retryGone runs take again while it fails with ENOENT, a bounded number
// of times: another holder's Close may remove a ticket directory between
// our mkdir and our use of it.
func retryGone(take func() error) (err error) {
	for range 100 {
		if err = take(); !errors.Is(err, unix.ENOENT) {
			break
		}
	}
	return err
}

// makeChecked makes the directory name, mode 0700, in the directory open
// at dirfd unless it exists, and opens it as openChecked does.
func makeChecked(dirfd int, name, path string) (int, error) {
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, &os.PathError{Op: "mkdir", Path: path, Err: err}
	}
	return openChecked(dirfd, name, path)
}

// openTickets opens the state root at root and, checked, its ticket
// directory dir. A missing directory gives fd -1 and no error.
func openTickets(root, dir string) (r *Root, fd int, err error) {
	if r, err = OpenRoot(root); err != nil {
		return nil, -1, err
	}
	fd, err = openChecked(r.fd, dir, filepath.Join(root, dir))
	if err != nil {
		r.Close()
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return nil, -1, err
	}
	return r, fd, nil
}

// deliverOne puts a file holding b in the place of the ticket name, by
// swapping the two, so that its holder reads all of b or nothing, and a
// ticket its holder removed meanwhile is not made again.
func deliverOne(dirfd int, path, name string, b []byte) error {
	tmp, err := tempName("." + name + ".")
	if err != nil {
		return err
	}
	if err := writeNew(dirfd, tmp, b, 0o600); err != nil {
		return &os.PathError{Op: "write", Path: filepath.Join(path, tmp), Err: err}
	}
	err = unix.Renameat2(dirfd, tmp, dirfd, name, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) {
		// A filesystem that cannot swap: a rename, which would make
		// a ticket removed in between again; its holder is gone then,
		// so the next Await or SweepAbandoned takes it away.
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	unix.Unlinkat(dirfd, tmp, 0)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "deliver", Path: filepath.Join(path, name), Err: err}
	}
	return nil
}

// sweepTickets removes the tickets in the directory open at dirfd whose
// holders are dead, and returns the others' names.
func sweepTickets(dirfd int, alive func(pid int, start uint64) bool) []string {
	names, err := readNames(dirfd)
	if err != nil {
		return nil
	}
	live := names[:0]
	for _, n := range names {
		pid, start, ok := ticketOwner(n)
		switch {
		case !ok:
		case alive(pid, start):
			live = append(live, n)
		default:
			unix.Unlinkat(dirfd, n, 0)
		}
	}
	return live
}

// sweepAwaiting removes the dead holders' tickets of every ID in r, and
// the ticket directories that are left empty (SweepAbandoned).
func (r *Root) sweepAwaiting(names []string, alive func(pid int, start uint64) bool) {
	for _, n := range names {
		if !strings.HasPrefix(n, awaitPrefix) {
			continue
		}
		dirfd, err := openChecked(r.fd, n, filepath.Join(r.path, n))
		if err != nil {
			continue
		}
		if len(sweepTickets(dirfd, alive)) == 0 {
			unix.Unlinkat(r.fd, n, unix.AT_REMOVEDIR)
		}
		unix.Close(dirfd)
	}
}

// ticketOwner parses the holder out of a ticket's name, PID-START-RANDOM;
// a delivery's temporary, which starts with a dot, is no ticket.
func ticketOwner(name string) (pid int, start uint64, ok bool) {
	if strings.HasPrefix(name, ".") {
		return 0, 0, false
	}
	return parseOwner(name)
}
