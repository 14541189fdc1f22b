package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// TestSeedWorkflow is the README's first example: event runs before the
// container (and even its state root) exists, start follows created, and a
// subscriber that is not the parent learns the exit status.
func TestSeedWorkflow(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "echo hi; exit 17"}, nil)

	waitCreated := e.cliStart(nil, "event", "--event", "created", id)
	out := e.create(id, b)
	ev := decodeEvent(t, waitCreated.waitOK().stdout)
	if ev.Type != protocol.EventCreated || ev.ID != id || ev.Seq != 1 || ev.Pid <= 0 {
		t.Errorf("created event = %+v", ev)
	}
	e.cliOK("start", id)
	wantExit(t, decodeEvent(t, e.cliOK("event", "--event", "stopped", id).stdout), 17, "")
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("status after exit = %q", st.Status)
	}
	e.cliOK("delete", id)
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "hi" {
		t.Errorf("container stdout = %q, want hi", b)
	}
	e.wantNoStateDir(id)
}

// TestShimHoldsMountsUntilStopped: the shim holds the container's mount
// namespace while the container runs, so that the init's exit does not
// wait for its teardown (container.Container.HoldMounts), across its
// re-execution into the serving image too, and lets it go once the
// stopped event is out: nothing of the container's stays mounted after.
func TestShimHoldsMountsUntilStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, st := e.startSleeper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self == ns {
		t.Fatalf("the container's mount namespace is the host's (%s)", ns)
	}
	if !holds(t, st.ShimPid, ns) {
		t.Errorf("shim %d holds no descriptor of the container's mount namespace %s", st.ShimPid, ns)
	}
	waitServing(t, st.ShimPid)
	if !holds(t, st.ShimPid, ns) {
		t.Errorf("shim %d, serving, holds no descriptor of the container's mount namespace %s", st.ShimPid, ns)
	}
	e.cliOK("kill", id, "KILL")
	e.waitStopped(id)
	// Let go on a goroutine once the event is out: nothing to wait on.
	for deadline := time.Now().Add(hangDeadline); holds(t, st.ShimPid, ns); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shim %d still holds the mount namespace %s after stopped", st.ShimPid, ns)
		}
	}
	e.cliOK("delete", id)
}

// holds reports whether process pid has a descriptor open on link's
// target (as /proc/PID/fd shows it, "mnt:[N]").
func holds(t *testing.T, pid int, link string) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if l, _ := os.Readlink(dir + "/" + ent.Name()); l == link {
			return true
		}
	}
	return false
}
