package test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// A shim that comes back (docs/architecture.md): when a container's shim
// dies, the next command that needs it starts a new one, which takes the
// container over by pid and start time and goes on from the journal.

// TestShimComesBack: after the shim of a running container is SIGKILLed,
// crier state brings a new one back: the same container process, still
// running, untouched; `crier event` replays the same history; a later exit
// is published with its exact status, and seq goes on where it stopped,
// never repeating; delete removes everything.
func TestShimComesBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	e.cliOK("start", id)
	e.cliOK("exec", "--exec-id", "before", id, "true")
	old := e.shimState(id)
	killShim(t, old)

	st := e.state(id)
	if st.Status != protocol.StatusRunning || st.Pid != old.Pid || !container.Alive(old.Pid, old.PidStart) {
		t.Fatalf("state after the shim died: %+v; want running, pid %d alive", st, old.Pid)
	}
	now := e.shimState(id)
	if now.ShimPid == old.ShimPid || !container.Alive(now.ShimPid, now.ShimStart) {
		t.Fatalf("no new shim: state names %d (the old one was %d)", now.ShimPid, old.ShimPid)
	}
	if now.Cgroup == nil || old.Cgroup == nil || fmt.Sprint(now.Cgroup.Paths) != fmt.Sprint(old.Cgroup.Paths) {
		t.Errorf("cgroups changed: %v, were %v", now.Cgroup, old.Cgroup)
	}
	sub := e.subscribe(id, true)
	defer sub.Close()
	var history []string
	for i := 0; i < 4; i++ {
		ev := nextOf(t, sub)
		history = append(history, fmt.Sprintf("%s/%d", ev.Type, ev.Seq))
	}
	if got, want := strings.Join(history, " "), "created/1 started/2 exec-started/3 exec-stopped/4"; got != want {
		t.Errorf("history from the new shim: %s, want %s", got, want)
	}
	e.cliOK("kill", id, "KILL")
	ev := nextOf(t, sub)
	wantExit(t, ev, 137, "SIGKILL")
	if ev.Seq != 5 {
		t.Errorf("stopped has seq %d, want 5: the seq goes on where it stopped", ev.Seq)
	}
	e.cliOK("delete", id)
	if ev := nextOf(t, sub); ev.Type != protocol.EventDeleted || ev.Seq != 6 {
		t.Errorf("after delete: %+v, want deleted with seq 6", ev)
	}
	e.assertGone(id)
}

// TestShimComesBackAfterUnseenExit: the container exits while no shim
// watches; the shim that comes back publishes stopped, saying plainly that
// the status is unknown, or giving it exactly if the process had not been
// reaped yet (the kernel then keeps it for the pidfd); never a guess.
func TestShimComesBackAfterUnseenExit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, old := e.startSleeper()
	killShim(t, old)
	fd := openPidfd(t, old.Pid)
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if !pidfdExited(fd, hangDeadline) {
		t.Fatalf("container process %d survived SIGKILL", old.Pid)
	}
	ev := decodeEvent(t, e.cliOK("event", "--event", protocol.EventStopped, id).stdout)
	switch {
	case ev.ExitUnknown:
		if ev.ExitStatus != nil || ev.Signal != "" {
			t.Errorf("stopped %+v: exitUnknown with a status", ev)
		}
	default:
		wantExit(t, ev, 137, "SIGKILL")
	}
	if ev.Seq != 3 {
		t.Errorf("stopped has seq %d, want 3", ev.Seq)
	}
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("state %+v, want stopped", st)
	}
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestShimComesBackStopped: a shim killed after it published stopped
// leaves the exit on disk; the new shim serves it as it was (state, the
// history) and the delete.
func TestShimComesBackStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sh", "-c", "exit 17"}, nil))
	e.cliOK("start", id)
	e.waitStopped(id)
	killShim(t, e.shimState(id))
	ev := decodeEvent(t, e.cliOK("event", "--event", protocol.EventStopped, id).stdout)
	wantExit(t, ev, 17, "")
	if st := e.state(id); st.ExitStatus == nil || *st.ExitStatus != 17 {
		t.Errorf("state %+v, want exit 17", st)
	}
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestShimComesBackOnce: commands that find the shim dead at the same
// moment bring back one shim between them, and all of them succeed.
func TestShimComesBackOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, st := e.startSleeper()
	killShim(t, st)
	var wg sync.WaitGroup
	results := make([]cliResult, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.cliRun("event", "--event", protocol.EventStarted, id)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || decodeEvent(t, r.stdout).Type != protocol.EventStarted {
			t.Errorf("command %d: exit %d: %s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	if n := shimsFor(t, id); n != 1 {
		t.Errorf("%d shims serve %s, want 1", n, id)
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
}

// shimsFor counts the crier-shim processes whose command line names id.
func shimsFor(t *testing.T, id string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range entries {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "crier-shim") && strings.Contains(string(b), "\x00"+id+"\x00") {
			n++
		}
	}
	return n
}

// TestShimComesBackSupervised: under a reaping supervisor, a shim killed
// while the container runs is replaced; a subscriber that connects
// afterwards gets the whole history, then stopped with the exact status
// the supervisor reaped, read from the pidfd.
func TestShimComesBackSupervised(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	h, pid := e.startSupervisor(id, e.bundle([]string{"sleep", "1000"}, nil), nil, nil)
	h.start()
	killShim(t, e.shimState(id))
	if st := e.state(id); st.Status != protocol.StatusRunning || st.Pid != pid {
		t.Fatalf("state after the shim died: %+v, want running pid %d", st, pid)
	}
	sub := e.subscribe(id, true)
	defer sub.Close()
	for _, want := range []string{protocol.EventCreated, protocol.EventStarted} {
		if ev := nextOf(t, sub); ev.Type != want {
			t.Fatalf("history: %+v, want %s", ev, want)
		}
	}
	e.cliOK("kill", id, "KILL")
	if got := h.reaped(); got != "reaped signal 9" {
		t.Errorf("supervisor's wait4: %q, want signal 9", got)
	}
	ev := nextOf(t, sub)
	wantExit(t, ev, 137, "SIGKILL")
	if ev.Seq != 3 {
		t.Errorf("stopped has seq %d, want 3", ev.Seq)
	}
	e.cliOK("delete", id)
	e.assertGone(id)
}
