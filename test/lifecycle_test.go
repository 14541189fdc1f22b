package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestSeedWorkflow is the README's first example: event runs before the
// container (and even its state root) exists, start follows created, and a
// subscriber that is not the parent learns the exit status.
func TestSeedWorkflow(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "echo hi; exit 17"}, nil)

	waitCreated := exec.Command(suite.crier, "--root", e.root, "event", "--event", "created", id)
	var createdOut strings.Builder
	waitCreated.Stdout = &createdOut
	if err := waitCreated.Start(); err != nil {
		t.Fatal(err)
	}
	out := e.create(id, b)
	if err := waitCreated.Wait(); err != nil {
		t.Fatalf("event --event created: %v", err)
	}
	ev := decodeEvent(t, createdOut.String())
	if ev.Type != protocol.EventCreated || ev.ID != id || ev.Seq != 1 || ev.Pid <= 0 {
		t.Errorf("created event = %+v", ev)
	}
	e.must("start", id)
	stopped := decodeEvent(t, e.must("event", "--event", "stopped", id))
	if stopped.ExitStatus == nil || *stopped.ExitStatus != 17 || stopped.Signal != "" {
		t.Errorf("stopped event = %+v, want exitStatus 17", stopped)
	}
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("status after exit = %q", st.Status)
	}
	e.must("delete", id)
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "hi" {
		t.Errorf("container stdout = %q, want hi", b)
	}
	if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
		t.Errorf("state dir after delete: %v", err)
	}
}

func decodeEvent(t *testing.T, line string) protocol.Event {
	t.Helper()
	var ev protocol.Event
	if err := jsonUnmarshal(strings.TrimSpace(line), &ev); err != nil {
		t.Fatalf("event line %q: %v", line, err)
	}
	return ev
}
