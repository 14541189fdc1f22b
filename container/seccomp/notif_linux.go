package seccomp

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Notif is the kernel's struct seccomp_notif: one call a filter's
// SCMP_ACT_NOTIFY rule stopped, as a seccomp agent receives it from the
// listener (x/sys has the ioctls, not the structs).
type Notif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

// NotifResp is the kernel's struct seccomp_notif_resp: the agent's answer.
// Val and Error are the call's result (Error a negative errno), or Flags
// is unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE to let the call go on.
type NotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// Receive waits for the next notified call on listener. ENOENT means its
// caller died meanwhile; EINTR, that a signal came first.
func Receive(listener int) (Notif, error) {
	var n Notif
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
		return n, os.NewSyscallError("seccomp notif recv", e)
	}
	return n, nil
}

// Respond answers the call r.ID names.
func Respond(listener int, r NotifResp) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r))); e != 0 {
		return os.NewSyscallError("seccomp notif send", e)
	}
	return nil
}
