package test

import (
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// TestFailingPoststartFailsStart: a failing poststart hook fails start
// and stops the container, and the poststart hooks after it do not run
// (runtime-spec 1.3, runtime.md's lifecycle step 9: "generate an error,
// stop the container"; runc's hooks.bats "runc run [hook fails]"). A
// failing poststop hook does not fail delete ("log a warning, but the
// remaining hooks and lifecycle continue"): the hooks after it still run.
func TestFailingPoststartFailsStart(t *testing.T) {
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
	r := e.cliRun("start", id)
	wantErrorLine(t, "start", r, "error running poststart hook #0:")
	next(t, sub, protocol.EventStarted)
	next(t, sub, protocol.EventStopped)
	r = e.cliOK("delete", id)
	t.Logf("delete: %q %q", r.stdout, r.stderr)
	e.wantNoStateDir(id)
	order := strings.Fields(readFile(t, filepath.Join(hd, "order")))
	if strings.Join(order, " ") != "poststop" {
		t.Errorf("hooks that ran: %v, want poststop alone (not the poststart after the failed one)", order)
	}
	// The poststop warning is in the shim's log.
	log := readFile(t, logf)
	if !strings.Contains(log, "warning: error running poststop hook") {
		t.Errorf("the shim's log has no warning for the failed poststop hook:\n%s", log)
	}
}
