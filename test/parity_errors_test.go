package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests the words of crier's failures where tools match on
// runc's: a program that is not there fails create with Go's
// exec.LookPath words, as runc looks it up at create; an execve that
// fails says `exec PATH: ERRNO`; a failing hook says `error running KIND
// hook #N:`.

func TestParityMissingProgramFailsCreate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/nonexist"}, `exec: "/nonexist": stat /nonexist: no such file or directory`},
		{[]string{"nonexist"}, `exec: "nonexist": executable file not found in $PATH`},
		{[]string{"/etc"}, `exec: "/etc": is a directory`},
		{[]string{"/etc/passwd"}, `exec: "/etc/passwd": permission denied`},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			wantCreateFails(t, func(s *specs.Spec) { s.Process.Args = tc.args }, tc.want)
		})
	}
	// Relative names are found from the process's cwd.
	e := newEnv(t)
	b := e.bundle([]string{"./echo", "found"}, func(s *specs.Spec) { s.Process.Cwd = "/bin" })
	if out, _ := e.runOK(e.id(), b, nil); out != "found\n" {
		t.Errorf("./echo from cwd /bin printed %q, want found", out)
	}
}

// badInterpreter writes /run.sh into the bundle's rootfs: an executable
// whose interpreter does not exist, so that execve itself fails with
// ENOENT (runc's exec.bats "[execve error]").
func badInterpreter(t *testing.T, bundle string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "run.sh"), []byte("#!/mmnnttbb foo bar\nsh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestParityExecveFailure(t *testing.T) {
	e := newEnv(t)
	const want = "exec /run.sh: no such file or directory"
	id := e.id()
	b := e.bundle([]string{"/run.sh"}, nil)
	badInterpreter(t, b)
	r := e.cliRun("run", "--bundle", b, id)
	// As runc's init: the process's error alone, then 255
	// (TestParityExecveFailureRun has more).
	if r.code != 255 || r.stderr != want+"\n" {
		t.Errorf("run of /run.sh: exit %d, stderr %q; want 255 and the one line %q", r.code, r.stderr, want)
	}
	e.wantNoStateDir(id)

	id = execTarget(t, e, nil)
	badInterpreter(t, e.state(id).Bundle)
	r = e.cliRun("exec", id, "/run.sh")
	wantErrorLine(t, "exec of /run.sh", r, want)
	r = e.cliRun("exec", id, "/nonexist")
	wantErrorLine(t, "exec of /nonexist", r, `exec: "/nonexist": stat /nonexist: no such file or directory`)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestParityHookFailureWords: create fails at a failing prestart,
// createRuntime or createContainer hook, and run at a startContainer one,
// each with runc's `error running KIND hook #N:` (N counts from 0).
func TestParityHookFailureWords(t *testing.T) {
	hooks := []specs.Hook{{Path: "/bin/true"}, {Path: "/bin/false"}}
	for _, kind := range []string{"prestart", "createRuntime", "createContainer"} {
		t.Run(kind, func(t *testing.T) {
			wantCreateFails(t, func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{}
				switch kind {
				case "prestart":
					s.Hooks.Prestart = hooks //nolint:staticcheck // runc still runs them
				case "createRuntime":
					s.Hooks.CreateRuntime = hooks
				case "createContainer":
					s.Hooks.CreateContainer = hooks
				}
			}, "error running "+kind+" hook #1:")
		})
	}
	t.Run("startContainer", func(t *testing.T) {
		e := newEnv(t)
		id := e.id()
		b := e.bundle([]string{"echo", "Hello World"}, func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{StartContainer: hooks}
		})
		r := e.cliRun("run", "--bundle", b, id)
		if r.code == 0 || strings.Contains(r.stdout, "Hello World") || !strings.Contains(r.stderr, "error running startContainer hook #1:") {
			t.Errorf("run: exit %d, stdout %q, stderr %q; want a failure naming the startContainer hook #1", r.code, r.stdout, r.stderr)
		}
		e.wantNoStateDir(id)
	})
}
