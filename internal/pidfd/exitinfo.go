package pidfd

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading the exit of a process one is not the parent of.
//
// Since Linux 6.15, ioctl(pidfd, PIDFD_GET_INFO) with PIDFD_INFO_EXIT in
// the mask returns the process's wait status once its parent has reaped
// it, for as long as one holds the pidfd. x/sys/unix does not have these
// yet; they are from include/uapi/linux/pidfd.h.

const (
	// infoExit is PIDFD_INFO_EXIT.
	infoExit = 1 << 3
	// getInfo is PIDFD_GET_INFO, _IOWR(0xFF, 11, struct pidfd_info), for
	// the struct's first version (PIDFD_INFO_SIZE_VER0, 64 bytes): the
	// kernel reads the size from the request and fills what fits.
	getInfo = 3<<30 | uintptr(unsafe.Sizeof(info{}))<<16 | 0xFF<<8 | 11
)

// info is struct pidfd_info up to exit_code (PIDFD_INFO_SIZE_VER0).
type info struct {
	mask     uint64
	cgroupID uint64
	pid      uint32
	tgid     uint32
	ppid     uint32
	ruid     uint32
	rgid     uint32
	euid     uint32
	egid     uint32
	suid     uint32
	sgid     uint32
	fsuid    uint32
	fsgid    uint32
	exitCode int32 // a wait status, valid when mask has infoExit
}

// ExitStatus returns the wait status of the process fd refers to, once it
// has exited and its parent has reaped it. known is false while the
// kernel has no exit to give: the process runs, is not reaped yet, or the
// kernel is older than 6.15 (err is then ENOTTY or EINVAL, from before
// PIDFD_GET_INFO, 6.13).
//
// A reap during the call is no error. The kernel looks for the exit
// first and for the process after: when the parent reaps in between, it
// finds the process half released and answers ESRCH. The release records
// the exit before it unhashes the process, so once ESRCH has come the
// exit is there to read (measured here: about one run in six of a
// reader racing the reap met ESRCH, and its next call had the exit every
// time). ESRCH again is the answer of a kernel that keeps no exit (6.13,
// 6.14), for a reaped process.
func ExitStatus(fd int) (ws unix.WaitStatus, known bool, err error) {
	var e unix.Errno
	for range maxHalfReleased + 1 {
		in := info{mask: infoExit}
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), getInfo, uintptr(unsafe.Pointer(&in)))
		if e == 0 {
			ws, known = decodeExit(&in)
			return ws, known, nil
		}
		if e != unix.ESRCH {
			break
		}
	}
	return 0, false, os.NewSyscallError("ioctl PIDFD_GET_INFO", e)
}

// maxHalfReleased is how many times ExitStatus asks again after ESRCH:
// once was always enough when measured; a few more cost nothing.
const maxHalfReleased = 3

// decodeExit reads the exit from what PIDFD_GET_INFO returned.
func decodeExit(in *info) (unix.WaitStatus, bool) {
	if in.mask&infoExit == 0 {
		return 0, false
	}
	return unix.WaitStatus(uint32(in.exitCode)), true
}

// Reaped reports, without blocking, whether the process fd refers to has
// been reaped by its parent: its pidfd then polls POLLHUP (Linux 6.9 and
// later; never, before).
func Reaped(fd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return false, os.NewSyscallError("poll", err)
		case n > 0 && fds[0].Revents&unix.POLLNVAL != 0:
			return false, os.NewSyscallError("poll", unix.EBADF)
		}
		return n > 0 && fds[0].Revents&unix.POLLHUP != 0, nil
	}
}

// NotifyReap is Notify for a process the caller is not the parent of: it
// calls event when the process exits, and again when its parent reaps it
// (the kernel wakes a pidfd's pollers at both, 6.9 and later); the watch
// ends after the reap, or with an error (event(err), the last call).
// On an older kernel no reap is heard, and the watch waits until the shim
// exits; the caller reads the exit when it is told of it.
func NotifyReap(fd int, event func(error)) error {
	f, raw, err := watchable(fd)
	if err != nil {
		return err
	}
	go func() {
		defer f.Close()
		var perr error
		told := false
		err := raw.Read(func(fd uintptr) bool {
			var exited, reaped bool
			if exited, perr = Exited(int(fd)); perr != nil || !exited {
				return perr != nil
			}
			if reaped, perr = Reaped(int(fd)); perr != nil {
				return true
			}
			if reaped || !told {
				told = true
				event(nil)
			}
			return reaped
		})
		if perr != nil {
			err = perr
		}
		if err != nil {
			event(err)
		}
	}()
	return nil
}
