package test

import (
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// TestFailingPostHooksAreWarnings: a failing poststart hook does not fail
// start and a failing poststop hook does not fail delete (runtime-spec:
// "the runtime MUST log a warning, but the remaining hooks and lifecycle
// continue"); the hooks after them still run.
func TestFailingPostHooksAreWarnings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	hd := e.hostDir("hooks")
	fail := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-failed >&2; exit 3"}}
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Poststart: []specs.Hook{fail, recordHook("/bin/sh", hd, "poststart")},
			Poststop:  []specs.Hook{fail, recordHook("/bin/sh", hd, "poststop")},
		}
	})
	logf := filepath.Join(e.dir, "shim.log")
	e.cliOK("--log", logf, "create", "--bundle", b, id)
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	next(t, sub, protocol.EventStarted)
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	r := e.cliOK("delete", id)
	t.Logf("delete: %q %q", r.stdout, r.stderr)
	e.wantNoStateDir(id)
	order := strings.Fields(readFile(t, filepath.Join(hd, "order")))
	if strings.Join(order, " ") != "poststart poststop" {
		t.Errorf("hooks after the failing ones ran: %v, want poststart poststop", order)
	}
	// The warnings are in the shim's log, one per failed hook.
	log := readFile(t, logf)
	for _, kind := range []string{"poststart", "poststop"} {
		if !strings.Contains(log, "warning: error running "+kind+" hook") {
			t.Errorf("the shim's log has no warning for the failed %s hook:\n%s", kind, log)
		}
	}
}
