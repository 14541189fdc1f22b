package test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// The shim re-executes into its serving image once idle (shim/idle.go),
// not as soon as the container is created. What it holds must go over:
// subscribers keep their streams with every event once, the OOM watch
// keeps watching, exec ids keep counting, and the shim keeps its pid.

// waitServing waits until the shim pid serves from its serving image.
func waitServing(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(hangDeadline)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			t.Fatalf("shim %d: %v", pid, err)
		}
		if strings.Contains(string(b), "--serve") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shim %d never re-executed to serve: %q", pid, b)
		}
		// The shim becomes idle on a timer, which nothing outside it
		// can wait on.
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShimReexecKeepsSubscribersAndOOMWatch: a subscriber connected since
// created, through the re-exec, gets every event once and in order; an
// exec'd process killed by the OOM killer after the re-exec gets its oom
// event and an oomKilled exec-stopped (the watch went over with its
// descriptors); the made-up exec ids go on counting; and the shim is the
// same process throughout.
func TestShimReexecKeepsSubscribersAndOOMWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.oomBundle([]string{"sleep", "1000"}))
	shimPid := e.shimState(id).ShimPid
	sub := e.subscribe(id, true)
	defer sub.Close()
	e.cliOK("start", id)
	// An exec before the re-exec takes the first made-up id.
	if r := e.cliRun("exec", id, "true"); r.code != 0 {
		t.Fatalf("exec true: %d %s", r.code, r.stderr)
	}
	waitServing(t, shimPid)

	r := e.cliRun("exec", id, "sh", "-c", oomAlloc)
	if r.code != 137 {
		t.Errorf("exec of the allocator: exit %d, want 137: %s", r.code, r.stderr)
	}
	// On cgroup v1 the OOM killer may take a second victim while its
	// first exits, and the init, the only other process, may be it: the
	// container has stopped already then.
	if r := e.cliRun("kill", id, "KILL"); r.code != 0 && !strings.Contains(r.stderr, "container not running") {
		t.Fatalf("kill KILL: exit %d: %s", r.code, r.stderr)
	}
	var evs []protocol.Event
	for len(evs) == 0 || evs[len(evs)-1].Type != protocol.EventStopped {
		evs = append(evs, nextOf(t, sub))
	}
	got := strings.Join(typesOf(evs), ",")
	// On cgroup v1 one kill may notify twice: oom may repeat.
	if !strings.HasPrefix(got, "created,started,exec-started,exec-stopped,exec-started,oom,") || !strings.Contains(got, ",exec-stopped,") {
		t.Fatalf("events %s, want created, started, an exec, then exec-started, oom, exec-stopped, and stopped", got)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: seqs %v, want 1, 2, 3 ...", i, ev.Seq, seqsOf(evs))
		}
	}
	first, second := evs[2], evs[4]
	if first.ExecID != "exec-1" || second.ExecID != "exec-2" {
		t.Errorf("exec ids %q and %q, want exec-1 and exec-2 (counting on across the re-exec)", first.ExecID, second.ExecID)
	}
	var stopped protocol.Event
	for _, ev := range evs[5:] {
		if ev.Type == protocol.EventExecStopped {
			stopped = ev
		}
	}
	if !stopped.OOMKilled || stopped.ExitStatus == nil || *stopped.ExitStatus != 137 || stopped.ExecID != "exec-2" {
		t.Errorf("exec-stopped %+v, want exec-2's, 137 and oomKilled", stopped)
	}
	if st := e.shimState(id); st.ShimPid != shimPid {
		t.Errorf("shim pid %d after the re-exec, want %d", st.ShimPid, shimPid)
	}
	e.cliOK("delete", id)
	if ev := nextOf(t, sub); ev.Type != protocol.EventDeleted {
		t.Errorf("after delete: %+v, want deleted", ev)
	}
}

// TestShimStaysWhileRequestPending: a client that has connected and not
// yet sent its request holds the create image (the connection would be
// lost with it); once it has its answer and hangs up, the shim
// re-executes, and serves.
func TestShimStaysWhileRequestPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	shimPid := e.shimState(id).ShimPid
	c := e.dial(id)
	// Several idle periods pass while the connection is open.
	time.Sleep(time.Second)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(shimPid) + "/cmdline")
	if err != nil || strings.Contains(string(b), "--serve") {
		t.Fatalf("shim re-executed with a client connected (%q, %v)", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	st, err := c.State(ctx)
	if err != nil || st.Status != protocol.StatusCreated {
		t.Fatalf("state over the waiting connection: %+v, %v", st, err)
	}
	c.Close()
	waitServing(t, shimPid)
	e.cliOK("start", id)
	e.cliOK("delete", "--force", id)
}
