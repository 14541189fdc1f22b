package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
)

// An exit round starts one container whose helper exits after a pause,
// lets one subscriber learn of it, and returns the latency in ms from the
// helper's CLOCK_MONOTONIC stamp to the moment the subscriber knew.
type exitKind struct {
	tag  string // key in the summary, or ""
	name string
	n    int
	fn   func(s *scratch) (float64, error)
	lat  []float64
	errs int
}

func (b *B) exitLatency(sec *section) {
	nCrier, nOther := 300, 40
	if b.quick {
		nCrier, nOther = 15, 6
	}
	if *flagExitN > 0 {
		nCrier = *flagExitN
	}
	kinds := []*exitKind{
		{name: "crier: an already connected `crier event --event stopped` (its stdout line)", n: nCrier, fn: b.exitCrierCLI},
		{name: "crier: Go client, `protocol` Dial+Subscribe+Next", n: nCrier, fn: b.exitGoClient},
		{tag: "all", name: "crier: an already connected `crier event --all --event stopped` (every container's stream; its stdout line)", n: nCrier / 3, fn: b.exitCrierAll},
		{tag: "pidfd", name: "reference: pidfd of the container process, poll(2) in a Go thread of the benchmark", n: nCrier / 3, fn: b.exitPidfd},
		{name: "runc: `runc state` every 10 ms", n: nOther, fn: func(s *scratch) (float64, error) { return b.exitPoll(s, b.runc, 10*time.Millisecond) }},
		{name: "runc: `runc state` every 100 ms", n: nOther, fn: func(s *scratch) (float64, error) { return b.exitPoll(s, b.runc, 100*time.Millisecond) }},
		{name: "crun: `crun state` every 10 ms", n: nOther, fn: func(s *scratch) (float64, error) { return b.exitPoll(s, b.crun, 10*time.Millisecond) }},
	}
	if b.haveConmon() {
		kinds = append(kinds, &exitKind{tag: "conmon", name: "conmon + runc: exit file (inotify on --exit-dir)", n: nOther, fn: b.exitConmon})
	}
	var events *ctrEvents
	if b.haveContainerd() {
		if err := b.startContainerd(); err != nil {
			b.rep.fail("exit: containerd: %v", err)
		} else if events, err = b.startCtrEvents(); err != nil {
			b.rep.fail("exit: ctr events: %v", err)
		} else {
			defer events.stop()
			kinds = append(kinds, &exitKind{tag: "containerd", name: "containerd: `/tasks/exit` from an already running `ctr events`", n: nOther,
				fn: func(s *scratch) (float64, error) { return b.exitContainerd(s, events) }})
		}
	}
	s := b.newScratch()
	defer s.close()
	for round := 0; ; round++ {
		busy := false
		for k := range kinds {
			kd := kinds[(round+k)%len(kinds)]
			if len(kd.lat) >= kd.n || kd.errs >= 3 {
				continue
			}
			busy = true
			lat, err := kd.fn(s)
			if errors.Is(err, errStopping) {
				return
			}
			if err != nil {
				kd.errs++
				b.rep.fail("exit notification, %s: %v", kd.name, err)
				continue
			}
			kd.lat = append(kd.lat, lat)
		}
		if !busy {
			break
		}
	}
	b.stopContainerd()
	t := sec.table("subscriber", "n", "median", "p90", "p99", "max")
	for i, kd := range kinds {
		d := summarize(kd.lat)
		if d.n == 0 {
			t.add(kd.name, "0", "failed")
			continue
		}
		t.add(kd.name, strconv.Itoa(d.n), "**"+num(d.p50)+"**", num(d.p90), num(d.p99), num(d.max))
		if i < 2 {
			b.rep.key[fmt.Sprintf("exit.%d.p50", i)] = d.p50
			b.rep.key[fmt.Sprintf("exit.%d.p99", i)] = d.p99
		}
		if strings.Contains(kd.name, "10 ms") && strings.HasPrefix(kd.name, "runc") {
			b.rep.key["exit.poll10.p50"] = d.p50
		}
		if kd.tag != "" {
			b.rep.key["exit."+kd.tag+".p50"] = d.p50
		}
	}
	if d := summarize(b.exitOwn); d.n > 0 {
		t.add("crier's own part: the Go client's stopped event after the same exit polled readable on a pidfd in the benchmark", strconv.Itoa(d.n), "**"+num(d.p50)+"**", num(d.p90), num(d.p99), num(d.max))
		b.rep.key["exit.own.p50"] = d.p50
	}
	sec.para("Milliseconds from the exit-stamp helper's CLOCK_MONOTONIC reading, taken just before it calls exit, to the subscriber knowing: the `crier event` (or `crier event --all`) process's line arriving on a pipe, the Go client's `Next` returning the stopped event, poll(2) on the pidfd returning, a `state` call returning \"stopped\", conmon's exit file being closed after writing (inotify), `ctr events` printing the exit. The helper sleeps a random 20–40 ms (crier, pidfd) or 20 ms plus up to one polling period plus 10 ms (pollers, so that exits fall at random phases) after start. Subscribers connect before `start`; the `crier event` process is started after `create` and counted as connected once it holds a socket (/proc/PID/fd) plus 5 ms. Each kind in turn, rotating, one container per sample. The pidfd row is a reference measured the same way, not a hard floor: it includes waking a Go thread blocked in poll(2) in a process that is otherwise idle. The last row pairs the two within each Go-client sample: a thread of the benchmark polls the container process's pidfd while the client waits, and the row is the event's arrival less the pidfd's wake-up, what crier adds to the kernel's exit (noise in the kernel's part, which varies by a few tenths of a millisecond from run to run, cancels out).")
}

// stampFile creates the file a container's helper writes its stamp to.
func (b *B) stampFile(id string) (*os.File, string, error) {
	p := filepath.Join(b.work, "stamps", id)
	f, err := os.Create(p)
	return f, p, err
}

func readStamp(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("exit stamp %s: %q", path, raw)
	}
	return v, nil
}

func jitter(base, spread time.Duration) time.Duration {
	return base + time.Duration(rand.Int64N(int64(spread)+1))
}

// stampedCreate creates a container of rt whose helper sleeps d after start
// and stamps its exit to a file, the container's stdout.
func (b *B) stampedCreate(s *scratch, rt *runtime, id string, d time.Duration, extra ...string) (string, error) {
	bundle, err := b.makeBundle("x-"+id, "/exitstamp", d.String())
	if err != nil {
		return "", err
	}
	f, path, err := b.stampFile(id)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if r := b.create(s, rt, bundle, id, f, extra...); r.err != nil {
		b.deleteC(s, rt, id, true)
		return "", r.err
	}
	return path, nil
}

func (b *B) finish(s *scratch, rt *runtime, id, stamp string, got int64) (float64, error) {
	os.RemoveAll(filepath.Join(b.work, "bundles", "x-"+id))
	if r := b.deleteC(s, rt, id, false); r.err != nil {
		b.deleteC(s, rt, id, true)
		return 0, r.err
	}
	exit, err := readStamp(stamp)
	if err != nil {
		return 0, err
	}
	return float64(got-exit) / 1e6, nil
}

// blockingPipe returns a pipe whose read end the caller reads with plain
// blocking read(2) calls, so that the time of a line's arrival is not that
// of a netpoller wake-up.
func blockingPipe() (r int, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, nil, err
	}
	return p[0], os.NewFile(uintptr(p[1]), "pipe"), nil
}

// readStamped reads from fd in a goroutine and sends the CLOCK_MONOTONIC
// time at which the first bytes arrived (or -1 at EOF or an error).
func readStamped(fd int) <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		buf := make([]byte, 4096)
		n, err := unix.Read(fd, buf)
		t := mono()
		unix.Close(fd)
		if n <= 0 || err != nil {
			t = -1
		}
		ch <- t
	}()
	return ch
}

// socketFDs counts the sockets pid holds. A subscriber process holds none
// until it has dialled the shim.
func socketFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// waitDialled waits until each of pids holds a socket.
func waitDialled(timeout time.Duration, pids ...int) error {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for socketFDs(pid) < 1 {
			if time.Now().After(deadline) {
				return fmt.Errorf("subscriber %d did not connect within %v", pid, timeout)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func (b *B) sockPath(id string) string {
	return filepath.Join(b.crier.root, id, protocol.SocketName)
}

func (b *B) exitCrierCLI(s *scratch) (float64, error) {
	return b.exitCLI(s, "xe", func(id string) []string { return []string{"event", "--event", "stopped", "--timeout", "60s", id} })
}

// exitCrierAll is exitCrierCLI through `crier event --all`: the stream of
// every container under the root, which follows this one (the only one
// there) through its own goroutine and writer.
func (b *B) exitCrierAll(s *scratch) (float64, error) {
	return b.exitCLI(s, "xa", func(string) []string { return []string{"event", "--all", "--event", "stopped", "--timeout", "60s"} })
}

// exitCLI measures a `crier event` process, run with args(id), printing
// the container's stopped event.
func (b *B) exitCLI(s *scratch, prefix string, args func(id string) []string) (float64, error) {
	id := b.newID(prefix)
	stamp, err := b.stampedCreate(s, b.crier, id, jitter(20*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		return 0, err
	}
	fd, w, err := blockingPipe()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(b.crier.bin, b.crier.argv(args(id)...)[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = b.devnull, w, b.devnull, b.env
	err = cmd.Start()
	w.Close()
	if err != nil {
		unix.Close(fd)
		b.deleteC(s, b.crier, id, true)
		return 0, err
	}
	got := readStamped(fd)
	fail := func(err error) (float64, error) {
		cmd.Process.Kill()
		cmd.Wait()
		b.deleteC(s, b.crier, id, true)
		return 0, err
	}
	if err := waitDialled(10*time.Second, cmd.Process.Pid); err != nil {
		return fail(err)
	}
	time.Sleep(5 * time.Millisecond)
	if r := b.start(s, b.crier, id); r.err != nil {
		return fail(r.err)
	}
	var t int64
	select {
	case t = <-got:
	case <-time.After(30 * time.Second):
		return fail(errors.New("no stopped event within 30 s"))
	}
	if err := cmd.Wait(); err != nil || t < 0 {
		return fail(fmt.Errorf("crier event: %v", err))
	}
	return b.finish(s, b.crier, id, stamp, t)
}

func (b *B) exitGoClient(s *scratch) (float64, error) {
	id := b.newID("xg")
	pidFile := filepath.Join(b.work, "stamps", id+".pid")
	stamp, err := b.stampedCreate(s, b.crier, id, jitter(20*time.Millisecond, 20*time.Millisecond), "--pid-file", pidFile)
	if err != nil {
		return 0, err
	}
	// The same exit seen on a pidfd, for crier's own part (exitOwn);
	// no pairing for this sample without one.
	var woke chan int64
	if pfd, err := pidfdOfFile(pidFile); err == nil {
		defer unix.Close(pfd)
		woke = make(chan int64, 1)
		go func() { woke <- pollExit(pfd) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, b.sockPath(id))
	if err == nil {
		err = c.Subscribe(ctx, protocol.SubscribeOptions{})
	}
	if err != nil {
		b.deleteC(s, b.crier, id, true)
		return 0, err
	}
	defer c.Close()
	if r := b.start(s, b.crier, id); r.err != nil {
		b.deleteC(s, b.crier, id, true)
		return 0, r.err
	}
	t, err := waitStopped(ctx, c)
	if err != nil {
		b.deleteC(s, b.crier, id, true)
		return 0, err
	}
	if woke != nil {
		if w := <-woke; w != 0 {
			b.exitOwn = append(b.exitOwn, float64(t-w)/1e6)
		}
	}
	return b.finish(s, b.crier, id, stamp, t)
}

// pidfdOfFile opens a pidfd of the process a pid file names.
func pidfdOfFile(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return -1, fmt.Errorf("pid file %s: %q", path, raw)
	}
	return unix.PidfdOpen(pid, 0)
}

// pollExit waits, in poll(2), for the process pfd refers to to exit, and
// returns when it saw it (mono), or 0 on an error or after 30 s.
func pollExit(pfd int) int64 {
	if pidfd.Wait(pfd, 30*time.Second) != nil {
		return 0
	}
	return mono()
}

// waitStopped reads events until stopped and returns when it arrived.
func waitStopped(ctx context.Context, c *protocol.Client) (int64, error) {
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return 0, err
		}
		if ev.Type == protocol.EventStopped {
			return mono(), nil
		}
	}
}

func (b *B) exitPidfd(s *scratch) (float64, error) {
	id := b.newID("xp")
	pidFile := filepath.Join(b.work, "stamps", id+".pid")
	stamp, err := b.stampedCreate(s, b.crier, id, jitter(20*time.Millisecond, 20*time.Millisecond), "--pid-file", pidFile)
	if err != nil {
		return 0, err
	}
	pfd, err := pidfdOfFile(pidFile)
	if err != nil {
		b.deleteC(s, b.crier, id, true)
		return 0, fmt.Errorf("pidfd_open: %w", err)
	}
	got := make(chan int64, 1)
	go func() { got <- pollExit(pfd) }()
	if r := b.start(s, b.crier, id); r.err != nil {
		unix.Close(pfd)
		b.deleteC(s, b.crier, id, true)
		return 0, r.err
	}
	t := <-got
	unix.Close(pfd)
	if t == 0 {
		b.deleteC(s, b.crier, id, true)
		return 0, errors.New("the container's pidfd did not poll readable within 30 s")
	}
	// Let the shim see it too before the non-forced delete.
	if _, _, _, err := b.waitExit(s, b.crier, id); err != nil {
		b.deleteC(s, b.crier, id, true)
		return 0, err
	}
	return b.finish(s, b.crier, id, stamp, t)
}

// exitPoll learns the exit as a runc user must: `state` every interval.
func (b *B) exitPoll(s *scratch, rt *runtime, interval time.Duration) (float64, error) {
	id := b.newID("xs")
	stamp, err := b.stampedCreate(s, rt, id, jitter(20*time.Millisecond, interval+10*time.Millisecond))
	if err != nil {
		return 0, err
	}
	if r := b.start(s, rt, id); r.err != nil {
		b.deleteC(s, rt, id, true)
		return 0, r.err
	}
	var t int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := b.state(s, rt, id)
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			return 0, r.err
		}
		if st, _ := status(r.out); st == "stopped" {
			t = mono()
			break
		}
		if time.Now().After(deadline) {
			b.deleteC(s, rt, id, true)
			return 0, errors.New("did not stop within 30 s")
		}
		time.Sleep(interval)
	}
	return b.finish(s, rt, id, stamp, t)
}

func (b *B) exitConmon(s *scratch) (float64, error) {
	id := b.newID("xm")
	bundle, err := b.makeBundle("x-"+id, "/exitstamp", jitter(20*time.Millisecond, 20*time.Millisecond).String())
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(bundle)
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return 0, err
	}
	os.MkdirAll(b.conmonDir("exits"), 0o755)
	if _, err := unix.InotifyAddWatch(ino, b.conmonDir("exits"), unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		unix.Close(ino)
		return 0, err
	}
	pid, err := b.conmonCreate(id, bundle)
	if err != nil {
		unix.Close(ino)
		b.deleteC(s, b.runcConmon, id, true)
		return 0, err
	}
	got := make(chan int64, 1)
	go func() {
		defer unix.Close(ino)
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(ino, buf)
			t := mono()
			if err != nil || n <= 0 {
				got <- -1
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				l := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l], "\x00"))
				if name == id {
					got <- t
					return
				}
				off += unix.SizeofInotifyEvent + l
			}
		}
	}()
	if r := b.start(s, b.runcConmon, id); r.err != nil {
		unix.Kill(pid, unix.SIGKILL)
		b.deleteC(s, b.runcConmon, id, true)
		return 0, r.err
	}
	var t int64
	select {
	case t = <-got:
	case <-time.After(30 * time.Second):
		t = -1
	}
	b.conmonForget(pid)
	if r := b.deleteC(s, b.runcConmon, id, true); r.err != nil {
		return 0, r.err
	}
	if t < 0 {
		return 0, errors.New("no exit file within 30 s")
	}
	exit, err := b.conmonStamp(id)
	if err != nil {
		return 0, err
	}
	return float64(t-exit) / 1e6, nil
}

// ctrEvents is a running `ctr events`, its /tasks/exit lines sent with the
// time they arrived.
type ctrEvents struct {
	cmd  *exec.Cmd
	exit chan ctrExit
}

type ctrExit struct {
	id string
	t  int64
}

func (b *B) startCtrEvents() (*ctrEvents, error) {
	fd, w, err := blockingPipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ctr", "-a", b.ctrSock, "events")
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = b.devnull, w, b.devnull, b.env
	err = cmd.Start()
	w.Close()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ev := &ctrEvents{cmd: cmd, exit: make(chan ctrExit, 16)}
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		var pending []byte
		for {
			n, err := unix.Read(fd, buf)
			t := mono()
			if err != nil || n <= 0 {
				close(ev.exit)
				return
			}
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				line := string(pending[:i])
				pending = pending[i+1:]
				if !strings.Contains(line, " /tasks/exit ") {
					continue
				}
				var e struct {
					ContainerID string `json:"container_id"`
				}
				if j := strings.IndexByte(line, '{'); j >= 0 {
					json.Unmarshal([]byte(line[j:]), &e)
				}
				ev.exit <- ctrExit{e.ContainerID, t}
			}
		}
	}()
	// Give it time to subscribe before the first container.
	time.Sleep(300 * time.Millisecond)
	return ev, nil
}

func (e *ctrEvents) stop() {
	e.cmd.Process.Kill()
	e.cmd.Wait()
}

func (b *B) exitContainerd(s *scratch, events *ctrEvents) (float64, error) {
	id := b.newID("xc")
	stamp := filepath.Join(b.work, "stamps", id)
	if r := b.ctrRun(s, id, stamp, "/exitstamp", jitter(20*time.Millisecond, 20*time.Millisecond).String()); r.err != nil {
		b.ctrRemove(s, id)
		return 0, r.err
	}
	var t int64 = -1
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case e, ok := <-events.exit:
			if !ok {
				break wait
			}
			if e.id == id {
				t = e.t
				break wait
			}
		case <-timeout:
			break wait
		}
	}
	b.ctrRemove(s, id)
	if t < 0 {
		return 0, errors.New("no /tasks/exit event within 30 s")
	}
	exit, err := readStamp(stamp)
	if err != nil {
		return 0, err
	}
	return float64(t-exit) / 1e6, nil
}

// waitCost measures the CPU that waiting costs: one container of each kind
// lives b.wait, every subscriber waits for it in its own process, and their
// rusage says what the waiting cost them.
func (b *B) waitCost(sec *section) {
	s := b.newScratch()
	defer s.close()
	self, err := os.Executable()
	if err != nil {
		b.rep.fail("wait: %v", err)
		return
	}
	d := b.wait
	idC, idR := b.newID("wc"), b.newID("wr")
	pidFile := filepath.Join(b.work, "stamps", idC+".pid")
	if _, err := b.stampedCreate(s, b.crier, idC, d, "--pid-file", pidFile); err != nil {
		b.rep.fail("wait: crier create: %v", err)
		return
	}
	defer b.deleteC(s, b.crier, idC, true)
	if _, err := b.stampedCreate(s, b.runc, idR, d); err != nil {
		b.rep.fail("wait: runc create: %v", err)
		return
	}
	defer b.deleteC(s, b.runc, idR, true)
	idM := ""
	conmonPid := 0
	if b.haveConmon() {
		idM = b.newID("wm")
		// It outlives the others so that conmon is still there to be read.
		bundle, err := b.makeBundle("x-"+idM, "/exitstamp", (d + 10*time.Second).String())
		if err == nil {
			conmonPid, err = b.conmonCreate(idM, bundle)
		}
		if err != nil {
			b.rep.fail("wait: conmon: %v", err)
			idM = ""
		} else {
			defer b.deleteC(s, b.runcConmon, idM, true)
		}
	}
	raw, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	shim := b.shimPid(idC)

	type waiter struct {
		name string
		argv []string
		cmd  *exec.Cmd
		cpu  time.Duration
		err  error
	}
	ws := []*waiter{
		{name: "crier: `crier event --event stopped` process", argv: b.crier.argv("event", "--event", "stopped", "--timeout", (d + 60*time.Second).String(), idC)},
		{name: "crier: Go client (Dial+Subscribe+Next) process", argv: []string{self, "-phase", "sub-go", "-sock", b.sockPath(idC)}},
		{name: "reference: pidfd + poll(2) process", argv: []string{self, "-phase", "pidfd", "-pid", strconv.Itoa(pid)}},
		{name: "runc: `runc state` every 10 ms (poller + its runc children)", argv: []string{self, "-phase", "poll", "-runtime", b.runc.bin, "-root", b.runc.root, "-id", idR, "-interval", "10ms"}},
		{name: "runc: `runc state` every 100 ms (poller + its runc children)", argv: []string{self, "-phase", "poll", "-runtime", b.runc.bin, "-root", b.runc.root, "-id", idR, "-interval", "100ms"}},
	}
	for _, w := range ws {
		w.cmd = exec.Command(w.argv[0], w.argv[1:]...)
		w.cmd.Stdin, w.cmd.Stdout, w.cmd.Stderr, w.cmd.Env = b.devnull, b.devnull, os.Stderr, b.env
		if err := w.cmd.Start(); err != nil {
			w.err = err
			w.cmd = nil
		}
	}
	defer func() {
		for _, w := range ws {
			if w.cmd != nil && w.cmd.ProcessState == nil {
				w.cmd.Process.Kill()
				w.cmd.Wait()
			}
		}
	}()
	if ws[0].cmd == nil || ws[1].cmd == nil {
		b.rep.fail("wait: subscribers: %v %v", ws[0].err, ws[1].err)
		return
	}
	if err := waitDialled(10*time.Second, ws[0].cmd.Process.Pid, ws[1].cmd.Process.Pid); err != nil {
		b.rep.fail("wait: %v", err)
		return
	}
	time.Sleep(20 * time.Millisecond)
	shim0, conmon0 := schedCPU(shim), schedCPU(conmonPid)
	t0 := time.Now()
	for _, start := range []func() result{
		func() result { return b.start(s, b.crier, idC) },
		func() result { return b.start(s, b.runc, idR) },
		func() result {
			if idM == "" {
				return result{}
			}
			return b.start(s, b.runcConmon, idM)
		},
	} {
		if r := start(); r.err != nil {
			b.rep.fail("wait: %v", r.err)
			return
		}
	}
	fmt.Printf("bench: waiting %v for the CPU cost of waiting\n", d)
	for _, w := range ws {
		if w.cmd == nil {
			continue
		}
		timer := time.AfterFunc(d+60*time.Second, func() { w.cmd.Process.Kill() })
		err := w.cmd.Wait()
		timer.Stop()
		if ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			w.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		if err != nil {
			w.err = err
		}
	}
	elapsed := time.Since(t0)
	shimCPU := time.Duration(schedCPU(shim) - shim0)
	var conmonCPU time.Duration
	if conmonPid > 0 {
		conmonCPU = time.Duration(schedCPU(conmonPid) - conmon0)
	}
	pct := func(c time.Duration) string {
		return num(100*float64(c)/float64(elapsed)) + " %"
	}
	t := sec.table("waiting for one exit, in its own process", fmt.Sprintf("CPU over the %s wait (ms)", elapsed.Round(time.Second)), "share of one core")
	for i, w := range ws {
		if w.err != nil {
			t.add(w.name, "failed: "+w.err.Error())
			continue
		}
		t.add(w.name, num(float64(w.cpu)/1e6), pct(w.cpu))
		switch i {
		case 0:
			b.rep.key["wait.cli.pct"] = 100 * float64(w.cpu) / float64(elapsed)
		case 1:
			b.rep.key["wait.go.pct"] = 100 * float64(w.cpu) / float64(elapsed)
		case 3:
			b.rep.key["wait.poll10.pct"] = 100 * float64(w.cpu) / float64(elapsed)
		}
	}
	if shim > 0 {
		t.add("(the idle crier shim itself, 2 subscribers)", num(float64(shimCPU)/1e6), pct(shimCPU))
	}
	if conmonPid > 0 {
		t.add("(the idle conmon itself)", num(float64(conmonCPU)/1e6), pct(conmonCPU))
	}
	note := ""
	if elapsed < 59*time.Second {
		note = " (shorter than the minute of a full run: start-up costs weigh more)"
	}
	sec.para("The containers lived %s%s. A waiter's CPU is its rusage (user + system) after it exits, start-up included, and for the pollers that of the `runc state` processes they ran; the supervisors' figures come from /proc/PID/task/*/schedstat over the same wait.", elapsed.Round(time.Millisecond), note)
	for _, id := range []string{idC, idR, idM} {
		os.RemoveAll(filepath.Join(b.work, "bundles", "x-"+id))
	}
	if idM != "" {
		b.deleteC(s, b.runcConmon, idM, true)
		b.conmonForget(conmonPid)
	}
}

// The helper roles of waitCost, each a process of its own whose rusage is
// the cost of waiting that way. Each prints CLOCK_MONOTONIC when it knows.

func subGo(sock string) error {
	ctx := context.Background()
	c, err := protocol.Dial(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		return err
	}
	t, err := waitStopped(ctx, c)
	if err != nil {
		return err
	}
	fmt.Println(t)
	return nil
}

func subPoll(bin, root, id string, interval time.Duration) error {
	for {
		out, err := exec.Command(bin, "--root", root, "state", id).Output()
		if err != nil {
			return err
		}
		if st, _ := status(out); st == "stopped" {
			fmt.Println(mono())
			return nil
		}
		time.Sleep(interval)
	}
}

func subPidfd(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			break
		}
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, mono())
	return w.Flush()
}
