package test

import (
	"os"
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
