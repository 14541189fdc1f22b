package rawfile

import (
	"io"

	"golang.org/x/sys/unix"
)

// Read returns the whole content of the file at p. Its error is the
// system call's (a unix.Errno), for the caller to wrap with what it was
// reading.
func Read(p string) ([]byte, error) {
	fd, err := open(p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		var n int
		err := retry(func() (err error) {
			n, err = unix.Read(fd, buf[len(buf):cap(buf)])
			return err
		})
		switch {
		case err != nil:
			return nil, err
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// Write writes b into the existing file at p, truncated, in one write:
// the kernel parses each write to a control file on its own. A short
// write is io.ErrShortWrite; other errors are the system call's.
func Write(p string, b []byte) error {
	fd, err := open(p, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return retry(func() error {
		n, err := unix.Write(fd, b)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		return err
	})
}

func open(p string, flags int) (fd int, err error) {
	err = retry(func() error {
		fd, err = unix.Open(p, flags|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// retry runs f again while it is interrupted by a signal.
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
