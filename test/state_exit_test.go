package test

import (
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestStateRecordsExit: the exit is in the state before the stopped event
// is published: `crier state` right after the event carries the same exit
// status, signal and time, and so does the state file once the shim is
// gone (a shim that dies right after publishing loses nothing).
func TestStateRecordsExit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		args   []string
		kill   bool
		status int
		signal string
	}{
		{"exit 17", []string{"sh", "-c", "exit 17"}, false, 17, ""},
		{"SIGKILL", []string{"sleep", "1000"}, true, 137, "SIGKILL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle(tt.args, nil))
			sub := e.subscribe(id, true)
			defer sub.Close()
			e.cliOK("start", id)
			if tt.kill {
				e.cliOK("kill", id, "KILL")
			}
			ev := next(t, sub, protocol.EventStopped)
			wantExit(t, ev, tt.status, tt.signal)
			check := func(when string, st protocol.State) {
				t.Helper()
				if st.Status != protocol.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != tt.status ||
					st.Signal != tt.signal || st.ExitedAt != ev.Timestamp {
					t.Errorf("%s: state %+v (exit %v), want stopped, %d %q at %s", when, st, st.ExitStatus, tt.status, tt.signal, ev.Timestamp)
				}
			}
			check("after the stopped event", e.state(id))
			killShim(t, e.shimState(id))
			check("with the shim dead", e.state(id))
			e.cliOK("delete", id)
		})
	}
}
