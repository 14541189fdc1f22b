package test

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/shim"
)

// A plain `crier run` (no terminal, no console or pidfd socket, no --keep)
// is run by its fork alone (cmd/runtime/run_alone.go): the process the
// caller waits for never starts a Go runtime, and in assembly forwards
// signals to the container once it runs and exits with its status.

// threads is the number of threads of pid.
func threads(t *testing.T, pid int) int {
	t.Helper()
	n, err := strconv.Atoi(procStatus(t, pid)["Threads"])
	if err != nil {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	return n
}

// TestRunAloneForwardsSignals: the run's own process stays one thread
// (no Go runtime) when the run is plain, and goes on as a Go CLI when it
// is not; either way a SIGTERM sent to it once the container runs reaches
// the container, and run exits with the status the container chose.
func TestRunAloneForwardsSignals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		extra []string
		alone bool
	}{
		{name: "plain", alone: true},
		{name: "keep", extra: []string{"--keep"}, alone: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			// "ready" once the trap is set: a signal before it would
			// be lost (the shell is its pid namespace's init).
			b := e.bundle([]string{"sh", "-c", `trap "exit 42" TERM; echo ready; sleep 1000 & wait`}, nil)
			args := append([]string{"run"}, tc.extra...)
			run, out := e.cliStartPiped(append(args, "--bundle", b, id)...)
			if line := out.line(t); line != "ready" {
				t.Fatalf("container said %q, want ready", line)
			}
			n := threads(t, run.cmd.Process.Pid)
			if tc.alone && n != 1 {
				t.Errorf("run's process has %d threads, want 1: it started a Go runtime", n)
			}
			if !tc.alone && n == 1 {
				t.Errorf("run's process has 1 thread, want its Go CLI")
			}
			if err := run.cmd.Process.Signal(unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			r := run.wait()
			if r.code != 42 {
				t.Errorf("run exited %d, want 42 from the container's trap (stderr %q)", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("run stderr %q, want nothing", r.stderr)
			}
			if tc.name == "keep" {
				e.cliOK("delete", id)
			}
			e.assertGone(id)
		})
	}
}

// TestRunAloneCutShort: a plain run whose container is taken from it
// while it runs ends at once and leaves nothing (a delete --force removes
// what a killed shim left):
//   - its fork, the shim, is killed: run does not wait for the container,
//     and exits 1 with one line saying why;
//   - another `crier delete --force` kills and removes the container: run
//     exits with its status, 137, and says nothing, as runc's does (the
//     shim's own delete is not made; the other's answers it).
func TestRunAloneCutShort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cut  func(e *env, id string)
		code int
		want string // in the one line run prints; "": nothing
	}{
		{name: "shim killed", cut: func(e *env, id string) { killShim(e.t, e.shimState(id)) }, code: 1, want: "shim exited"},
		{name: "deleted by another", cut: func(e *env, id string) { e.cliOK("delete", "--force", id) }, code: 128 + int(unix.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sleep", "1000"}, nil)
			started := e.cliStart(nil, "event", "--event", "started", id)
			run := e.cliStart(nil, "run", "--bundle", b, id)
			started.waitOK()
			tc.cut(e, id)
			r := run.wait()
			if r.code != tc.code {
				t.Errorf("run exited %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if tc.want != "" {
				wantOneLine(t, "run", r.stderr, tc.want)
			} else if r.stderr != "" {
				t.Errorf("run stderr %q, want nothing", r.stderr)
			}
			if _, err := os.Lstat(shim.Dir(e.root, id)); err == nil {
				e.cliOK("delete", "--force", id)
			}
			e.assertGone(id)
		})
	}
}
