package pidfd

import (
	"os"

	"golang.org/x/sys/unix"
)

// A Namespace names one of a process's namespaces for ioctl(pidfd,
// PIDFD_GET_*_NAMESPACE) (include/uapi/linux/pidfd.h, Linux 6.11);
// x/sys/unix does not have these yet. Its value is the ioctl's number.
type Namespace uintptr

// _IO(0xFF, N) for the namespaces crier asks for.
const (
	IPCNamespace   Namespace = 0xFF<<8 | 2
	MountNamespace Namespace = 0xFF<<8 | 3
	NetNamespace   Namespace = 0xFF<<8 | 4
)

// OpenNamespace returns a new descriptor (close-on-exec) of namespace ns
// of the process fd refers to, while that process lives. A kernel before
// 6.11 answers ENOTTY.
func OpenNamespace(fd int, ns Namespace) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(ns), 0)
	if e != 0 {
		return -1, os.NewSyscallError("ioctl PIDFD_GET_NAMESPACE", e)
	}
	return int(r), nil
}
