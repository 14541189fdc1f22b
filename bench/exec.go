package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A runtime is one OCI runtime binary with its own state root.
type runtime struct {
	name string // crier, runc, crun, runc 1.5.3
	bin  string
	root string
}

func (r *runtime) argv(args ...string) []string {
	return append([]string{r.bin, "--root", r.root}, args...)
}

// B is the state of the measuring (inner) process.
type B struct {
	work, repo, prefix string
	quick              bool
	wait               time.Duration
	spec               []byte
	devnull            *os.File
	env                []string

	crier, runc, crun *runtime
	runc15            *runtime   // runc 1.5.3 (issue 14), nil when it could not be had
	runcConmon        *runtime   // runc as conmon drives it, its own root
	rts               []*runtime // crier, runc, crun: every section's
	cliRts            []*runtime // rts and runc 1.5.3: the lifecycle's and throughput's

	mu       sync.Mutex
	live     map[*runtime]map[string]bool // containers to delete at the end
	conmons  map[int]bool                 // conmon pids to kill at the end
	seq      atomic.Int64
	stopping atomic.Bool

	containerd *exec.Cmd
	ctrSock    string

	// exitOwn collects, per Go-client exit sample, the milliseconds from
	// the container's pidfd polling readable to the stopped event:
	// crier's own part of the exit's latency, the kernel's taken out.
	exitOwn []float64

	rep *report
}

var errStopping = errors.New("the benchmark is stopping")

// mono is CLOCK_MONOTONIC in nanoseconds, the clock the exit-stamp helper
// writes.
func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// newID returns a fresh container ID for rt; every ID starts with the run's
// prefix, which the sweep looks for.
func (b *B) newID(tag string) string {
	return fmt.Sprintf("%s-%s%d", b.prefix, tag, b.seq.Add(1))
}

func (b *B) track(rt *runtime, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live[rt] == nil {
		b.live[rt] = map[string]bool{}
	}
	b.live[rt][id] = true
}

func (b *B) untrack(rt *runtime, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.live[rt], id)
}

// scratch holds the stdout and stderr files of one goroutine's commands:
// files, not pipes, so that no copying goroutine runs while a command is
// timed and no pipe is held open by a shim that outlives its command.
type scratch struct{ out, err *os.File }

func (b *B) newScratch() *scratch {
	o, err1 := os.CreateTemp(filepath.Join(b.work, "scratch"), "out")
	e, err2 := os.CreateTemp(filepath.Join(b.work, "scratch"), "err")
	if err1 != nil || err2 != nil {
		panic(fmt.Sprint("scratch files: ", err1, err2))
	}
	return &scratch{o, e}
}

func (s *scratch) close() { s.out.Close(); s.err.Close() }

// result is one command's outcome: wall time, its own CPU time (rusage of
// the child: user + system, including the children it waited for) and
// stdout when it was not redirected.
type result struct {
	wall, cpu time.Duration
	out       []byte
	err       error
}

func (r result) ms() float64    { return float64(r.wall) / 1e6 }
func (r result) cpuMs() float64 { return float64(r.cpu) / 1e6 }

// exec runs argv to completion and times it. stdout, when not nil, is the
// command's standard output (and so that of a container it creates);
// otherwise the output is captured.
func (b *B) exec(s *scratch, argv []string, stdout *os.File, timeout time.Duration) result {
	return b.execEnv(s, argv, nil, stdout, timeout)
}

// execEnv is exec with env added to the benchmark's minimal environment.
func (b *B) execEnv(s *scratch, argv, env []string, stdout *os.File, timeout time.Duration) result {
	if b.stopping.Load() {
		return result{err: errStopping}
	}
	for _, f := range []*os.File{s.out, s.err} {
		f.Truncate(0)
		f.Seek(0, 0)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = b.devnull
	cmd.Stdout = s.out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = s.err
	cmd.Env = append(append([]string{}, b.env...), env...)
	t0 := mono()
	if err := cmd.Start(); err != nil {
		return result{err: err}
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	t1 := mono()
	timer.Stop()
	r := result{wall: time.Duration(t1 - t0)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if stdout == nil {
		s.out.Seek(0, 0)
		var buf bytes.Buffer
		buf.ReadFrom(s.out)
		r.out = buf.Bytes()
	}
	if err != nil {
		s.err.Seek(0, 0)
		var buf bytes.Buffer
		buf.ReadFrom(s.err)
		msg := strings.TrimSpace(buf.String())
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		r.err = fmt.Errorf("%s: %v: %s", strings.Join(shortArgv(argv), " "), err, msg)
	}
	return r
}

// shortArgv drops the --root of a runtime command line, for messages.
func shortArgv(argv []string) []string {
	out := []string{filepath.Base(argv[0])}
	for i := 1; i < len(argv); i++ {
		if argv[i] == "--root" && i+1 < len(argv) {
			i++
			continue
		}
		out = append(out, argv[i])
	}
	return out
}

// status returns the "status" and "pid" of a state command's output.
func status(out []byte) (string, int) {
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	json.Unmarshal(out, &st)
	return st.Status, st.Pid
}

// create, start, deleteC and state are the timed lifecycle commands.
func (b *B) create(s *scratch, rt *runtime, bundle, id string, stdout *os.File, extra ...string) result {
	b.track(rt, id)
	args := append([]string{"create", "--bundle", bundle}, extra...)
	return b.exec(s, rt.argv(append(args, id)...), stdout, 30*time.Second)
}

func (b *B) start(s *scratch, rt *runtime, id string) result {
	return b.exec(s, rt.argv("start", id), nil, 30*time.Second)
}

func (b *B) state(s *scratch, rt *runtime, id string) result {
	return b.exec(s, rt.argv("state", id), nil, 30*time.Second)
}

func (b *B) deleteC(s *scratch, rt *runtime, id string, force bool) result {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	r := b.exec(s, rt.argv(append(args, id)...), nil, 30*time.Second)
	if r.err == nil {
		b.untrack(rt, id)
	}
	return r
}

// waitExit waits for a started container to stop as its runtime's user
// must: crier with `crier event --event stopped`, runc and crun by calling
// `state` until it says stopped, back to back (the fastest a poller can
// learn it, at the highest CPU cost). It returns the time and CPU spent and
// the number of commands run.
func (b *B) waitExit(s *scratch, rt *runtime, id string) (wall, cpu time.Duration, calls int, err error) {
	if rt == b.crier {
		r := b.exec(s, rt.argv("event", "--event", "stopped", "--timeout", "30s", id), nil, 40*time.Second)
		return r.wall, r.cpu, 1, r.err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := b.state(s, rt, id)
		wall += r.wall
		cpu += r.cpu
		calls++
		if r.err != nil {
			return wall, cpu, calls, r.err
		}
		if st, _ := status(r.out); st == "stopped" {
			return wall, cpu, calls, nil
		}
	}
	return wall, cpu, calls, fmt.Errorf("%s %s did not stop within 30s", rt.name, id)
}

// cleanup deletes every container still tracked, kills the conmons and
// stops containerd. The sweep after it is the backstop.
func (b *B) cleanup() {
	b.stopping.Store(false) // let the deletes run
	s := b.newScratch()
	defer s.close()
	b.mu.Lock()
	live := map[*runtime][]string{}
	for rt, ids := range b.live {
		for id := range ids {
			live[rt] = append(live[rt], id)
		}
	}
	conmons := b.conmons
	b.conmons = map[int]bool{}
	b.mu.Unlock()
	for pid := range conmons {
		// Only if it still is one of ours, not a recycled pid.
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(cmdline, []byte(b.work)) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for rt, ids := range live {
		for _, id := range ids {
			b.deleteC(s, rt, id, true)
		}
	}
	b.stopContainerd()
	b.stopping.Store(true)
}

// sweep kills every process of this run (in the run's mount namespace, or
// with the work directory in its command line, or the prefix in its
// cgroup), removes the run's cgroups and unmounts whatever is mounted under
// the work directory.
func sweep(work, prefix string) {
	self := os.Getpid()
	mntns, _ := os.ReadFile(filepath.Join(work, "mntns"))
	// crier's shims re-exec themselves with a command line that names
	// neither: find them, and their containers' init, in the state files.
	states, _ := filepath.Glob(filepath.Join(work, "state", "crier", "*", "state.json"))
	for _, f := range states {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st struct {
			Pid       int    `json:"pid"`
			PidStart  uint64 `json:"pidStart"`
			ShimPid   int    `json:"shimPid"`
			ShimStart uint64 `json:"shimStart"`
		}
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		for _, p := range [][2]uint64{{uint64(st.ShimPid), st.ShimStart}, {uint64(st.Pid), st.PidStart}} {
			if p[0] > 1 && int(p[0]) != self && startTime(int(p[0])) == p[1] {
				unix.Kill(int(p[0]), unix.SIGKILL)
			}
		}
	}
	for round := 0; round < 20; round++ {
		found := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self || pid == 1 {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
			if bytes.Contains(cmdline, []byte(work)) || bytes.Contains(cg, []byte("/"+prefix)) || (len(mntns) > 0 && ns == string(mntns)) {
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && isZombie(st) {
					continue
				}
				unix.Kill(pid, unix.SIGKILL)
				found++
			}
		}
		if found == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Cgroups, deepest first.
	for round := 0; round < 10; round++ {
		var dirs []string
		ctrls, _ := os.ReadDir("/sys/fs/cgroup")
		for _, c := range ctrls {
			base := filepath.Join("/sys/fs/cgroup", c.Name())
			filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				if strings.Count(strings.TrimPrefix(p, base), "/") > 4 {
					return filepath.SkipDir
				}
				if strings.Contains(p+"/", "/"+prefix) {
					dirs = append(dirs, p)
				}
				return nil
			})
		}
		if len(dirs) == 0 {
			break
		}
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			unix.Rmdir(d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	unmountUnder(work)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			mps = append(mps, f[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}

// startTime is field 22 of /proc/PID/stat, or 0.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(string(f[19]), 10, 64)
	return v
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
