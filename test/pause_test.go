package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// crier pause and resume: the container's cgroup frozen and thawed (the v1
// freezer on this hybrid host; cgroup.freeze in TestPauseCgroupV2).

// counterScript counts as fast as it can into /counter, without forking:
// a frozen container's count stands still.
const counterScript = `i=0; while :; do i=$((i+1)); echo $i > /counter; done`

// counterTarget creates and starts a container that counts, and returns
// its ID and the host path of its counter.
func counterTarget(t *testing.T, e *env) (string, string) {
	t.Helper()
	id := e.id()
	b := e.bundle([]string{"sh", "-c", counterScript}, func(s *specs.Spec) { s.Root.Readonly = false })
	e.create(id, b)
	e.cliOK("start", id)
	counter := filepath.Join(b, "rootfs", "counter")
	waitAdvances(t, counter)
	return id, counter
}

// count reads the counter; "" while it is being rewritten.
func count(counter string) string {
	b, _ := os.ReadFile(counter)
	return strings.TrimSpace(string(b))
}

// waitAdvances waits until the counter changes from what it reads now.
func waitAdvances(t *testing.T, counter string) {
	t.Helper()
	was := count(counter)
	for deadline := time.Now().Add(hangDeadline); time.Now().Before(deadline); {
		if now := count(counter); now != was && now != "" {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the counter stays at %q: the container does not run", was)
}

// wantStandsStill checks that the counter does not move while the test
// watches it for a while (a negative can only be watched for a time; the
// freezer state checked beside it is the kernel's word).
func wantStandsStill(t *testing.T, counter string) {
	t.Helper()
	was := count(counter)
	time.Sleep(200 * time.Millisecond)
	if now := count(counter); now != was {
		t.Errorf("the counter went from %q to %q in a paused container", was, now)
	}
}

// freezerState reads the container's v1 freezer.state.
func (e *env) freezerState(id string) string {
	e.t.Helper()
	dir, ok := e.shimState(id).Cgroup.Paths["freezer"]
	if !ok {
		e.t.Skip("no v1 freezer on this host")
	}
	return readFile(e.t, filepath.Join(dir, "freezer.state"))
}

// wantStatus checks the status crier state and crier list show.
func (e *env) wantStatus(id string, want protocol.Status) {
	e.t.Helper()
	if st := e.state(id); st.Status != want {
		e.t.Errorf("state says %s, want %s", st.Status, want)
	}
	for _, line := range strings.Split(e.cliOK("list").stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == id && f[2] != string(want) {
			e.t.Errorf("list says %q, want status %s", line, want)
		}
	}
}

// TestPauseResume: pause freezes every process of a running container
// (the freezer reads FROZEN, the init is in the refrigerator, its count
// stands still) and shows it paused; resume lets it count again. A second
// pause, and a resume of a running container, are refused with runc's
// words; a subscriber sees paused then resumed, in order, and `crier event`
// filters on the new types.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, counter := counterTarget(t, e)
	sub := e.subscribe(id, true)
	pid := e.state(id).Pid

	e.cliOK("pause", id)
	if got := e.freezerState(id); got != "FROZEN" {
		t.Errorf("freezer.state %q after pause, want FROZEN", got)
	}
	// A task in the v1 refrigerator sleeps uninterruptibly.
	if got := procState(pid); got != 'D' {
		t.Errorf("init's state %q while paused, want D", got)
	}
	e.wantStatus(id, protocol.StatusPaused)
	wantStandsStill(t, counter)
	wantCLIError(t, "second pause", e.cliRun("pause", id), "is already paused")

	e.cliOK("resume", id)
	if got := e.freezerState(id); got != "THAWED" {
		t.Errorf("freezer.state %q after resume, want THAWED", got)
	}
	e.wantStatus(id, protocol.StatusRunning)
	waitAdvances(t, counter)
	wantCLIError(t, "resume of a running container", e.cliRun("resume", id), "container not paused")

	var seen []string
	for _, typ := range []string{"created", "started", "paused", "resumed"} {
		ev := next(t, sub, typ)
		seen = append(seen, ev.Type)
		if ev.Seq != uint64(len(seen)) || (typ != "created" && ev.Pid != pid) {
			t.Errorf("event %+v: want seq %d and pid %d", ev, len(seen), pid)
		}
	}
	for _, typ := range []string{"paused", "resumed"} {
		ev := decodeEvent(t, e.cliOK("event", "--event", typ, id).stdout)
		if ev.Type != typ {
			t.Errorf("crier event --event %s printed %+v", typ, ev)
		}
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
}

// TestPauseLifecycleRefusals: what pause and resume do outside running,
// as runc: a created container can be paused (start is then refused, and
// resume returns it to created); a stopped one cannot be paused or resumed.
func TestPauseLifecycleRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	out := e.create(id, e.bundle([]string{"echo", "ran"}, nil))
	e.cliOK("pause", id)
	e.wantStatus(id, protocol.StatusPaused)
	wantCLIError(t, "start of a paused container", e.cliRun("start", id), "is paused, not created")
	e.cliOK("resume", id)
	e.wantStatus(id, protocol.StatusCreated)
	e.cliOK("start", id)
	e.waitStopped(id)
	if got := readFile(t, out); got != "ran" {
		t.Errorf("container printed %q, want ran", got)
	}
	wantCLIError(t, "pause of a stopped container", e.cliRun("pause", id), "container not running")
	wantCLIError(t, "resume of a stopped container", e.cliRun("resume", id), "container not paused")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestPauseKill: SIGKILL to a paused container kills it, as runc's kill
// does (the cgroup is thawed after the signal, or the v1 freezer would hold
// the dying task): it stops with 137, after a resumed event.
func TestPauseKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := counterTarget(t, e)
	e.cliOK("pause", id)
	sub := e.subscribe(id, false)
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventResumed)
	wantExit(t, next(t, sub, protocol.EventStopped), 137, "SIGKILL")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestPauseForceDelete: delete --force of a paused container kills and
// removes it (no process, cgroup or state left), both through its shim and,
// with the shim dead, by the CLI alone. Through the shim a subscriber sees
// paused, stopped (137), deleted.
func TestPauseForceDelete(t *testing.T) {
	t.Parallel()
	for _, deadShim := range []bool{false, true} {
		t.Run(fmt.Sprintf("dead shim %v", deadShim), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id, _ := counterTarget(t, e)
			pid := e.state(id).Pid
			pidfd := openPidfd(t, pid)
			e.cliOK("pause", id)
			if deadShim {
				killShim(t, e.shimState(id))
				e.wantStatus(id, protocol.StatusPaused)
				e.cliOK("delete", "--force", id)
			} else {
				sub := e.subscribe(id, true)
				e.cliOK("delete", "--force", id)
				res := collect(sub, nil)
				checkStream(t, "subscriber", res, []string{"created", "started", "paused", "stopped", "deleted"})
				wantExit(t, res.events[3], 137, "SIGKILL")
			}
			if !pidfdExited(pidfd, 0) {
				t.Errorf("the container's process %d outlived delete --force", pid)
			}
			e.assertGone(id)
		})
	}
}

// TestPauseExec: exec into a paused container is refused with runc's words;
// with --ignore-paused it is accepted, and its process, born into the
// frozen cgroup, runs once the container is resumed.
func TestPauseExec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := execTarget(t, e, nil)
	e.cliOK("pause", id)
	r := e.cliRun("exec", id, "true")
	wantCLIError(t, "exec into a paused container", r, "cannot exec in a paused container")
	if r.code != 255 {
		t.Errorf("refused exec exit %d, want 255", r.code)
	}

	freezer := e.shimState(id).Cgroup.Paths["freezer"]
	before := cgroupProcs(t, freezer)
	p := e.cliStart(nil, "exec", "--ignore-paused", id, "sh", "-c", "echo in; exit 5")
	// The exec stage is born frozen into the container's cgroup.
	for deadline := time.Now().Add(hangDeadline); len(cgroupProcs(t, freezer)) <= len(before); {
		if time.Now().After(deadline) {
			t.Fatalf("no process of the exec in %s: %v", freezer, cgroupProcs(t, freezer))
		}
		time.Sleep(time.Millisecond)
	}
	if p.cmd.ProcessState != nil {
		t.Fatalf("exec --ignore-paused returned while the container is paused")
	}
	e.cliOK("resume", id)
	res := p.wait()
	if res.code != 5 || res.stdout != "in\n" {
		t.Errorf("exec --ignore-paused: exit %d, stdout %q; want 5, \"in\\n\" (stderr %q)", res.code, res.stdout, res.stderr)
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
}

func cgroupProcs(t *testing.T, dir string) []string {
	t.Helper()
	return strings.Fields(readFile(t, filepath.Join(dir, "cgroup.procs")))
}

// TestPauseSupervised: under a reaping supervisor (supervisor mode) pause
// and resume work the same, and a paused container killed with SIGKILL is
// reaped by the supervisor with the signal.
func TestPauseSupervised(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", counterScript}, func(s *specs.Spec) { s.Root.Readonly = false })
	h, pid := e.startSupervisor(id, b, nil, nil)
	h.start()
	if !e.shimState(id).Supervised {
		t.Fatal("state.json does not say supervised")
	}
	counter := filepath.Join(b, "rootfs", "counter")
	waitAdvances(t, counter)
	e.cliOK("pause", id)
	if got := e.freezerState(id); got != "FROZEN" {
		t.Errorf("freezer.state %q after pause, want FROZEN", got)
	}
	e.wantStatus(id, protocol.StatusPaused)
	wantStandsStill(t, counter)
	e.cliOK("resume", id)
	waitAdvances(t, counter)
	e.cliOK("pause", id)
	e.cliOK("kill", id, "KILL")
	if got := h.reaped(); got != "reaped signal 9" {
		t.Errorf("supervisor's wait4: %q, want reaped signal 9", got)
	}
	if processAlive(pid) {
		t.Errorf("container process %d alive after kill", pid)
	}
	wantExit(t, decodeEvent(t, e.stoppedEvent(id)), 137, "SIGKILL")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestPauseCgroupV2: on a host that shows only cgroup v2 (a private mount
// namespace with the cgroup2 hierarchy alone, as TestPureCgroupV2), pause
// writes cgroup.freeze and returns once cgroup.events says frozen 1, and
// resume thaws it.
func TestPauseCgroupV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, nil)
	script := `set -e
crier() { "$CRIER" --root "$ROOT" "$@"; }
crier create --bundle "$BUNDLE" "$ID" >/dev/null 2>&1 </dev/null
crier start "$ID"
crier pause "$ID"
echo "paused: $(crier state "$ID" | grep '"status"')"
echo "frozen: $(grep frozen /sys/fs/cgroup/$ID/cgroup.events)"
echo "freeze: $(cat /sys/fs/cgroup/$ID/cgroup.freeze)"
crier resume "$ID"
echo "resumed: $(crier state "$ID" | grep '"status"')"
echo "thawed: $(grep frozen /sys/fs/cgroup/$ID/cgroup.events)"
crier pause "$ID"
crier delete --force "$ID"
echo "deleted: $(ls /sys/fs/cgroup/$ID 2>&1 >/dev/null | grep -c 'No such file')"`
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec sh -c "$0"`, script)
	cmd.Env = append(os.Environ(), "CRIER="+suite.crier, "ROOT="+e.root, "BUNDLE="+b, "ID="+id)
	out, err := cmd.CombinedOutput()
	t.Logf("in a cgroup-v2-only mount namespace: %v\n%s", err, out)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		`paused:   "status": "paused",`,
		"frozen: frozen 1",
		"freeze: 1",
		`resumed:   "status": "running",`,
		"thawed: frozen 0",
		"deleted: 1",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/unified", id)); !os.IsNotExist(err) {
		t.Errorf("the container's v2 cgroup is left: %v", err)
	}
}
