package test

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// This file tests CLI behaviour that scripts written for runc rely on:
// kill with signal 0, kill -a of a stopped container, list of a --root
// that is not there, delete --force of a container that is not there,
// --version's shape, run --keep, and a namespace listed twice.

// TestParityKillZero: kill ID 0 sends nothing and succeeds while the
// container's process exists (created or running); once it has stopped,
// kill fails with runc's "container not running" (runc's kill.bats "kill
// detached busybox"), --all too, as the spec requires (runc's obsolete -a
// succeeds there: docs/compatibility.md).
func TestParityKillZero(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	e.cliOK("kill", id, "0")
	if st := e.state(id); st.Status != protocol.StatusCreated {
		t.Errorf("after kill 0 of a created container: status %q", st.Status)
	}
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	e.cliOK("kill", id, "0")
	e.cliOK("kill", "--signal", "0", id)
	if st := e.state(id); st.Status != protocol.StatusRunning {
		t.Errorf("after kill 0: status %q, want running", st.Status)
	}
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	wantCLIError(t, "kill 0 of a stopped container", e.cliRun("kill", id, "0"), "container not running")
	wantCLIError(t, "kill KILL of a stopped container", e.cliRun("kill", id, "KILL"), "container not running")
	wantCLIError(t, "kill -a 0 of a stopped container", e.cliRun("kill", "-a", id, "0"), "container not running")
	wantCLIError(t, "kill --all KILL of a stopped container", e.cliRun("kill", "--all", id, "KILL"), "container not running")
	e.cliOK("delete", id)
	wantCLIError(t, "kill 0 of a deleted container", e.cliRun("kill", id, "0"), "does not exist")
}

// TestParityListRoot: list of a --root that does not exist fails, naming
// it (runc's list.bats "list with non-existent root fails"); one that
// exists but is empty lists nothing.
func TestParityListRoot(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(e.dir, "no-such-root")
	r := e.cliRun("--root", missing, "list")
	wantCLIError(t, "list of a missing --root", r, missing)
	r = e.cliRun("--root", missing, "list", "-q")
	wantCLIError(t, "list -q of a missing --root", r, missing)
	id := e.id()
	e.create(id, e.bundle([]string{"true"}, nil))
	if out := e.cliOK("list", "-q").stdout; out != id+"\n" {
		t.Errorf("list -q = %q, want %q", out, id+"\n")
	}
	e.cliOK("delete", "--force", id)
	if out := e.cliOK("list", "-q").stdout; out != "" {
		t.Errorf("list -q of an empty root = %q, want nothing", out)
	}
}

// TestParityDeleteForceMissing: delete --force of a container that does
// not exist succeeds silently, as runc's (containerd's cleanup relies on
// it); without --force it fails.
func TestParityDeleteForceMissing(t *testing.T) {
	e := newEnv(t)
	r := e.cliRun("delete", "--force", "no-such-container")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("delete --force of a missing container: exit %d, stdout %q, stderr %q; want a silent success", r.code, r.stdout, r.stderr)
	}
	wantCLIError(t, "delete of a missing container", e.cliRun("delete", "no-such-container"), "does not exist")
}

// TestParityVersion: --version and -v print runc's shape: the name and a
// version, then "commit:", "spec:" and "go:" lines.
func TestParityVersion(t *testing.T) {
	e := newEnv(t)
	for _, flag := range []string{"--version", "-v"} {
		out := e.cliOK(flag).stdout
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		want := []*regexp.Regexp{
			regexp.MustCompile(`^crier version [0-9]+\.[0-9]+\.[0-9]+`),
			regexp.MustCompile(`^commit: \S+$`),
			regexp.MustCompile(`^spec: ` + regexp.QuoteMeta(specs.Version) + `$`),
			regexp.MustCompile(`^go: go[0-9]`),
		}
		if len(lines) != len(want) {
			t.Errorf("%s printed %d lines, want %d:\n%s", flag, len(lines), len(want), out)
			continue
		}
		for i, re := range want {
			if !re.MatchString(lines[i]) {
				t.Errorf("%s line %d = %q, want it to match %s", flag, i+1, lines[i], re)
			}
		}
	}
}

// TestParityRunKeep: run --keep leaves the stopped container, and its
// cgroup, for state and delete (runc's run.bats "runc run --keep").
func TestParityRunKeep(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "exit 3"}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: cgRef[int64](-1)}}
	})
	r := e.cliRun("run", "--keep", "--bundle", b, id)
	if r.code != 3 {
		t.Fatalf("run --keep: exit %d, want the container's 3 (stderr %q)", r.code, r.stderr)
	}
	st := e.state(id)
	if st.Status != protocol.StatusStopped {
		t.Errorf("after run --keep: status %q, want stopped", st.Status)
	}
	h := cgroupHostInfo(t)
	dir := e.shimState(id).Cgroup.Paths[h.limitsKey("pids")]
	if got := readFile(t, filepath.Join(dir, "pids.max")); got != "max" {
		t.Errorf("kept cgroup's pids.max = %q, want max", got)
	}
	e.cliOK("delete", id)
	wantCLIError(t, "state after delete", e.cliRun("state", id), "does not exist")
	if cgFileExists(dir) {
		t.Errorf("cgroup %s left after delete", dir)
	}
}

// TestParityNamespaceTwice: a config that lists a namespace type twice is
// refused at create, as runc refuses it ("duplicated ns").
func TestParityNamespaceTwice(t *testing.T) {
	wantCreateFails(t, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}, "duplicated ns", `"pid"`)
}

// TestParityDebug: --debug writes runc's debug lines (level=debug, with
// the words runc's debug.bats looks for) to stderr, or with --log to the
// log file alone, as text or JSON.
func TestParityDebug(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"/bin/echo", "Hello World"}, nil)
	words := []string{"nsexec container setup", "child process in init()", "init: closing the pipe to signal completion"}
	check := func(what, out, level string) {
		t.Helper()
		if !strings.Contains(out, level) {
			t.Errorf("%s: no %s in:\n%s", what, level, out)
		}
		for _, w := range words {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in:\n%s", what, w, out)
			}
		}
	}
	r := e.cliOK("--debug", "run", "--bundle", b, e.id())
	if r.stdout != "Hello World\n" {
		t.Errorf("--debug run: stdout %q, want the container's alone", r.stdout)
	}
	check("--debug to stderr", r.stderr, "level=debug")
	for i, format := range []string{"", "text", "json"} {
		log := filepath.Join(e.dir, "log"+strconv.Itoa(i)+".out")
		args := []string{"--log", log, "--debug"}
		if format != "" {
			args = append(args, "--log-format", format)
		}
		r := e.cliOK(append(args, "run", "--bundle", b, e.id())...)
		if strings.Contains(r.stdout+r.stderr, "level=debug") || r.stderr != "" {
			t.Errorf("--log %s: debug output on stdout %q / stderr %q, want it in the log alone", format, r.stdout, r.stderr)
		}
		level := "level=debug"
		if format == "json" {
			level = `"level":"debug"`
		}
		check("--log-format "+format, readFile(t, log), level)
	}
}
