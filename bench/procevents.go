package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel's process events connector (linux/cn_proc.h, connector.h):
// every fork, exec and exit on the machine, each stamped with the kernel's
// CLOCK_MONOTONIC (ktime_get_ns), the clock mono() reads. x/sys/unix has
// NETLINK_CONNECTOR but not these.
const (
	cnIdxProc         = 1 // CN_IDX_PROC
	cnValProc         = 1 // CN_VAL_PROC
	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventExit = 0x80000000

	cnMsgLen  = 20 // struct cn_msg: id {idx, val}, seq, ack, len u16, flags u16
	procEvOff = 16 // struct proc_event: what, cpu, timestamp_ns, then the union
)

// A procEvent is one fork, exec or exit of a process in the watched tree.
type procEvent struct {
	kind       uint32 // procEventFork, procEventExec or procEventExit
	ts         int64  // CLOCK_MONOTONIC ns, from the kernel
	tgid       int    // the process (fork: the child)
	parent     int    // fork: the parent process
	label      string // exec: what was exec'd, read from /proc when the event arrived; "?" if it was gone
	thread     bool   // fork: a new thread, not a process
	threadTgid int    // fork of a thread: its process (for the fault accounting)
	tid        int    // fork: the new task's id (thread or process)
}

// procWatch listens to the connector and keeps the events of the
// descendants of one process (the benchmark), which it follows by their
// fork events: a shim that daemonizes and is reparented stays in the tree.
type procWatch struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu     sync.Mutex
	events []procEvent
	lost   bool // the socket overflowed (ENOBUFS): some events are missing
	err    error
}

// watchProcs starts listening for the descendants of root.
func watchProcs(root int) (*procWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	// The machine is shared: every process event on it comes through, and
	// a busy minute must not overflow the queue.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	// A receive timeout lets the reader notice stop.
	tv := unix.NsecToTimeval(100e6)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc, Pid: 0}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind the netlink connector to CN_IDX_PROC: %w", err)
	}
	if err := mcast(fd, procCnMcastListen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PROC_CN_MCAST_LISTEN: %w", err)
	}
	w := &procWatch{fd: fd, done: make(chan struct{})}
	go w.read(root)
	return w, nil
}

// mcast sends the connector a PROC_CN_MCAST_* operation.
func mcast(fd int, op uint32) error {
	buf := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], uint32(len(buf)))
	ne.PutUint16(buf[4:], unix.NLMSG_DONE)
	ne.PutUint32(buf[12:], uint32(os.Getpid()))
	cn := buf[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], op)
	return unix.Sendto(fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// read follows the tree and records its events until stop, then drains
// what is queued (the kernel queues an event when it happens, so whatever
// happened before stop is there).
func (w *procWatch) read(root int) {
	defer close(w.done)
	// A locked thread of its own: the labels are read from /proc as soon
	// as an exec event arrives, before a short-lived process is gone.
	goruntime.LockOSThread()
	tree := map[int]bool{root: true}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			if w.stop.Load() && err == unix.EAGAIN {
				return
			}
			continue
		}
		if err == unix.ENOBUFS {
			w.mu.Lock()
			w.lost = true
			w.mu.Unlock()
			continue
		}
		if err != nil {
			w.mu.Lock()
			w.err = fmt.Errorf("read the netlink connector: %w", err)
			w.mu.Unlock()
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if ev, ok := parseProcEvent(m.Data, tree); ok {
				w.mu.Lock()
				w.events = append(w.events, ev)
				w.mu.Unlock()
			}
		}
	}
}

// parseProcEvent decodes one connector message and keeps it if it concerns
// the tree, which it updates.
func parseProcEvent(d []byte, tree map[int]bool) (procEvent, bool) {
	ne := binary.NativeEndian
	if len(d) < cnMsgLen+procEvOff+16 || ne.Uint32(d[0:]) != cnIdxProc {
		return procEvent{}, false
	}
	p := d[cnMsgLen:]
	ev := procEvent{kind: ne.Uint32(p[0:]), ts: int64(ne.Uint64(p[8:]))}
	u := p[procEvOff:]
	switch ev.kind {
	case procEventFork:
		// u[0:4] is the parent thread; its process is what counts.
		ptgid, cpid, ctgid := int(ne.Uint32(u[4:])), int(ne.Uint32(u[8:])), int(ne.Uint32(u[12:]))
		if !tree[ptgid] {
			return ev, false
		}
		ev.parent, ev.tgid, ev.tid = ptgid, ctgid, cpid
		if cpid != ctgid {
			// A thread: not a process, but its faults count.
			ev.thread, ev.threadTgid = true, ctgid
			return ev, true
		}
		tree[ctgid] = true
	case procEventExec:
		ev.tgid = int(ne.Uint32(u[4:]))
		if !tree[ev.tgid] {
			return ev, false
		}
		ev.label = execLabel(ev.tgid)
	case procEventExit:
		pid, tgid := int(ne.Uint32(u[0:])), int(ne.Uint32(u[4:]))
		if !tree[tgid] || pid != tgid {
			return ev, false
		}
		ev.tgid = tgid
		// The pid may be reused by a process outside the tree.
		delete(tree, tgid)
	default:
		return ev, false
	}
	return ev, true
}

// execLabel names what a process just exec'd, from its command line: the
// program's base name, and its first argument when that is a mode word
// ("crier-shim init", "crier-shim --serve", "runc init"), not an option of
// a CLI call; then what /proc/PID/exe says when it tells more: "(sealed
// copy)" for a program exec'd from a memfd or from a read-only bind mount
// of itself that is already detached (its exe reads "/"): crun 1.8.1 and
// runc 1.1 re-exec themselves so, against CVE-2019-5736, with execveat,
// which `strace -e execve` does not show; "[crier-shim]" when a bare
// argv[0] is not the file's name. A process whose command line is already gone (a
// zombie) is named by its comm; "?" when even that was gone before the
// read (a container's /bin/true may be; tallyProcs then asks taskstats).
func execLabel(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			return strings.TrimSpace(string(comm))
		}
		return "?"
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	exe = strings.TrimSuffix(exe, " (deleted)")
	name := argv[0]
	if strings.HasPrefix(name, "/proc/") || strings.HasPrefix(name, "self/fd/") || strings.HasPrefix(name, "/dev/fd/") {
		if exe != "" && exe != "/" && !strings.HasPrefix(exe, "/memfd:") {
			name = exe
		}
	}
	name = filepath.Base(name)
	if len(argv) > 1 {
		switch a := argv[1]; {
		case a == "init", a == "--serve", a == "--recover":
			name += " " + a
		}
	}
	switch {
	case strings.HasPrefix(exe, "/memfd:") || exe == "/":
		name += " (sealed copy)"
	case exe != "" && !strings.Contains(argv[0], "/") && filepath.Base(exe) != argv[0]:
		// A bare argv[0] that is not the file's name: the shim's init
		// stage calls itself "crier". (Not for a path such as the
		// container's /bin/true, a busybox link: whether its exe is read
		// before it exits is a race, and the name would flicker.)
		name += " [" + filepath.Base(exe) + "]"
	}
	return name
}

// close stops listening and returns the events, in the order they came.
func (w *procWatch) close() ([]procEvent, bool, error) {
	w.stop.Store(true)
	<-w.done
	mcast(w.fd, procCnMcastIgnore)
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, w.lost, w.err
	}
	if len(w.events) == 0 {
		return nil, w.lost, errors.New("the netlink connector delivered no event of the benchmark's children (CONFIG_PROC_EVENTS off, or not in the initial network namespace?)")
	}
	return w.events, w.lost, nil
}
