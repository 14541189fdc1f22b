package pidfd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exited reports, without blocking, whether the process fd refers to has
// exited.
func Exited(fd int) (bool, error) {
	return poll(fd, 0)
}

// Wait blocks until the process fd refers to has exited, or for at most
// timeout when it is not negative: then it returns os.ErrDeadlineExceeded.
// It does not reap the process (see Reap).
func Wait(fd int, timeout time.Duration) error {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			// Rounded up: a poll of 0 ms before the deadline would spin.
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		exited, err := poll(fd, ms)
		if exited || err != nil {
			return err
		}
	}
}

// poll waits up to ms milliseconds (-1: no limit) for fd to poll readable,
// going on after EINTR.
func poll(fd, ms int) (bool, error) {
	if fd < 0 {
		// poll(2) would skip it, and wait for nothing.
		return false, os.NewSyscallError("poll", unix.EBADF)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, ms)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return false, os.NewSyscallError("poll", err)
		case n > 0 && fds[0].Revents&unix.POLLNVAL != 0:
			return false, os.NewSyscallError("poll", unix.EBADF)
		}
		return n > 0, nil
	}
}

// Reap waits for the process fd refers to, which must be the caller's
// child, to exit, and reaps it.
func Reap(fd int) error {
	for {
		err := unix.Waitid(unix.P_PIDFD, fd, nil, unix.WEXITED, nil)
		if err != unix.EINTR {
			return os.NewSyscallError("waitid", err)
		}
	}
}

// Notify calls done, on a goroutine of its own, once the process fd refers
// to has exited: with nil, or with the error that ended the wait (the
// process may then still be running). The wait parks on the runtime's
// netpoller and so holds no thread. fd stays the caller's: Notify waits on
// a duplicate, which it closes.
func Notify(fd int, done func(error)) error {
	f, raw, err := watchable(fd)
	if err != nil {
		return err
	}
	go func() {
		defer f.Close()
		var perr error
		// A pidfd is never read: Read parks until it polls readable,
		// which it does once the process has exited.
		err := raw.Read(func(fd uintptr) bool {
			var exited bool
			exited, perr = Exited(int(fd))
			return exited || perr != nil
		})
		if perr != nil {
			err = perr
		}
		done(err)
	}()
	return nil
}

// watchable returns a non-blocking duplicate of fd on the netpoller.
func watchable(fd int) (*os.File, syscall.RawConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	f := os.NewFile(uintptr(dup), "pidfd")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, raw, nil
}

// Pid returns the pid of the process fd refers to, in the caller's pid
// namespace, as /proc/self/fdinfo shows it (Linux 5.3 and later). It is
// an error once the process has been reaped (the kernel shows -1), or
// when fd is no pidfd.
func Pid(fd int) (int, error) {
	path := "/proc/self/fdinfo/" + strconv.Itoa(fd)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%s: the process has no pid (%q): it is gone", path, strings.TrimSpace(v))
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%s: not a pidfd", path)
}
