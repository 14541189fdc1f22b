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

// TestShimHoldsNamespacesUntilStopped: the shim holds the container's
// mount, network and IPC namespaces while the container runs, so that the
// init's exit does not wait for their teardown
// (container.Container.HoldNamespaces), across its re-execution into the
// serving image too, and lets them go once the stopped event is out:
// nothing of the container's stays mounted after.
func TestShimHoldsNamespacesUntilStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, st := e.startSleeper()
	var links []string
	for _, name := range []string{"mnt", "net", "ipc"} {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, name))
		if err != nil {
			t.Fatal(err)
		}
		if self, _ := os.Readlink("/proc/self/ns/" + name); self == ns {
			t.Fatalf("the container's %s namespace is the host's (%s)", name, ns)
		}
		links = append(links, ns)
	}
	check := func(when string) {
		t.Helper()
		for _, ns := range links {
			if !holds(t, st.ShimPid, ns) {
				t.Errorf("%s: shim %d holds no descriptor of the container's namespace %s", when, st.ShimPid, ns)
			}
		}
	}
	check("started")
	waitServing(t, st.ShimPid)
	check("serving")
	e.cliOK("kill", id, "KILL")
	e.waitStopped(id)
	// Let go on a goroutine once the event is out: nothing to wait on.
	for _, ns := range links {
		for deadline := time.Now().Add(hangDeadline); holds(t, st.ShimPid, ns); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("shim %d still holds the namespace %s after stopped", st.ShimPid, ns)
			}
		}
	}
	e.cliOK("delete", id)
}

// holds reports whether process pid has a descriptor open on link's
// target (as /proc/PID/fd shows it, "mnt:[N]" for a mount namespace).
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
