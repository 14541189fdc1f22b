package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/flatjson"
)

// Seccomp user notification (SCMP_ACT_NOTIFY), as runc does it.
//
// The process loads its filter with SECCOMP_FILTER_FLAG_NEW_LISTENER on
// the thread that then execs (seccomp.Program.Install), and from that
// moment a notified call waits for an agent to answer it. So the process
// tells its parent, with write (which a profile may not notify), which of
// its descriptors is the listener and waits; the parent, outside the
// filter, takes the listener with pidfd_getfd, sends it to the agent at
// linux.seccomp.listenerPath with the process's state
// (specs.ContainerProcessState: one message, the fd as SCM_RIGHTS, as
// runc's agents expect), closes its copy and lets the process go on; the
// process closes its own. The agent then holds the only listener: when it
// exits, the kernel fails the notified calls with ENOSYS.
//
// The init does this at start, once its startContainer hooks have run,
// over the sync socket (sync.go); a `crier exec` process does it in its
// stage two, over the report socket (exec_linux.go), to whoever forked it
// (the shim, or crier exec itself under a supervisor).
//
// The path is the bundle's and is dialled as it is, as root, in the
// parent's mount and network namespaces ("@name" is an abstract socket),
// as runc does: whoever writes the config also chooses the hooks, which
// run as root on the host. The connect and the send do not block (a
// listener whose backlog is full, or that does not read, fails the start
// or the exec); what the agent then does with the calls is the agent's.

// seccompStatus is the status the agent is told: the init hands its
// listener over during start, an exec'd process in a running container.
const (
	seccompStatusInit = specs.StateCreated
	seccompStatusExec = specs.StateRunning
)

// handListener takes the listener, descriptor fd of process pid (pidFD
// refers to it, or is -1), and sends it to the config's agent. It leaves
// the process running: on error the caller kills it, since it waits.
func (c *Container) handListener(pid, pidFD, fd int, status specs.ContainerState) error {
	var sc *specs.LinuxSeccomp
	if c.Spec != nil && c.Spec.Linux != nil {
		sc = c.Spec.Linux.Seccomp
	}
	if sc == nil || sc.ListenerPath == "" {
		return errors.New("seccomp: the process has a notify listener and the config no listenerPath")
	}
	if pidFD < 0 {
		pfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return fmt.Errorf("seccomp: take the listener: %w", os.NewSyscallError("pidfd_open", err))
		}
		defer unix.Close(pfd)
		pidFD = pfd
	}
	listener, err := unix.PidfdGetfd(pidFD, fd, 0)
	if err != nil {
		return fmt.Errorf("seccomp: take the listener (fd %d of pid %d): %w", fd, pid, os.NewSyscallError("pidfd_getfd", err))
	}
	defer unix.Close(listener)
	msg := c.processState(pid, sc.ListenerMetadata, status)
	return sendToAgent(sc.ListenerPath, msg, listener)
}

// processState is specs.ContainerProcessState as JSON, written without
// encoding/json, which the serving shim must not carry.
func (c *Container) processState(pid int, metadata string, status specs.ContainerState) []byte {
	o := flatjson.Begin(nil)
	o.String("ociVersion", specs.Version)
	o.Key("fds")
	o.Append(func(b []byte) []byte { return flatjson.AppendStrings(b, []string{specs.SeccompFdName}) })
	o.Int("pid", int64(pid))
	if metadata != "" {
		o.String("metadata", metadata)
	}
	st := flatjson.Begin(nil)
	st.String("ociVersion", specs.Version)
	st.String("id", c.ID)
	st.String("status", string(status))
	if c.Pid != 0 {
		st.Int("pid", int64(c.Pid))
	}
	st.String("bundle", c.Bundle)
	if c.Spec != nil && len(c.Spec.Annotations) > 0 {
		st.Key("annotations")
		st.Append(func(b []byte) []byte { return flatjson.AppendStringMap(b, c.Spec.Annotations) })
	}
	state := st.End()
	o.Key("state")
	o.Append(func(b []byte) []byte { return append(b, state...) })
	return o.End()
}

// sendToAgent connects to the agent's socket at path and sends msg with
// the listener, in one message. Neither step waits: a full backlog
// fails the connect with EAGAIN, a short send is an error.
func sendToAgent(path string, msg []byte, listener int) error {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("seccomp: %w", os.NewSyscallError("socket", err))
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("seccomp: failed to connect with seccomp agent at %s: %w", path, err)
	}
	n, err := unix.SendmsgN(s, msg, unix.UnixRights(listener), nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if err != nil {
		return fmt.Errorf("seccomp: send the listener to the seccomp agent at %s: %w", path, err)
	}
	if n < len(msg) {
		return fmt.Errorf("seccomp: send the listener to the seccomp agent at %s: sent %d of %d bytes", path, n, len(msg))
	}
	return nil
}

// writeListenerFD writes "PREFIX<listener>SUFFIX\n" to fd, the process's
// end of the socket its parent reads. Until the agent has the listener,
// only write is safe (a notified call would wait for good): the line is
// built in a buffer on the stack and written with a raw write(2).
func writeListenerFD(fd int, prefix, suffix string, listener int) error {
	var buf [128]byte
	b := append(buf[:0], prefix...)
	b = strconv.AppendInt(b, int64(listener), 10)
	b = append(b, suffix...)
	b = append(b, '\n')
	for len(b) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return os.NewSyscallError("write", e)
		}
		b = b[n:]
	}
	return nil
}
