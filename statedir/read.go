package statedir

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxStateSize bounds what ReadState reads: a state file is a few hundred
// bytes, plus the poststop hooks.
const maxStateSize = 1 << 20

// ReadState reads and decodes the state file, opened with O_NOFOLLOW. Only
// the CLI calls it: it decodes with encoding/json (see the package
// comment). A missing file gives an error that is os.ErrNotExist.
func (d *Dir) ReadState() (*State, error) {
	b, err := d.readFile(StateFile, maxStateSize)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(d.Path(), StateFile), err)
	}
	return &st, nil
}

// maxConfigSize bounds what ReadConfig reads, as container.LoadSpec does
// the bundle's.
const maxConfigSize = 16 << 20

// ReadConfig returns the config the container was created from (ConfigFile),
// opened with O_NOFOLLOW. A missing file gives an error that is
// os.ErrNotExist.
func (d *Dir) ReadConfig() ([]byte, error) {
	return d.readFile(ConfigFile, maxConfigSize)
}

// WriteConfig records the config the container is created from. The shim
// calls it once, while the directory is still its own under a temporary
// name.
func (d *Dir) WriteConfig(b []byte) error {
	if err := d.open(); err != nil {
		return err
	}
	return WriteFileAt(d.fd, d.Path(), ConfigFile, b, 0o600)
}

// readFile reads the regular file name in the directory, up to max bytes,
// never following a link and never blocking on a FIFO put in its place.
func (d *Dir) readFile(name string, max int64) ([]byte, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	return readAt(d.fd, name, filepath.Join(d.Path(), name), max)
}

// readAt reads the regular file name in the directory open at dirfd, up to
// max bytes, as Dir.readFile does; path names it in errors.
func readAt(dirfd int, name, path string, max int64) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ReadState opens the directory of container id under root and reads its
// state file.
func ReadState(root, id string) (*State, error) {
	d, err := Open(root, id)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadState()
}
