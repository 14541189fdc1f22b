//go:build clients

package clients

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The scenarios of issue 10, for each client. Each client runs in its own
// sandbox, the three in parallel; a client's scenarios run one after the
// other, and a scenario's steps are subtests, so that the report says
// which step failed (or hung) and the later steps still run.

var clientKinds = []struct {
	name  string
	start func(*testing.T) client
}{
	{"podman", startPodman},
	{"containerd", startContainerd},
	{"docker", startDocker},
}

func TestClients(t *testing.T) {
	for _, k := range clientKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			c := k.start(t)
			t.Run("run_attached", func(t *testing.T) { runAttached(t, c) })
			t.Run("detached_lifecycle", func(t *testing.T) { detachedLifecycle(t, c) })
			t.Run("exits_by_itself", func(t *testing.T) { exitsByItself(t, c) })
			t.Run("run_tty", func(t *testing.T) { runTTY(t, c) })
			t.Run("kill_rm_force", func(t *testing.T) { killRemoveForce(t, c) })
			t.Run("top_stats", func(t *testing.T) { topAndStats(t, c) })
			if k.name == "podman" {
				t.Run("pid_container", func(t *testing.T) { joinPidNamespace(t, c) })
			}
		})
	}
}

// runAttached: the container's stdout reaches the client's, and its exit
// code is the client's.
func runAttached(t *testing.T, c client) {
	r := c.run(t, runOpts{args: []string{"sh", "-c", "echo hello-from-the-container; exit 3"}})
	if r.code != 3 || !strings.Contains(r.stdout, "hello-from-the-container") {
		t.Fatalf("want exit 3 and the container's line on stdout; got %v", r)
	}
}

// detachedLifecycle: run -d, then exec (exit 5), exec -t, pause and
// unpause, stop of a process that ignores SIGTERM, and rm.
func detachedLifecycle(t *testing.T, c client) {
	// As pid 1 of its namespace, sleep ignores SIGTERM: it has no handler.
	name := c.runDetached(t, runOpts{args: []string{"sleep", "1000"}})
	id := c.id(t, name)
	t.Run("supervised", func(t *testing.T) { wantSupervised(t, c, name, id) })
	t.Run("exec_exit_5", func(t *testing.T) {
		r := c.exec(t, name, false, "sh", "-c", "echo from-exec; exit 5")
		if r.code != 5 || !strings.Contains(r.stdout, "from-exec") {
			t.Fatalf("want exit 5 and the exec's line on stdout; got %v", r)
		}
	})
	t.Run("exec_tty", func(t *testing.T) {
		r := c.exec(t, name, true, "sh", "-c", "tty; exit 6")
		if r.code != 6 || !strings.Contains(r.stdout, "/dev/pts/") {
			t.Fatalf("want exit 6 and a /dev/pts/N terminal; got %v", r)
		}
	})
	t.Run("pause_unpause", func(t *testing.T) { pauseUnpause(t, c, name) })
	t.Run("stop", func(t *testing.T) {
		defer watchCrier(t, c, id).wantStopped(t, 137)
		grace := 2 * time.Second
		begin := time.Now()
		c.stop(t, name, grace)
		if took := time.Since(begin); took < grace {
			t.Errorf("stop took %v, less than the %v grace: SIGTERM was not ignored", took, grace)
		}
		if code := c.exitCode(t, name); code != 137 {
			t.Errorf("exit code after stop: got %d, want 137 (SIGKILL)", code)
		}
	})
	t.Run("rm", func(t *testing.T) {
		c.remove(t, name, false)
		wantRemoved(t, c, name, id)
	})
}

// wantSupervised checks the contract the clients rely on: the pid the
// client has is the container's process, in the container's namespaces
// and cgroup, the runtime's state says the same pid, and its parent is
// the client's supervisor, which reaps it.
func wantSupervised(t *testing.T, c client, name, id string) {
	sb := c.base()
	pid := c.pid(t, name)
	if pid <= 0 {
		t.Fatalf("%s reports pid %d for %s", sb.kind, pid, name)
	}
	st, ok := sb.runtimeState(t, id)
	if !ok {
		t.Fatalf("%s state %s (root %q): the runtime does not know the container", suite.runtime, id, sb.rtRoot)
	}
	if st.Pid != pid || st.Status != "running" {
		t.Errorf("runtime state: pid %d %s; the client has pid %d", st.Pid, st.Status, pid)
	}
	_, ppid, comm, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if comm != "sleep" {
		t.Errorf("pid %d is %q, not the container's sleep", pid, comm)
	}
	if _, _, pcomm, _ := procStat(ppid); pcomm != sb.supervisor {
		t.Errorf("the container's parent is %d %q (%s), not %s: the supervisor cannot reap it", ppid, pcomm, cmdline(ppid), sb.supervisor)
	}
	if sb.shimSocket != nil {
		// The leak checks look for it there: make sure that is right.
		if _, err := os.Stat(sb.shimSocket(id)); err != nil {
			t.Errorf("no shim socket where containerd 1.6 puts it: %v", err)
		}
	}
	if nsOf(pid, "pid") == nsOf(os.Getpid(), "pid") {
		t.Errorf("pid %d is in the host's pid namespace", pid)
	}
	dir, err := cgroupDir(pid, "pids")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dir, sb.trace.cgroupParent) {
		t.Errorf("pid %d is in cgroup %s, not under /%s", pid, dir, sb.trace.cgroupParent)
	}
}

// pauseUnpause checks that pause freezes the container's cgroup and that
// unpause thaws it, and that the client sees both.
func pauseUnpause(t *testing.T, c client, name string) {
	freezer, err := cgroupDir(c.pid(t, name), "freezer")
	if err != nil {
		t.Fatal(err)
	}
	c.pause(t, name)
	if s := c.status(t, name); s != "paused" {
		t.Errorf("status after pause: %q, want paused", s)
	}
	if s := readTrim(t, filepath.Join(freezer, "freezer.state")); s != "FROZEN" {
		t.Errorf("%s/freezer.state after pause: %s", freezer, s)
	}
	c.unpause(t, name)
	if s := c.status(t, name); s != "running" {
		t.Errorf("status after unpause: %q, want running", s)
	}
	if s := readTrim(t, filepath.Join(freezer, "freezer.state")); s != "THAWED" {
		t.Errorf("%s/freezer.state after unpause: %s", freezer, s)
	}
	if r := c.exec(t, name, false, "true"); r.code != 0 {
		t.Errorf("exec after unpause: %v", r)
	}
}

// wantRemoved checks that the client and the runtime have forgotten the
// container.
func wantRemoved(t *testing.T, c client, name, id string) {
	t.Helper()
	sb := c.base()
	if c.exists(t, name) {
		t.Errorf("%s still lists %s after rm", sb.kind, name)
	}
	if st, ok := sb.runtimeState(t, id); ok {
		t.Errorf("the runtime still has %s after rm: %+v", id, st)
	}
	if _, err := os.Stat(sb.stateDir(id)); err == nil {
		t.Errorf("the runtime's state %s is left after rm", sb.stateDir(id))
	}
}

// exitsByItself: a detached container exits with 7 on its own; the
// client's wait and its inspect both report 7.
func exitsByItself(t *testing.T, c client) {
	sync := filepath.Join(c.base().dir, "sync-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(sync, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(sync, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// It waits for the test on the fifo, so that the test can watch it
	// exit: the read ends when the test closes the fifo.
	name := c.runDetached(t, runOpts{volume: sync, args: []string{"sh", "-c", "read x < /sync/go; exit 7"}})
	id := c.id(t, name)
	defer watchCrier(t, c, id).wantStopped(t, 7)
	wait := c.startWait(t, name)
	release(t, fifo)
	if code := wait(t); code != 7 {
		t.Errorf("wait: exit code %d, want 7", code)
	}
	if code := c.exitCode(t, name); code != 7 {
		t.Errorf("inspect: exit code %d, want 7", code)
	}
	c.remove(t, name, false)
	wantRemoved(t, c, name, id)
}

// release opens the fifo for writing and closes it, which ends the read
// of the container blocked on it. The open waits for that reader.
func release(t *testing.T, fifo string) {
	t.Helper()
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(*stepFlag):
		// Be the reader ourselves, so that the open above returns.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			<-opened
			f.Close()
		}
		t.Fatalf("the container did not open %s in %v", fifo, *stepFlag)
	}
}

// runTTY: run -t from a terminal gives the container a terminal of its
// own, and the exit code still passes through.
func runTTY(t *testing.T, c client) {
	r := c.run(t, runOpts{tty: true, args: []string{"sh", "-c", "tty; exit 4"}})
	if r.code != 4 || !strings.Contains(r.stdout, "/dev/pts/") {
		t.Fatalf("want exit 4 and a /dev/pts/N terminal; got %v", r)
	}
}

// killRemoveForce: kill ends the container with SIGKILL (137), and rm -f
// removes it.
func killRemoveForce(t *testing.T, c client) {
	name := c.runDetached(t, runOpts{args: []string{"sleep", "1000"}})
	id := c.id(t, name)
	pid := c.pid(t, name)
	defer watchCrier(t, c, id).wantStopped(t, 137)
	wait := c.startWait(t, name)
	c.kill(t, name)
	if code := wait(t); code != 137 {
		t.Errorf("wait after kill: exit code %d, want 137", code)
	}
	c.remove(t, name, true)
	wantRemoved(t, c, name, id)
	if st, _, _, err := procStat(pid); err == nil && st != 'Z' {
		t.Errorf("the container's process %d is still there after kill and rm -f: %s", pid, cmdline(pid))
	}
}

// topAndStats: top (ps) lists the container's processes, and stats count
// those of the container's cgroup.
func topAndStats(t *testing.T, c client) {
	name := c.runDetached(t, runOpts{args: []string{"sh", "-c", "sleep 1000 & sleep 1000 & sleep 1000 & exec sleep 1000"}})
	pid := c.pid(t, name)
	// The three children exist once the shell has become the fourth sleep.
	waitFor(t, "the container's shell to exec sleep", func() bool { return cmdline(pid) == "sleep 1000" })
	dir, err := cgroupDir(pid, "pids")
	if err != nil {
		t.Fatal(err)
	}
	procs := cgroupProcs(t, dir)
	if len(procs) != 4 {
		t.Fatalf("%s holds %d processes %v, want the 4 sleeps", dir, len(procs), procs)
	}
	if n := readTrim(t, filepath.Join(dir, "pids.current")); n != "4" {
		t.Errorf("%s/pids.current: %s, want 4", dir, n)
	}
	t.Run("top", func(t *testing.T) { wantTop(t, c, name, procs) })
	t.Run("stats", func(t *testing.T) {
		if n := c.statsPids(t, name); n != 4 {
			t.Errorf("stats: %d pids, want the 4 of %s", n, dir)
		}
	})
	discard(t, c, name)
}

// wantTop checks the client's list of the container's processes: podman's
// and docker's list commands, ctr's lists pids (the host's).
func wantTop(t *testing.T, c client, name string, procs []int) {
	out := c.top(t, name)
	rows := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if len(rows) != len(procs) {
		t.Fatalf("top lists %d processes, want %d:\n%s", len(rows), len(procs), out)
	}
	if c.base().kind != "containerd" {
		for _, row := range rows {
			if !strings.Contains(row, "sleep 1000") {
				t.Errorf("top lists a process that is not one of the sleeps: %s", row)
			}
		}
		return
	}
	var pids []int
	for _, row := range rows {
		n, _ := strconv.Atoi(strings.Fields(row)[0])
		pids = append(pids, n)
	}
	sort.Ints(pids)
	if !equalInts(pids, procs) {
		t.Errorf("ctr task ps lists %v; the container's cgroup holds %v", pids, procs)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// joinPidNamespace: a container run with --pid container:X is in X's pid
// namespace, not the host's.
func joinPidNamespace(t *testing.T, c client) {
	x := c.runDetached(t, runOpts{args: []string{"sleep", "1000"}})
	xns := nsOf(c.pid(t, x), "pid")
	if xns == "" || xns == nsOf(os.Getpid(), "pid") {
		t.Fatalf("%s's pid namespace is %q, the host's is %q", x, xns, nsOf(os.Getpid(), "pid"))
	}
	r := c.run(t, runOpts{pidOf: x, args: []string{"sh", "-c", "readlink /proc/self/ns/pid; cat /proc/1/cmdline; echo"}})
	if r.code != 0 || !strings.Contains(r.stdout, xns) || !strings.Contains(r.stdout, "sleep") {
		t.Errorf("want %s's namespace %s, with its sleep as pid 1; got %v", x, xns, r)
	}
	discard(t, c, x)
}

// discard kills and removes a container that a scenario has done with:
// rm -f alone would first wait for podman's 10 s stop timeout, as sleep
// ignores SIGTERM.
func discard(t *testing.T, c client, name string) {
	t.Helper()
	c.kill(t, name)
	c.remove(t, name, true)
}

// crierWatch is `crier event --monitor` on a container, subscribed while
// the client supervises it; nil when the runtime is not crier.
type crierWatch struct{ l *lines }

// watchCrier subscribes to the container's events through crier's CLI,
// with the root the client gave crier, and returns once the subscription
// has replayed the container's start.
func watchCrier(t *testing.T, c client, id string) *crierWatch {
	t.Helper()
	if !suite.crier {
		return nil
	}
	sb := c.base()
	rt := tool{bin: suite.runtime, dir: sb.dir}
	if sb.rtRoot != "" {
		rt.args = []string{"--root", sb.rtRoot}
	}
	l := rt.startLines(t, 4**stepFlag, "event", "--monitor", id)
	l.next(t, "crier's started event", func(s string) bool { return strings.Contains(s, `"type":"started"`) })
	return &crierWatch{l: l}
}

// wantStopped checks that crier's stopped event has the exit status the
// client reports. It is deferred by the scenarios, so that what crier says
// is reported even when the client failed or hung: it never stops the
// test itself.
func (w *crierWatch) wantStopped(t *testing.T, status int) {
	// No t.Helper: deferred, the caller's line would be Goexit's.
	if w == nil {
		return
	}
	defer w.l.stop()
	line, ok := w.l.within(*stepFlag, func(s string) bool { return strings.Contains(s, `"type":"stopped"`) })
	if !ok {
		t.Errorf("crier event --monitor: no stopped event in %v", *stepFlag)
		return
	}
	var ev struct {
		ExitStatus *int `json:"exitStatus"`
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ExitStatus == nil {
		t.Errorf("crier's stopped event %s: no exit status (%v)", line, err)
		return
	}
	if *ev.ExitStatus != status {
		t.Errorf("crier's stopped event says exit status %d, want %d as the client: %s", *ev.ExitStatus, status, line)
		return
	}
	t.Logf("crier event: %s", line)
}
