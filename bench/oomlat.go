package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// OOM notification: how long after the kernel's OOM killer is invoked in a
// container's memory cgroup an already connected subscriber holds the
// shim's oom event.
//
// The reference clock is the kernel's own notification: the benchmark
// registers an eventfd of its own on the container's memory.oom_control
// (cgroup v1, as the shim does) and stamps CLOCK_MONOTONIC when a blocking
// read(2) on it returns, in a thread locked to its goroutine. The kernel
// signals every eventfd registered on the cgroup in one pass, so the
// shim's and the benchmark's are signalled within microseconds of each
// other; the difference is the shim's work (wake-up, reading its
// counters, publishing) and the subscriber's (its wake-up, decoding) less
// the reference's own wake-up, which the "eventfd → stamp" row measures
// on its own.

// The container that OOMs: memory and memory+swap held to 16 MiB, as in
// test/oom_test.go, so that nothing can swap out, and busybox dd as the
// init reading 64 MiB of /dev/zero into one buffer: the kernel faults its
// pages in as it copies, and the OOM killer takes dd, the only process.
// The tests' allocator (sh collecting head|tr's output in a variable)
// OOMs as surely but takes longer to get there, and the section's rounds
// are short of time on a loaded machine.
const oomLimit = 16 << 20

var oomArgs = []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}

// oomBudget bounds the section's OOM rounds: it stops early, with fewer
// samples, rather than run much past a minute on a loaded machine.
const oomBudget = 50 * time.Second

func (b *B) oomLatency(sec *section) {
	n := 30
	if b.quick {
		n = 8
	}
	kinds := []*exitKind{
		{tag: "cli", name: "crier: an already connected `crier event --event oom` (its stdout line)", n: n, fn: b.oomCLI},
		{tag: "go", name: "crier: Go client, `protocol` Dial+Subscribe+Next", n: n, fn: b.oomGoClient},
	}
	if _, err := memoryCgroupOf(os.Getpid()); err != nil {
		// The reference is v1's eventfd; v2's inotify on memory.events
		// would need another one.
		sec.para("Not measured: this host has no cgroup v1 memory controller (%v), and the reference clock is v1's OOM eventfd.", err)
		return
	}
	s := b.newScratch()
	defer s.close()
	load0 := loadavg()
	var floor []float64
	for i := 0; i < 10; i++ {
		if r := b.exec(s, b.crier.argv("--version"), nil, 10*time.Second); r.err == nil {
			floor = append(floor, r.ms())
		}
	}
	wake, stoppedEarly, ok := b.oomRounds(s, kinds)
	if !ok {
		return
	}
	t := sec.table("subscriber", "n", "median", "p90", "p99", "max")
	for _, kd := range kinds {
		d := summarize(kd.lat)
		if d.n == 0 {
			t.add(kd.name, "0", "failed")
			continue
		}
		t.add(kd.name, strconv.Itoa(d.n), "**"+num(d.p50)+"**", num(d.p90), num(d.p99), num(d.max))
		b.rep.key["oom."+kd.tag+".p50"] = d.p50
		b.rep.key["oom."+kd.tag+".p99"] = d.p99
	}
	if d := summarize(wake); d.n > 0 {
		t.add("reference: eventfd write(2) → the stamp of a read(2) blocked on it in a locked thread of the benchmark", strconv.Itoa(d.n), "**"+num(d.p50)+"**", num(d.p90), num(d.p99), num(d.max))
		b.rep.key["oom.eventfd.p50"] = d.p50
	}
	note := ""
	neg, all := 0, 0
	for _, kd := range kinds {
		for _, v := range kd.lat {
			all++
			if v < 0 {
				neg++
			}
		}
	}
	if neg > 0 {
		note = fmt.Sprintf(" %d of the %d samples are negative: the subscriber held the event before the reference's reader, which waits for a CPU too, had stamped.", neg, all)
	}
	if stoppedEarly {
		note += fmt.Sprintf(" The rounds stopped at the section's %s budget, before %d samples of each.", oomBudget, n)
	}
	fl := summarize(floor)
	sec.para("Milliseconds from the benchmark's own eventfd on the container's memory.oom_control (cgroup v1, registered through cgroup.event_control after `create`) becoming readable, stamped with CLOCK_MONOTONIC when a blocking read(2) on it returns in a locked thread, to the subscriber holding the `oom` event: the `crier event --event oom` process's line arriving on a pipe, or the Go client's `Next` returning it. The kernel signals the shim's eventfd and the benchmark's in one pass, so the figure is the shim's and the subscriber's work less the reference's own wake-up, which the last row measures apart (a write(2) to an eventfd from another locked thread, stamped just before, after each sample). The container's memory and memory+swap are limited to %d MiB, as in the OOM tests, and its init, busybox `%s`, is what the OOM killer kills; each sample checks that the `oom` event names the container's own limit and that `stopped` says `oomKilled` (the Go client's, that `oom` came before it). Subscribers connect before `start` (the `crier event` process counts as connected once it holds a socket, plus 5 ms); one container per sample, the two kinds in turn, nothing else running.%s Exec floor in this section: `crier --version` median %s ms (n %d); load average (1 min) %s → %s.",
		oomLimit>>20, strings.Join(oomArgs, " "), note, num(fl.p50), fl.n, load0, loadavg())
}

// oomRounds takes the samples, the kinds in turn, until each has its n or
// the budget is spent (stoppedEarly), and after each a sample of the
// reference's own wake-up, in the same state of the machine. It returns
// false when the benchmark is stopping.
func (b *B) oomRounds(s *scratch, kinds []*exitKind) (wake []float64, stoppedEarly, ok bool) {
	deadline := time.Now().Add(oomBudget)
	for round := 0; ; round++ {
		busy := false
		for k := range kinds {
			kd := kinds[(round+k)%len(kinds)]
			if len(kd.lat) >= kd.n || kd.errs >= 3 {
				continue
			}
			if time.Now().After(deadline) {
				return wake, true, true
			}
			busy = true
			lat, err := kd.fn(s)
			if errors.Is(err, errStopping) {
				return nil, false, false
			}
			if err != nil {
				kd.errs++
				b.rep.fail("oom notification, %s: %v", kd.name, err)
				continue
			}
			kd.lat = append(kd.lat, lat)
			if w, err := eventfdWake(); err == nil {
				wake = append(wake, w)
			}
		}
		if !busy {
			return wake, false, true
		}
	}
}

// oomCreate creates a container that will OOM, and arms the reference on
// its memory cgroup. The caller starts it.
func (b *B) oomCreate(s *scratch, tag string) (id string, ref *oomRef, err error) {
	id = b.newID(tag)
	bundle, err := b.makeBundle("o-"+id, oomArgs...)
	if err != nil {
		return "", nil, err
	}
	if err := limitMemory(filepath.Join(bundle, "config.json"), oomLimit); err != nil {
		os.RemoveAll(bundle)
		return "", nil, err
	}
	pidFile := filepath.Join(b.work, "stamps", id+".pid")
	defer os.Remove(pidFile)
	if r := b.create(s, b.crier, bundle, id, b.devnull, "--pid-file", pidFile); r.err != nil {
		b.oomForget(s, id, nil)
		return "", nil, r.err
	}
	raw, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	dir, err := memoryCgroupOf(pid)
	if err == nil {
		ref, err = armOOMRef(dir)
	}
	if err != nil {
		b.oomForget(s, id, nil)
		return "", nil, err
	}
	return id, ref, nil
}

// oomForget deletes the container (forced), its bundle and the reference.
func (b *B) oomForget(s *scratch, id string, ref *oomRef) {
	b.oomDrop(id, ref)
	b.deleteC(s, b.crier, id, true)
}

// oomDrop closes the reference and removes the bundle.
func (b *B) oomDrop(id string, ref *oomRef) {
	if ref != nil {
		ref.close()
	}
	os.RemoveAll(filepath.Join(b.work, "bundles", "o-"+id))
}

// oomFinish waits for the reference's stamp, then (unless stopped says the
// subscriber saw it) for the container to stop, deletes it and returns the
// latency of the subscriber's stamp t.
func (b *B) oomFinish(s *scratch, id string, ref *oomRef, t int64, stopped bool) (float64, error) {
	r, err := ref.wait(10 * time.Second)
	if err == nil && !stopped {
		err = b.waitStoppedOOM(id)
	}
	if err == nil {
		err = b.deleteC(s, b.crier, id, false).err
	}
	if err != nil {
		b.oomForget(s, id, ref)
		return 0, err
	}
	b.oomDrop(id, ref)
	return float64(t-r) / 1e6, nil
}

func (b *B) oomGoClient(s *scratch) (float64, error) {
	id, ref, err := b.oomCreate(s, "og")
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, b.sockPath(id))
	if err == nil {
		defer c.Close()
		err = c.Subscribe(ctx, protocol.SubscribeOptions{})
	}
	if err == nil {
		if r := b.start(s, b.crier, id); r.err != nil {
			err = r.err
		}
	}
	var t int64
	if err == nil {
		t, err = waitOOM(ctx, c)
	}
	if err != nil {
		b.oomForget(s, id, ref)
		return 0, err
	}
	return b.oomFinish(s, id, ref, t, true)
}

// waitOOM reads events until the first oom, returns when it arrived, and
// reads on to the stopped it must come before.
func waitOOM(ctx context.Context, c *protocol.Client) (int64, error) {
	var t int64
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return 0, err
		}
		switch {
		case ev.Type == protocol.EventOOM && t == 0:
			t = mono()
			if ev.Limit != "container" {
				return 0, fmt.Errorf("oom event says limit %q, want container", ev.Limit)
			}
		case ev.Type == protocol.EventStopped && t == 0:
			return 0, errors.New("stopped came without an oom event before it")
		case ev.Type == protocol.EventStopped:
			if !ev.OOMKilled {
				return 0, errors.New("stopped after the oom event does not say oomKilled")
			}
			return t, nil
		}
	}
}

func (b *B) oomCLI(s *scratch) (float64, error) {
	id, ref, err := b.oomCreate(s, "oc")
	if err != nil {
		return 0, err
	}
	fd, w, err := blockingPipe()
	if err != nil {
		b.oomForget(s, id, ref)
		return 0, err
	}
	cmd := exec.Command(b.crier.bin, b.crier.argv("event", "--event", protocol.EventOOM, "--timeout", "60s", id)[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = b.devnull, w, b.devnull, b.env
	err = cmd.Start()
	w.Close()
	if err != nil {
		unix.Close(fd)
		b.oomForget(s, id, ref)
		return 0, err
	}
	got := readLineStamped(fd)
	fail := func(err error) (float64, error) {
		cmd.Process.Kill()
		cmd.Wait()
		b.oomForget(s, id, ref)
		return 0, err
	}
	if err := waitDialled(10*time.Second, cmd.Process.Pid); err != nil {
		return fail(err)
	}
	time.Sleep(5 * time.Millisecond)
	if r := b.start(s, b.crier, id); r.err != nil {
		return fail(r.err)
	}
	var l stampedLine
	select {
	case l = <-got:
	case <-time.After(30 * time.Second):
		return fail(errors.New("no oom event within 30 s"))
	}
	if err := cmd.Wait(); err != nil || l.t < 0 {
		return fail(fmt.Errorf("crier event: %v", err))
	}
	var ev protocol.Event
	if err := json.Unmarshal(l.line, &ev); err != nil || ev.Type != protocol.EventOOM || ev.Limit != "container" {
		return fail(fmt.Errorf("crier event --event oom printed %q, want an oom event of the container's limit", l.line))
	}
	return b.oomFinish(s, id, ref, l.t, false)
}

// waitStoppedOOM waits, in this process (an exec costs more than a round's
// measuring on a loaded machine), for the container's stopped event, which
// the history holds if it came already, and checks it is an OOM kill's.
func (b *B) waitStoppedOOM(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, b.sockPath(id))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		return err
	}
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for stopped: %w", err)
		}
		if ev.Type == protocol.EventStopped {
			if !ev.OOMKilled {
				return errors.New("stopped after the oom event does not say oomKilled")
			}
			return nil
		}
	}
}

type stampedLine struct {
	t    int64 // CLOCK_MONOTONIC when its first bytes arrived; -1 on error
	line []byte
}

// readLineStamped is readStamped keeping what was read: the first line,
// stamped when its first bytes arrived.
func readLineStamped(fd int) <-chan stampedLine {
	ch := make(chan stampedLine, 1)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		var l stampedLine
		for {
			n, err := unix.Read(fd, buf)
			if l.line == nil {
				l.t = mono()
			}
			if n <= 0 || err != nil {
				if l.line == nil {
					l.t = -1
				}
				break
			}
			l.line = append(l.line, buf[:n]...)
			if i := strings.IndexByte(string(l.line), '\n'); i >= 0 {
				l.line = l.line[:i]
				break
			}
		}
		ch <- l
	}()
	return ch
}

// limitMemory sets a bundle's memory limit and memory+swap limit.
func limitMemory(config string, limit int64) error {
	raw, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	linux, _ := spec["linux"].(map[string]any)
	if linux == nil {
		linux = map[string]any{}
		spec["linux"] = linux
	}
	res, _ := linux["resources"].(map[string]any)
	if res == nil {
		res = map[string]any{}
		linux["resources"] = res
	}
	res["memory"] = map[string]any{"limit": limit, "swap": limit}
	if raw, err = json.MarshalIndent(spec, "", "\t"); err != nil {
		return err
	}
	return os.WriteFile(config, raw, 0o644)
}

// memoryCgroupOf returns the directory of pid's v1 memory cgroup, from
// /proc/PID/cgroup and the memory hierarchy's mount in this namespace.
func memoryCgroupOf(pid int) (string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	cg := ""
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && hasField(f[1], "memory") {
			cg = f[2]
		}
	}
	if cg == "" {
		return "", fmt.Errorf("/proc/%d/cgroup: no v1 memory cgroup", pid)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" || !hasField(g[2], "memory") {
			continue
		}
		rel, err := filepath.Rel(f[3], cg)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		return filepath.Join(f[4], rel), nil
	}
	return "", fmt.Errorf("no mount of the memory hierarchy holds %s", cg)
}

func hasField(list, name string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == name {
			return true
		}
	}
	return false
}

// oomRef is the reference: an eventfd registered on a v1 memory cgroup's
// memory.oom_control, read by a goroutine locked to its thread.
type oomRef struct {
	efd  int
	got  chan int64 // the stamp; -1 if the read failed
	done chan struct{}
}

func armOOMRef(dir string) (*oomRef, error) {
	// Blocking: the reader sleeps in read(2) until the kernel signals it.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	ctl := filepath.Join(dir, "memory.oom_control")
	cfd, err := unix.Open(ctl, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("open %s: %w", ctl, err)
	}
	err = os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(strconv.Itoa(efd)+" "+strconv.Itoa(cfd)), 0)
	unix.Close(cfd)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("register an OOM eventfd: %w", err)
	}
	r := &oomRef{efd: efd, got: make(chan int64, 1), done: make(chan struct{})}
	go func() {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		defer close(r.done)
		var buf [8]byte
		n, err := unix.Read(efd, buf[:])
		t := mono()
		if n != 8 || err != nil {
			t = -1
		}
		r.got <- t
	}()
	return r, nil
}

// wait returns the reference's stamp.
func (r *oomRef) wait(timeout time.Duration) (int64, error) {
	select {
	case t := <-r.got:
		if t < 0 {
			return 0, errors.New("reading the OOM eventfd failed")
		}
		return t, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("the OOM eventfd was not signalled within %v", timeout)
	}
}

// close wakes the reader if it still waits (closing the descriptor would
// not), waits for it and closes the eventfd, which unregisters it.
func (r *oomRef) close() {
	one := [8]byte{1}
	unix.Write(r.efd, one[:])
	<-r.done
	unix.Close(r.efd)
}

// eventfdWake measures the reference's own wake-up in ms: a goroutine
// locked to its thread blocks in read(2) on a fresh eventfd, another
// stamps CLOCK_MONOTONIC and writes to it, the reader stamps as read(2)
// returns.
func eventfdWake() (float64, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return 0, os.NewSyscallError("eventfd", err)
	}
	defer unix.Close(efd)
	tid := make(chan int, 1)
	got := make(chan int64, 1)
	go func() {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		tid <- unix.Gettid()
		var buf [8]byte
		unix.Read(efd, buf[:])
		got <- mono()
	}()
	// Write only once the reader sleeps in read(2) (syscall 0 on amd64).
	sys := fmt.Sprintf("/proc/self/task/%d/syscall", <-tid)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if raw, _ := os.ReadFile(sys); strings.HasPrefix(string(raw), strconv.Itoa(unix.SYS_READ)+" ") {
			break
		}
		if time.Now().After(deadline) {
			one := [8]byte{1}
			unix.Write(efd, one[:])
			<-got
			return 0, errors.New("the eventfd reader did not block in read(2)")
		}
		time.Sleep(100 * time.Microsecond)
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	one := [8]byte{1}
	t0 := mono()
	unix.Write(efd, one[:])
	return float64(<-got-t0) / 1e6, nil
}
