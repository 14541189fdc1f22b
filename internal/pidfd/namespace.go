package pidfd

import (
	"os"

	"golang.org/x/sys/unix"
)

// getMntNamespace is PIDFD_GET_MNT_NAMESPACE, _IO(0xFF, 3), from
// include/uapi/linux/pidfd.h (Linux 6.11); x/sys/unix does not have it.
const getMntNamespace = 0xFF<<8 | 3

// MountNamespace returns a new descriptor (close-on-exec) of the mount
// namespace of the process fd refers to, while that process lives. A
// kernel before 6.11 answers ENOTTY.
func MountNamespace(fd int) (int, error) {
	ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), getMntNamespace, 0)
	if e != 0 {
		return -1, os.NewSyscallError("ioctl PIDFD_GET_MNT_NAMESPACE", e)
	}
	return int(ns), nil
}
