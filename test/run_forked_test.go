package test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/shim"
)

// On amd64 `crier run` forks before its Go runtime starts, as create does
// (internal/prefork), but the process the caller waits for goes on as
// run's CLI while the fork creates and serves the container; the fork
// waits for the CLI's go-ahead and reports to it.

// waitGone waits until no process whose command line holds marker is
// left, for the leak check.
func waitGone(t *testing.T, marker string) {
	t.Helper()
	for _, line := range processesMatching(marker) {
		var pid int
		if _, err := fmt.Sscanf(line, "process %d", &pid); err != nil {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if !pidfdExited(fd, hangDeadline) {
			t.Errorf("%s did not exit", line)
		}
		unix.Close(fd)
	}
}

// TestRunShimDiesBeforeReport: a shim killed while it creates (here in a
// createRuntime hook) makes run fail with one line, not hang, and run
// itself removes what the killed create left: no delete --force needed.
func TestRunShimDiesBeforeReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	gate := e.gate("createRuntime")
	editBundle(t, b, func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{gate.hook()}} })
	var stderr bytes.Buffer
	p := e.cliStart(func(c *exec.Cmd) { c.Stderr = &stderr }, "run", "--bundle", b, id)
	gate.waitHeld(t)
	st, err := shim.ReadState(shim.Dir(e.root, id))
	if err != nil {
		t.Fatalf("the hook runs, but the state is unreadable: %v", err)
	}
	killShim(t, st)
	r := p.wait()
	if r.code != 1 {
		t.Errorf("run exited %d after its shim was killed, want 1 (stderr %q)", r.code, stderr.String())
	}
	wantOneLine(t, "run", stderr.String(), "report")
	e.assertGone(id)
	// The hook outlives the shim that ran it; it is no container's.
	gate.release()
	waitGone(t, filepath.Join(gate.dir, gate.name))
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("run panicked: %s", stderr.String())
	}
}

// TestRunSignalWhileCreating: a signal run forwards that comes while the
// container is being created is not lost, nor does it end run with the
// container left behind: the container gets it once it runs, and run
// exits with its status and deletes it.
func TestRunSignalWhileCreating(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	// No pid namespace: its init would ignore a signal it has no
	// handler for, and the signal may come before any handler is set.
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		dropNamespace(s, specs.PIDNamespace)
	})
	gate := e.gate("createRuntime")
	editBundle(t, b, func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{gate.hook()}} })
	p := e.cliStart(nil, "run", "--bundle", b, id)
	gate.waitHeld(t)
	if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gate.release()
	r := p.wait()
	if r.code != 128+int(unix.SIGTERM) {
		t.Errorf("run exited %d, want %d: the container killed by the forwarded SIGTERM (stderr %q)", r.code, 128+int(unix.SIGTERM), r.stderr)
	}
	e.assertGone(id)
}

// TestRunCommandLineSaidOnce: what is wrong with run's command line, and
// its help, are printed once, and nothing is made: no process of the run
// is left once it has returned (the fork, waiting for a go-ahead that
// never comes, is gone too).
func TestRunCommandLineSaidOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"true"}, nil)
	tb := e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Terminal = true })
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no such bundle", []string{"run", "--bundle", filepath.Join(e.dir, "nothing")}, []string{"nothing"}},
		{"bad flag", []string{"run", "--no-such-flag", "--bundle", b}, []string{"no-such-flag"}},
		{"bad global flag", []string{"--log-format", "xml", "run", "--bundle", b}, []string{"log-format"}},
		{"console socket in the foreground", []string{"run", "--console-socket", filepath.Join(e.dir, "s"), "--bundle", tb}, []string{"--console-socket", "--detach"}},
		{"bad event buffer", []string{"run", "--event-buffer", "nope", "--bundle", b}, []string{"nope"}},
	} {
		id := e.id()
		r := e.cliRun(append(c.args, id)...)
		if r.code == 0 {
			t.Errorf("%s: run succeeded", c.name)
		}
		wantOneLine(t, c.name, r.stderr, c.wants...)
		if leaks := e.leaks(); len(leaks) > 0 {
			t.Errorf("%s: left behind:\n  %s", c.name, strings.Join(leaks, "\n  "))
		}
		e.assertGone(id)
	}
	r := e.cliRun("run", "--help")
	if n := strings.Count(r.stdout+r.stderr, "Usage:"); r.code != 0 || n != 1 {
		t.Errorf("run --help: exit %d, %d usages, want 0 and 1:\n%s%s", r.code, n, r.stdout, r.stderr)
	}
	if leaks := e.leaks(); len(leaks) > 0 {
		t.Errorf("run --help: left behind:\n  %s", strings.Join(leaks, "\n  "))
	}
}

// TestRunForkedExitStatuses: the container's status, an error of the
// create itself (said once), and run -d, through the forked run.
func TestRunForkedExitStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	r := e.cliRun("run", "--bundle", e.bundle([]string{"sh", "-c", "echo out; exit 7"}, nil), id)
	if r.code != 7 || r.stdout != "out\n" {
		t.Errorf("run: exit %d, stdout %q, want 7 and %q (stderr %q)", r.code, r.stdout, "out\n", r.stderr)
	}
	e.assertGone(id)
	// The process's binary is missing: create's own failure.
	id = e.id()
	r = e.cliRun("run", "--bundle", e.bundle([]string{"/no/such/binary"}, nil), id)
	if r.code == 0 {
		t.Errorf("run of a missing binary succeeded")
	}
	wantOneLine(t, "run of a missing binary", r.stderr, "/no/such/binary")
	e.assertGone(id)
	// Taken ID: said once, and the container that has it is untouched.
	id = e.id()
	e.cliOK("run", "-d", "--bundle", e.bundle([]string{"sleep", "100"}, nil), id)
	r = e.cliRun("run", "--bundle", e.bundle([]string{"true"}, nil), id)
	wantOneLine(t, "run of a taken ID", r.stderr, "exists")
	if st := e.state(id); st.Status != "running" {
		t.Errorf("the container of the taken ID is %s after the failed run, want running", st.Status)
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
	if t.Failed() {
		t.Logf("last run: %s", fmt.Sprint(r))
	}
}
