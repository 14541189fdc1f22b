package statedir

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// JournalFile is the name of the container's event journal: the events the
// shim publishes, one JSON line each, appended before each is published,
// so that a shim that comes back after its predecessor died can go on
// from them (docs/protocol.md). The shim keeps it small by rewriting it.
const JournalFile = "events.jsonl"

// maxJournalSize bounds what ReadJournal reads; the shim rewrites the
// journal long before.
const maxJournalSize = 1 << 20

// OpenJournal opens the journal for appending, creating it if need be,
// never through a link. The caller owns the descriptor.
func (d *Dir) OpenJournal() (int, error) {
	if err := d.open(); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(d.fd, JournalFile, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: filepath.Join(d.Path(), JournalFile), Err: err}
	}
	return fd, nil
}

// WriteJournal replaces the journal with b, atomically (WriteFileAt).
func (d *Dir) WriteJournal(b []byte) error {
	if err := d.open(); err != nil {
		return err
	}
	return WriteFileAt(d.fd, d.Path(), JournalFile, b, 0o600)
}

// ReadJournal returns the journal's content. A missing journal gives an
// error that is os.ErrNotExist.
func (d *Dir) ReadJournal() ([]byte, error) {
	return d.readFile(JournalFile, maxJournalSize)
}
