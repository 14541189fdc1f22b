package test

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// TestStartFailureFromInit: when init cannot start the process, start
// fails with init's own message (characters JSON escapes included, which
// the serving shim must decode) and the container stops.
func TestStartFailureFromInit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		edit func(*specs.Spec)
		// gone is a program in the rootfs at create (which looks it up,
		// as runc's) and removed before start.
		gone  string
		wants []string // in start's error line
	}{
		{
			name:  "exec fails",
			args:  []string{`/such-"<bin>"`},
			gone:  `such-"<bin>"`,
			wants: []string{`exec: "/such-\"<bin>\"": stat /such-"<bin>": no such file or directory`},
		},
		{
			name: "startContainer hook fails",
			args: []string{"true"},
			edit: func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{
					Path: "/bin/sh", Args: []string{"sh", "-c", `echo 'bad "<hook>" & more' >&2; exit 3`},
				}}}
			},
			wants: []string{`startContainer hook #0: /bin/sh: exit status 3: bad "<hook>" & more`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle(tc.args, tc.edit)
			if tc.gone != "" {
				if err := os.WriteFile(filepath.Join(b, "rootfs", tc.gone), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			e.create(id, b)
			if tc.gone != "" {
				os.Remove(filepath.Join(b, "rootfs", tc.gone))
			}
			sub := e.subscribe(id, true)
			created := next(t, sub, protocol.EventCreated)
			wantCLIError(t, "start", e.cliRun("start", id), tc.wants...)
			if ev := next(t, sub, protocol.EventStopped); ev.Pid != created.Pid {
				t.Errorf("stopped event for pid %d, want %d", ev.Pid, created.Pid)
			}
			wantCLIError(t, "second start", e.cliRun("start", id), "not created")
			e.cliOK("delete", id)
			next(t, sub, protocol.EventDeleted)
			e.assertGone(id)
		})
	}
}
