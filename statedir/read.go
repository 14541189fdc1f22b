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
	if err := d.open(); err != nil {
		return nil, err
	}
	path := filepath.Join(d.Path(), StateFile)
	// O_NONBLOCK: a FIFO in its place must not hang the reader.
	fd, err := unix.Openat(d.fd, StateFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
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
