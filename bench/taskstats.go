package main

import (
	"encoding/binary"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Page faults of processes the benchmark does not wait for (a shim, a
// container's init) are in no rusage it can read: getrusage of a CLI
// counts only the children that CLI waited for, and /proc/PID/stat is gone
// by the time the connector's exit event is read. The kernel's taskstats
// (genetlink family TASKSTATS) sends, to a listener registered for a set
// of CPUs, the full accounting of every task that exits on them, minor
// faults included: per thread, so the faults of a process are the sum
// over its threads.

// faultWatch collects the exit accounting of every task on the machine;
// the caller keeps those of its tree.
type faultWatch struct {
	fd, family int
	cpus       string
	stop       atomic.Bool
	done       chan struct{}

	mu    sync.Mutex
	tasks map[[2]int]taskFaults // by thread id and process id (0 when unknown)
}

type taskFaults struct {
	tgid          int // 0 when the kernel does not say (before Linux 5.19)
	minflt, major uint64
	comm          string // the task's name when it exited
}

// watchFaults registers for the exit accounting of all CPUs.
func watchFaults() (*faultWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("genetlink socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	tv := unix.NsecToTimeval(100e6)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind a genetlink socket: %w", err)
	}
	fam, err := genlFamily(fd, unix.TASKSTATS_GENL_NAME)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &faultWatch{fd: fd, family: fam, cpus: fmt.Sprintf("0-%d", goruntime.NumCPU()-1), done: make(chan struct{}), tasks: map[[2]int]taskFaults{}}
	if err := w.cpumask(unix.TASKSTATS_CMD_ATTR_REGISTER_CPUMASK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("taskstats: register CPUs %s: %w", w.cpus, err)
	}
	go w.read()
	return w, nil
}

// genlMsg builds a generic netlink request: header, genl header, and one
// attribute.
func genlMsg(family, cmd int, attr uint16, val []byte) []byte {
	alen := unix.SizeofNlAttr + len(val)
	buf := make([]byte, unix.NLMSG_HDRLEN+sizeofGenlmsghdr+nlaAlign(alen))
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], uint32(len(buf)))
	ne.PutUint16(buf[4:], uint16(family))
	ne.PutUint16(buf[6:], unix.NLM_F_REQUEST)
	buf[unix.NLMSG_HDRLEN] = byte(cmd)
	buf[unix.NLMSG_HDRLEN+1] = 1 // version
	a := buf[unix.NLMSG_HDRLEN+sizeofGenlmsghdr:]
	ne.PutUint16(a[0:], uint16(alen))
	ne.PutUint16(a[2:], attr)
	copy(a[unix.SizeofNlAttr:], val)
	return buf
}

// sizeofGenlmsghdr is struct genlmsghdr: cmd, version, reserved u16.
const sizeofGenlmsghdr = 4

func nlaAlign(n int) int { return (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1) }

// attrs walks a run of netlink attributes.
func attrs(b []byte, fn func(typ uint16, val []byte)) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlAttr {
		l := int(ne.Uint16(b[0:]))
		if l < unix.SizeofNlAttr || l > len(b) {
			return
		}
		fn(ne.Uint16(b[2:])&^unix.NLA_F_NESTED, b[unix.SizeofNlAttr:l])
		b = b[min(nlaAlign(l), len(b)):]
	}
}

// genlFamily asks the generic netlink controller for a family's id.
func genlFamily(fd int, name string) (int, error) {
	req := genlMsg(unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY, unix.CTRL_ATTR_FAMILY_NAME, append([]byte(name), 0))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("genetlink: ask for family %s: %w", name, err)
	}
	buf := make([]byte, 1<<16)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("genetlink: family %s: %w", name, err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("genetlink: family %s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR {
			return 0, fmt.Errorf("genetlink: no family %s (CONFIG_TASKSTATS off?)", name)
		}
		id := 0
		attrs(m.Data[sizeofGenlmsghdr:], func(t uint16, v []byte) {
			if t == unix.CTRL_ATTR_FAMILY_ID && len(v) >= 2 {
				id = int(binary.NativeEndian.Uint16(v))
			}
		})
		if id != 0 {
			return id, nil
		}
	}
	return 0, fmt.Errorf("genetlink: no id for family %s", name)
}

func (w *faultWatch) cpumask(op uint16) error {
	return unix.Sendto(w.fd, genlMsg(w.family, unix.TASKSTATS_CMD_GET, op, append([]byte(w.cpus), 0)), 0,
		&unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// The fields read from struct taskstats, whose layout only ever grows at
// the end.
var (
	tsOffPid    = int(unsafe.Offsetof(unix.Taskstats{}.Ac_pid))
	tsOffComm   = int(unsafe.Offsetof(unix.Taskstats{}.Ac_comm))
	tsOffMinflt = int(unsafe.Offsetof(unix.Taskstats{}.Ac_minflt))
	tsOffMajflt = int(unsafe.Offsetof(unix.Taskstats{}.Ac_majflt))
	tsOffTgid   = int(unsafe.Offsetof(unix.Taskstats{}.Ac_tgid))
)

func (w *faultWatch) read() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN && w.stop.Load() {
				return
			}
			if err == unix.EAGAIN || err == unix.EINTR || err == unix.ENOBUFS {
				continue
			}
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if int(m.Header.Type) != w.family || len(m.Data) < sizeofGenlmsghdr {
				continue
			}
			attrs(m.Data[sizeofGenlmsghdr:], func(t uint16, v []byte) {
				if t == unix.TASKSTATS_TYPE_AGGR_PID {
					attrs(v, func(t uint16, v []byte) {
						if t == unix.TASKSTATS_TYPE_STATS {
							w.record(v)
						}
					})
				}
			})
		}
	}
}

func (w *faultWatch) record(st []byte) {
	if len(st) < tsOffMajflt+8 {
		return
	}
	ne := binary.NativeEndian
	f := taskFaults{minflt: ne.Uint64(st[tsOffMinflt:]), major: ne.Uint64(st[tsOffMajflt:]),
		comm: unix.ByteSliceToString(st[tsOffComm : tsOffComm+32])}
	if len(st) >= tsOffTgid+4 {
		f.tgid = int(ne.Uint32(st[tsOffTgid:]))
	}
	w.mu.Lock()
	w.tasks[[2]int{int(ne.Uint32(st[tsOffPid:])), f.tgid}] = f
	w.mu.Unlock()
}

// close deregisters and returns the accounting of the tasks that exited.
func (w *faultWatch) close() map[[2]int]taskFaults {
	w.stop.Store(true)
	<-w.done
	w.cpumask(unix.TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK)
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks
}
