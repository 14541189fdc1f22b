package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The kernel's OOM kills in a container's memory cgroup, heard of without
// polling: on cgroup v2 memory.events changes (inotify, IN_MODIFY) when its
// oom_kill counter moves; on cgroup v1 an eventfd registered through
// cgroup.event_control on memory.oom_control is signalled each time the
// OOM killer is invoked for the cgroup (or for an ancestor, which notifies
// its whole subtree).
//
// The watch only makes a descriptor readable; its owner reads it (Check)
// when it likes, and also without waiting for it, so that the init's exit
// can be told apart from an OOM kill synchronously, in order.
//
// Which limit was hit: on v2 from memory.events.local's "oom", which the
// kernel counts in the cgroup whose limit caused the OOM. The watch takes
// that counter in the container's cgroup and in each ancestor when it
// starts, and names the nearest whose counter moved since the previous
// Check. v1 has no such counter (and memory.failcnt is no longer kept by
// recent kernels), but its notification tells: an OOM at cgroup X
// signals the eventfds of X and of every cgroup below it, never above. So
// the watch registers one eventfd on each ancestor too (only the
// container's is waited on), and names the highest level whose eventfd
// was signalled with the container's.

// Whose limit an OOM hit (OOM.Limit).
const (
	LimitContainer  = "container"  // the container's own cgroup
	LimitAncestor   = "ancestor"   // a cgroup above it (a pod's, a slice's)
	LimitDescendant = "descendant" // a cgroup below it (v2 only)
)

// OOM is what a watch saw since its previous Check.
type OOM struct {
	// Count is how many OOMs to report: on v2 the OOM kills in the
	// container's cgroup and below (memory.events oom_kill); on v1 the
	// times the OOM killer was invoked for it or an ancestor (each
	// kills one process, which is outside the container when an
	// ancestor's limit was hit). Zero when there was none.
	Count uint64
	// Kills is how much the container's oom_kill counter moved: the
	// processes the OOM killer chose in it (on v1 in its own cgroup, not
	// below). On v1 a kill is counted after the notification, so a
	// Check right after one may see Count without Kills.
	Kills uint64
	// Limit says whose limit was hit (LimitContainer ...), and Cgroup
	// names its directory; both are empty when no counter says (a
	// system-wide OOM, or a kernel without the counters).
	Limit  string
	Cgroup string
}

// OOMWatch watches one memory cgroup for OOM kills (see WatchOOM).
type OOMWatch struct {
	fd  int  // readable when an OOM may have happened
	v1  bool // eventfd on memory.oom_control; else inotify on memory.events
	dir string
	// kills is the oom_kill counter last read; below, on v2, is
	// memory.events' "oom", which counts the OOMs of the subtree.
	kills, below uint64
	// unkilled, on v1, counts the notifications whose kill has not been
	// counted yet: a kill counted without one is a system-wide OOM's,
	// which notifies no cgroup.
	unkilled uint64
	// levels are the container's cgroup and its ancestors, nearest
	// first, with (v2) their OOM counters as last read.
	levels []oomLevel
}

type oomLevel struct {
	dir string
	hit uint64 // v2: memory.events.local's "oom"
	fd  int    // v1: an eventfd on its memory.oom_control; -1 on v2
}

// ErrNoMemoryCgroup is WatchOOM's error for a container without a memory
// cgroup to watch (no memory controller on the host, or none enabled).
var ErrNoMemoryCgroup = errors.New("cgroup: no memory cgroup to watch for OOM kills")

// WatchOOM starts watching the container's memory cgroup: its v1 memory
// directory where the memory controller is on v1, else its unified one.
// The descriptor (FD) is non-blocking and close-on-exec.
func (c *Cgroup) WatchOOM() (*OOMWatch, error) {
	if dir, ok := c.Paths["memory"]; ok {
		return watchOOMv1(dir)
	}
	if dir, ok := c.Paths[""]; ok && fileExists(filepath.Join(dir, "memory.events")) {
		return watchOOMv2(dir)
	}
	return nil, ErrNoMemoryCgroup
}

func watchOOMv2(dir string) (*OOMWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cgroup: watch OOM kills: %w", os.NewSyscallError("inotify_init1", err))
	}
	p := filepath.Join(dir, "memory.events")
	// Watched before the counters are read: no kill falls in between.
	if _, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cgroup: watch OOM kills: inotify_add_watch %s: %w", p, err)
	}
	w := &OOMWatch{fd: fd, dir: dir}
	ev, err := readOOMCounts(p)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	w.kills, w.below = ev.kill, ev.oom
	w.levels = limitLevels(dir)
	return w, nil
}

func watchOOMv1(dir string) (*OOMWatch, error) {
	w := &OOMWatch{fd: -1, v1: true, dir: dir}
	// Every level but the hierarchy's root, which has no limit:
	// registered before the counter is read, so no kill falls between.
	for d := dir; fileExists(filepath.Join(filepath.Dir(d), "memory.limit_in_bytes")); d = filepath.Dir(d) {
		fd, err := registerOOMEventfd(d)
		if err != nil {
			w.Close()
			return nil, err
		}
		w.levels = append(w.levels, oomLevel{dir: d, fd: fd})
	}
	if len(w.levels) == 0 {
		return nil, fmt.Errorf("cgroup: watch OOM kills: %s is the root of its hierarchy", dir)
	}
	w.fd = w.levels[0].fd
	oc, err := readOOMCounts(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		w.Close()
		return nil, err
	}
	w.kills = oc.kill // absent before Linux 4.13: never moves
	return w, nil
}

// registerOOMEventfd returns an eventfd that the kernel signals at each
// OOM of the v1 memory cgroup dir or of an ancestor.
func registerOOMEventfd(dir string) (int, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("cgroup: watch OOM kills: %w", os.NewSyscallError("eventfd", err))
	}
	ctl := filepath.Join(dir, "memory.oom_control")
	cfd, err := unix.Open(ctl, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return -1, fmt.Errorf("cgroup: watch OOM kills: open %s: %w", ctl, err)
	}
	// The kernel holds the cgroup once registered: the control file's
	// descriptor is needed only for the write. Closing the eventfd
	// unregisters it.
	err = writeFile(filepath.Join(dir, "cgroup.event_control"), strconv.Itoa(efd)+" "+strconv.Itoa(cfd))
	unix.Close(cfd)
	if err != nil {
		unix.Close(efd)
		return -1, fmt.Errorf("cgroup: watch OOM kills: %w", err)
	}
	return efd, nil
}

// FD is the descriptor that polls readable when an OOM may have happened.
// The watch owns it; Check drains it.
func (w *OOMWatch) FD() int { return w.fd }

// Close ends the watch.
func (w *OOMWatch) Close() error {
	if !w.v1 {
		return unix.Close(w.fd)
	}
	for _, l := range w.levels {
		unix.Close(l.fd)
	}
	return nil
}

// Check reports, without blocking, what happened since the previous Check.
func (w *OOMWatch) Check() (OOM, error) {
	if w.v1 {
		return w.checkV1()
	}
	return w.checkV2()
}

func (w *OOMWatch) checkV2() (OOM, error) {
	// The notification only says "look": drain it, then look.
	var buf [4096]byte
	for {
		if n, err := unix.Read(w.fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	ev, err := readOOMCounts(filepath.Join(w.dir, "memory.events"))
	if err != nil {
		return OOM{}, err
	}
	var o OOM
	o.Kills, w.kills = moved(ev.kill, w.kills)
	o.Count = o.Kills
	below := ev.oom > w.below
	w.below = ev.oom
	if o.Count == 0 {
		return o, nil
	}
	o.Limit, o.Cgroup = w.whoseLimit()
	if o.Limit == "" && below {
		// The subtree's count moved and no level's own did: a cgroup
		// under the container's was at its limit.
		o.Limit = LimitDescendant
	}
	return o, nil
}

func (w *OOMWatch) checkV1() (OOM, error) {
	var o OOM
	// The highest level notified with the container is the one whose
	// limit was hit; every level is drained.
	for i, l := range w.levels {
		n := readEventfd(l.fd)
		if i == 0 {
			o.Count = n
		}
		if n > 0 && o.Count > 0 {
			o.Limit, o.Cgroup = LimitAncestor, l.dir
			if i == 0 {
				o.Limit = LimitContainer
			}
		}
	}
	oc, err := readOOMCounts(filepath.Join(w.dir, "memory.oom_control"))
	if err != nil {
		// The kernel also signals the eventfds when the cgroup is
		// removed: that is no OOM.
		return OOM{}, err
	}
	o.Kills, w.kills = moved(oc.kill, w.kills)
	w.unkilled += o.Count
	if o.Kills > w.unkilled {
		// Kills no notification announced: a system-wide OOM.
		o.Count += o.Kills - w.unkilled
		w.unkilled = o.Kills
	}
	w.unkilled -= o.Kills
	return o, nil
}

// readEventfd reads and resets an eventfd's count, without blocking.
func readEventfd(fd int) uint64 {
	var buf [8]byte
	if n, err := unix.Read(fd, buf[:]); err != nil || n != 8 {
		return 0
	}
	return uint64(buf[0]) | uint64(buf[1])<<8 | uint64(buf[2])<<16 | uint64(buf[3])<<24 |
		uint64(buf[4])<<32 | uint64(buf[5])<<40 | uint64(buf[6])<<48 | uint64(buf[7])<<56
}

// whoseLimit names the nearest level whose OOM counter moved since the
// previous look, and takes every level's counter afresh.
func (w *OOMWatch) whoseLimit() (limit, dir string) {
	for i := range w.levels {
		l := &w.levels[i]
		n, ok := localOOMs(l.dir)
		if !ok {
			continue
		}
		if n > l.hit && limit == "" {
			limit, dir = LimitAncestor, l.dir
			if i == 0 {
				limit = LimitContainer
			}
		}
		l.hit = n
	}
	return limit, dir
}

// limitLevels lists a v2 dir and its ancestors, up to the hierarchy's
// root (which has no memory.events.local), with their OOM counters now.
func limitLevels(dir string) []oomLevel {
	var levels []oomLevel
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		n, ok := localOOMs(d)
		if !ok {
			break
		}
		levels = append(levels, oomLevel{dir: d, hit: n, fd: -1})
	}
	return levels
}

// localOOMs is v2's count of the OOMs a cgroup's own limit caused.
func localOOMs(dir string) (uint64, bool) {
	ev, err := readOOMCounts(filepath.Join(dir, "memory.events.local"))
	if err != nil {
		return 0, false
	}
	return ev.oom, true
}

// moved returns how much a counter went up, and its new value. A counter
// that went down (another cgroup at the same path) starts afresh.
func moved(now, before uint64) (uint64, uint64) {
	if now < before {
		return now, now
	}
	return now - before, now
}

// oomCounts are the two counters of memory.events, memory.events.local
// or memory.oom_control that the watch reads.
type oomCounts struct{ oom, kill uint64 }

// readOOMCounts reads the "oom" and "oom_kill" lines of a flat keyed
// file. It reads into a buffer on the stack and allocates nothing: it
// runs in the idle shim, whose heap must not grow for it.
func readOOMCounts(p string) (oomCounts, error) {
	var c oomCounts
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return c, fmt.Errorf("cgroup: read %s: %w", p, err)
	}
	var buf [1024]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return c, fmt.Errorf("cgroup: read %s: %w", p, err)
	}
	for line := buf[:max(n, 0)]; len(line) > 0; {
		var l []byte
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			l, line = line[:i], line[i+1:]
		} else {
			l, line = line, nil
		}
		k, v, ok := bytes.Cut(l, []byte(" "))
		if !ok {
			continue
		}
		switch string(k) {
		case "oom":
			c.oom = parseCount(v)
		case "oom_kill":
			c.kill = parseCount(v)
		}
	}
	return c, nil
}

func parseCount(b []byte) uint64 {
	var n uint64
	for _, d := range b {
		if d < '0' || d > '9' {
			break
		}
		n = n*10 + uint64(d-'0')
	}
	return n
}

// OOMWatchState is an OOMWatch taken apart, to be put together again by
// ResumeOOMWatch in a process image that has the same descriptors (the
// shim's serving image, after execve): the watch goes on where it was, with
// nothing missed in between, since the kernel keeps counting on the
// descriptors meanwhile.
type OOMWatchState struct {
	FD           int
	V1           bool
	Dir          string
	Kills, Below uint64
	Unkilled     uint64
	LevelDirs    []string
	LevelHits    []uint64
	LevelFDs     []int
}

// State returns the watch's state and the descriptors it holds, which the
// caller keeps open across execve (they are close-on-exec).
func (w *OOMWatch) State() (OOMWatchState, []int) {
	st := OOMWatchState{FD: w.fd, V1: w.v1, Dir: w.dir, Kills: w.kills, Below: w.below, Unkilled: w.unkilled}
	fds := []int{}
	if !w.v1 {
		fds = append(fds, w.fd)
	}
	for _, l := range w.levels {
		st.LevelDirs = append(st.LevelDirs, l.dir)
		st.LevelHits = append(st.LevelHits, l.hit)
		st.LevelFDs = append(st.LevelFDs, l.fd)
		if l.fd >= 0 {
			fds = append(fds, l.fd)
		}
	}
	return st, fds
}

// ResumeOOMWatch is the watch that State took apart. Its descriptors
// become close-on-exec again.
func ResumeOOMWatch(st OOMWatchState) *OOMWatch {
	w := &OOMWatch{fd: st.FD, v1: st.V1, dir: st.Dir, kills: st.Kills, below: st.Below, unkilled: st.Unkilled}
	for i, d := range st.LevelDirs {
		l := oomLevel{dir: d, fd: -1}
		if i < len(st.LevelHits) {
			l.hit = st.LevelHits[i]
		}
		if i < len(st.LevelFDs) {
			l.fd = st.LevelFDs[i]
		}
		w.levels = append(w.levels, l)
	}
	if !w.v1 && w.fd >= 0 {
		unix.CloseOnExec(w.fd)
	}
	for _, l := range w.levels {
		if l.fd >= 0 {
			unix.CloseOnExec(l.fd)
		}
	}
	return w
}
