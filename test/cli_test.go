package test

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// TestExitStatusNonParent: the exit status of a normal, failing and killed
// container reaches both a `crier event --event stopped` process and a Go
// client, neither of them the container's parent.
func TestExitStatusNonParent(t *testing.T) {
	t.Parallel()
	noPidNS := func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
	}
	cases := []struct {
		name   string
		args   []string
		edit   func(*specs.Spec)
		kill   string // signal to send with crier kill once started
		status int
		signal string
	}{
		{name: "exit 17", args: []string{"sh", "-c", "exit 17"}, status: 17},
		{name: "exit 0", args: []string{"sh", "-c", "exit 0"}, status: 0},
		{name: "SIGKILL", args: []string{"sleep", "100"}, kill: "KILL", status: 137, signal: "SIGKILL"},
		{name: "SIGTERM without pid namespace", args: []string{"sleep", "100"}, edit: noPidNS, kill: "TERM", status: 143, signal: "SIGTERM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle(tc.args, tc.edit))
			sub := e.subscribe(id, true)
			cli := e.cliStart(nil, "event", "--event", "stopped", id)
			e.cliOK("start", id)
			if tc.kill != "" {
				next(t, sub, protocol.EventStarted)
				e.cliOK("kill", id, tc.kill)
			}
			wantExit(t, next(t, sub, protocol.EventStopped), tc.status, tc.signal)
			r := cli.waitOK()
			if strings.Count(r.stdout, "\n") != 1 {
				t.Errorf("event --event stopped printed %q, want one line", r.stdout)
			}
			wantExit(t, decodeEvent(t, r.stdout), tc.status, tc.signal)
			if st := e.state(id); st.Status != protocol.StatusStopped {
				t.Errorf("status = %q, want stopped", st.Status)
			}
			e.cliOK("delete", id)
			e.wantNoStateDir(id)
		})
	}
}

// TestRunForegroundExitStatus: `crier run` exits with the container's
// status, 128+N when another process kills it with signal N, and deletes it.
func TestRunForegroundExitStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		kill string
		want int
	}{
		{name: "exit 17", args: []string{"sh", "-c", "exit 17"}, want: 17},
		{name: "exit 0", args: []string{"sh", "-c", "exit 0"}, want: 0},
		{name: "killed", args: []string{"sleep", "100"}, kill: "KILL", want: 128 + 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle(tc.args, nil)
			var started *cliProc
			if tc.kill != "" {
				started = e.cliStart(nil, "event", "--event", "started", id)
			}
			run := e.cliStart(nil, "run", "--bundle", b, id)
			if started != nil {
				started.waitOK()
				e.cliOK("kill", id, tc.kill)
			}
			r := run.wait()
			if r.code != tc.want {
				t.Errorf("run exited %d, want %d (stderr %q)", r.code, tc.want, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("run stderr %q, want nothing", r.stderr)
			}
			e.wantNoStateDir(id)
		})
	}
}

// TestRunDetached: run -d returns once the container runs and leaves it
// to the caller, who sees its exit status as a subscriber.
func TestRunDetached(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	r := e.cliOK("run", "-d", "--bundle", e.bundle([]string{"sleep", "100"}, nil), id)
	if r.stderr != "" {
		t.Errorf("run -d stderr %q", r.stderr)
	}
	st := e.state(id)
	if st.Status != protocol.StatusRunning || !processAlive(st.Pid) {
		t.Fatalf("after run -d: status %q pid %d alive %v, want a running process", st.Status, st.Pid, processAlive(st.Pid))
	}
	sub := e.subscribe(id, true)
	e.cliOK("kill", id, "KILL")
	wantExit(t, next(t, sub, protocol.EventStopped), 137, "SIGKILL")
	e.cliOK("delete", id)
	e.wantNoStateDir(id)

	// A quick exit after run -d is still there for a late subscriber.
	id = e.id()
	e.cliOK("run", "--detach", "--bundle", e.bundle([]string{"sh", "-c", "exit 17"}, nil), id)
	wantExit(t, e.waitStopped(id), 17, "")
	e.cliOK("delete", id)
}

// TestPidFile: the pid file holds the pid and nothing else, and it is the
// pid of state and of the created event.
func TestPidFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cmd  []string
		rel  bool // a relative --pid-file, resolved in the CLI's directory
	}{
		{name: "create", cmd: []string{"create"}},
		{name: "create relative", cmd: []string{"create"}, rel: true},
		{name: "run -d", cmd: []string{"run", "-d"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			path := filepath.Join(e.dir, "container.pid")
			arg := path
			if tc.rel {
				arg = "container.pid"
			}
			args := append(slices.Clone(tc.cmd), "--bundle", e.bundle([]string{"sleep", "100"}, nil), "--pid-file", arg, id)
			e.cliStart(func(c *exec.Cmd) { c.Dir = e.dir }, args...).waitOK()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[1-9][0-9]*$`).Match(b) {
				t.Errorf("pid file holds %q, want just the pid, no newline", b)
			}
			pid, _ := strconv.Atoi(string(b))
			if st := e.state(id); st.Pid != pid {
				t.Errorf("pid file %d, state pid %d", pid, st.Pid)
			}
			if ev := next(t, e.subscribe(id, true), protocol.EventCreated); ev.Pid != pid {
				t.Errorf("pid file %d, created event pid %d", pid, ev.Pid)
			}
			e.cliOK("delete", "--force", id)
		})
	}
}

// TestCreateReleasesStdio: neither the CLI nor the shim keeps create's
// stdout, so a reader sees EOF as soon as the container closes it, while the
// container still runs.
func TestCreateReleasesStdio(t *testing.T) {
	t.Parallel()
	closer := []string{"sh", "-c", "echo hello; exec >&-; exec sleep 100"}

	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.id()
		r := e.createPiped(id, e.bundle(closer, nil))
		e.cliOK("start", id)
		if out := r.rest(t); out != "hello\n" {
			t.Errorf("container stdout = %q, want hello", out)
		}
		if st := e.state(id); st.Status != protocol.StatusRunning {
			t.Errorf("status %q after EOF, want running: EOF must come from the container closing stdout", st.Status)
		}
		e.cliOK("delete", "--force", id)
	})

	// The issue's own words: out=$(crier create ...) returns.
	t.Run("command substitution", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.id()
		b := e.bundle(closer, nil)
		created := e.cliStart(nil, "event", "--event", "created", id)
		script := `out=$("$0" --root "$1" create --bundle "$2" "$3") || exit 1; echo "create said: $out"`
		shell := exec.Command("sh", "-c", script, suite.crier, e.root, b, id)
		shellOut, err := os.CreateTemp(e.dir, "shell-")
		if err != nil {
			t.Fatal(err)
		}
		shell.Stdout, shell.Stderr = shellOut, shellOut
		if err := shell.Start(); err != nil {
			t.Fatal(err)
		}
		created.waitOK()
		e.cliOK("start", id)
		if exited, err := waitOrKill(shell); !exited {
			t.Errorf("out=$(crier create ...) did not return after the container closed its stdout")
		} else if err != nil {
			t.Errorf("shell: %v", err)
		}
		if b, _ := os.ReadFile(shellOut.Name()); string(b) != "create said: hello\n" {
			t.Errorf("shell printed %q", b)
		}
		if st := e.state(id); st.Status != protocol.StatusRunning {
			t.Errorf("status %q, want running", st.Status)
		}
		e.cliOK("delete", "--force", id)
	})
}

// TestPassFDs: --preserve-fds and LISTEN_FDS pass descriptors after stdio
// to the container, and the shim does not keep them.
func TestPassFDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		n      int      // pipes passed as fds 3, 4, ...
		flags  []string // create flags
		listen bool     // pass them as LISTEN_FDS=n with LISTEN_PID the CLI's pid
		script string
		want   []string // what each pipe carries
	}{
		{name: "preserve-fds 1", n: 1, flags: []string{"--preserve-fds", "1"}, script: "echo hi >&3", want: []string{"hi\n"}},
		{name: "preserve-fds 2", n: 2, flags: []string{"--preserve-fds", "2"}, script: "echo three >&3; echo four >&4", want: []string{"three\n", "four\n"}},
		{name: "LISTEN_FDS", n: 1, listen: true, script: "echo hi >&3", want: []string{"hi\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", tc.script}, nil)
			var readers, writers []*os.File
			for range tc.n {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				readers, writers = append(readers, r), append(writers, w)
			}
			args := append(append([]string{"create", "--bundle", b}, tc.flags...), id)
			p := e.cliStart(func(c *exec.Cmd) {
				c.ExtraFiles = writers
				if tc.listen {
					// LISTEN_PID must be the pid of the process
					// that gets the fds: exec keeps the shell's.
					c.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=` + strconv.Itoa(tc.n) + ` exec "$0" "$@"`}, c.Args...)
					c.Path = "/bin/sh"
				}
			}, args...)
			r := p.wait()
			for _, w := range writers {
				w.Close()
			}
			if r.code != 0 {
				t.Fatalf("create: exit %d: %s", r.code, r.stderr)
			}
			e.cliOK("start", id)
			for i, rd := range readers {
				if got := newOutPipe(rd).rest(t); got != tc.want[i] {
					t.Errorf("fd %d carried %q, want %q", 3+i, got, tc.want[i])
				}
			}
			wantExit(t, e.waitStopped(id), 0, "")
			e.cliOK("delete", id)
		})
	}
}

// TestStateJSON follows state through created, running and stopped.
func TestStateJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	annotations := map[string]string{"org.crier.test": "yes", "com.example/key": "a value"}
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) { s.Annotations = annotations })
	before := time.Now().Round(0)
	e.create(id, b)
	after := time.Now().Round(0)

	raw := e.cliOK("state", id).stdout
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatalf("state is not a JSON object: %v: %q", err, raw)
	}
	for _, k := range []string{"ociVersion", "id", "status", "pid", "bundle", "rootfs", "created", "annotations"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("state has no %q: %s", k, raw)
		}
	}
	st := e.state(id)
	if st.OCIVersion != specs.Version {
		t.Errorf("ociVersion %q, want %q", st.OCIVersion, specs.Version)
	}
	if st.ID != id || st.Status != protocol.StatusCreated || st.Pid <= 0 || !processAlive(st.Pid) {
		t.Errorf("created state: id %q status %q pid %d", st.ID, st.Status, st.Pid)
	}
	if st.Bundle != b || st.Rootfs != filepath.Join(b, "rootfs") {
		t.Errorf("bundle %q rootfs %q, want %q and its rootfs", st.Bundle, st.Rootfs, b)
	}
	if !maps.Equal(st.Annotations, annotations) {
		t.Errorf("annotations %v, want %v", st.Annotations, annotations)
	}
	created, err := time.Parse(time.RFC3339Nano, st.Created)
	if err != nil || created.Before(before) || created.After(after) {
		t.Errorf("created %q (%v) not between %v and %v", st.Created, err, before, after)
	}
	pid, createdAt := st.Pid, st.Created

	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	next(t, sub, protocol.EventStarted)
	st = e.state(id)
	if st.Status != protocol.StatusRunning || st.Pid != pid || !processAlive(pid) || st.Created != createdAt {
		t.Errorf("running state: status %q pid %d (was %d) created %q (was %q)", st.Status, st.Pid, pid, st.Created, createdAt)
	}

	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	st = e.state(id)
	if st.Status != protocol.StatusStopped || st.ID != id || st.Bundle != b || st.Created != createdAt || !maps.Equal(st.Annotations, annotations) {
		t.Errorf("stopped state: %+v", st)
	}
	e.cliOK("delete", id)
	wantCLIError(t, "state after delete", e.cliRun("state", id), "does not exist", "not exist", "no such")
}

// trapperArgs is a container process that exits with a distinct status for
// each signal it handles, and says when its traps are set: pid 1 of a pid
// namespace ignores a signal it has no handler for.
var trapperArgs = []string{"sh", "-c", `trap "exit 3" TERM; trap "exit 4" USR1; trap "exit 5" HUP; echo ready; sleep 100 & wait`}

// startReady creates and starts id running args, which must print "ready"
// first, and returns a subscriber with history once it has.
func (e *env) startReady(id string, args []string) *protocol.Client {
	e.t.Helper()
	out := e.createPiped(id, e.bundle(args, nil))
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	if line := out.line(e.t); line != "ready" {
		e.t.Fatalf("container said %q, want ready", line)
	}
	return sub
}

// TestKillSignals: names with and without SIG, numbers, --signal and the
// default TERM all reach the container's process.
func TestKillSignals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		args   []string // after "kill"; ID stands for the container
		status int
		signal string
	}{
		{name: "default TERM", args: []string{"ID"}, status: 3},
		{name: "TERM", args: []string{"ID", "TERM"}, status: 3},
		{name: "SIGTERM", args: []string{"ID", "SIGTERM"}, status: 3},
		{name: "15", args: []string{"ID", "15"}, status: 3},
		{name: "USR1", args: []string{"ID", "USR1"}, status: 4},
		{name: "SIGHUP", args: []string{"ID", "SIGHUP"}, status: 5},
		{name: "1", args: []string{"ID", "1"}, status: 5},
		{name: "--signal USR1", args: []string{"--signal", "USR1", "ID"}, status: 4},
		{name: "--signal SIGTERM after ID", args: []string{"ID", "--signal", "SIGTERM"}, status: 3},
		{name: "--signal 9", args: []string{"--signal", "9", "ID"}, status: 137, signal: "SIGKILL"},
		{name: "KILL", args: []string{"ID", "KILL"}, status: 137, signal: "SIGKILL"},
		{name: "SIGKILL", args: []string{"ID", "SIGKILL"}, status: 137, signal: "SIGKILL"},
		{name: "9", args: []string{"ID", "9"}, status: 137, signal: "SIGKILL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			sub := e.startReady(id, trapperArgs)
			args := []string{"kill"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "ID", id))
			}
			r := e.cliOK(args...)
			if r.stdout != "" || r.stderr != "" {
				t.Errorf("kill printed %q %q", r.stdout, r.stderr)
			}
			wantExit(t, next(t, sub, protocol.EventStopped), tc.status, tc.signal)
			e.cliOK("delete", id)
		})
	}
}

// TestKillAll: --all reaches every process of the container, not only its
// init process.
func TestKillAll(t *testing.T) {
	t.Parallel()
	// pid 1 has no TERM handler, so only --all can end the sleep, after
	// which the shell exits 7.
	b := []string{"sh", "-c", "sleep 100 & echo ready; wait $!; exit 7"}
	e := newEnv(t)
	id := e.id()
	sub := e.startReady(id, b)
	e.cliOK("kill", "--all", id, "TERM")
	wantExit(t, next(t, sub, protocol.EventStopped), 7, "")
	e.cliOK("delete", id)
}

// TestKillErrors: a stopped container, an unknown or invalid signal and a
// missing container are errors, and a failed kill changes nothing.
func TestKillErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	running := e.id()
	e.create(running, e.bundle([]string{"sleep", "100"}, nil))
	e.cliOK("start", running)
	cases := []struct {
		args  []string
		wants []string
	}{
		{args: []string{"kill", running, "FOO"}, wants: []string{"FOO"}},
		{args: []string{"kill", running, "SIGFOO"}, wants: []string{"SIGFOO"}},
		{args: []string{"kill", running, "0"}, wants: []string{"0"}},
		{args: []string{"kill", running, "65"}, wants: []string{"65"}},
		{args: []string{"kill", "--signal", "NOPE", running}, wants: []string{"NOPE"}},
		{args: []string{"kill", "--signal", "KILL", running, "KILL"}, wants: []string{"signal"}},
		{args: []string{"kill", running, "KILL", "extra"}, wants: []string{"argument"}},
		{args: []string{"kill", e.id() + "-missing", "KILL"}, wants: []string{"not exist"}},
	}
	for _, tc := range cases {
		wantCLIError(t, strings.Join(tc.args, " "), e.cliRun(tc.args...), tc.wants...)
	}
	if st := e.state(running); st.Status != protocol.StatusRunning || !processAlive(st.Pid) {
		t.Errorf("after failed kills: status %q, pid %d alive %v", st.Status, st.Pid, processAlive(st.Pid))
	}

	stopped := e.id()
	e.create(stopped, e.bundle([]string{"sh", "-c", "exit 0"}, nil))
	e.cliOK("start", stopped)
	e.waitStopped(stopped)
	wantCLIError(t, "kill of a stopped container", e.cliRun("kill", stopped, "KILL"), "stopped", "not running")
	wantCLIError(t, "kill --all of a stopped container", e.cliRun("kill", "--all", stopped, "KILL"), "stopped", "not running")
	e.cliOK("delete", stopped)
	e.cliOK("delete", "--force", running)
}

// TestDeleteNotStopped: delete without --force refuses a created or
// running container and changes nothing; --force deletes it.
func TestDeleteNotStopped(t *testing.T) {
	t.Parallel()
	for _, status := range []protocol.Status{protocol.StatusCreated, protocol.StatusRunning} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"sleep", "100"}, nil))
			if status == protocol.StatusRunning {
				e.cliOK("start", id)
			}
			before := e.state(id)
			wantCLIError(t, "delete of a "+string(status)+" container", e.cliRun("delete", id), "--force", string(status))
			after := e.state(id)
			if after.Status != status || after.Pid != before.Pid || !processAlive(after.Pid) {
				t.Fatalf("after refused delete: status %q pid %d (was %d) alive %v", after.Status, after.Pid, before.Pid, processAlive(after.Pid))
			}
			sub := e.subscribe(id, true)
			if status == protocol.StatusCreated {
				// Still fully usable: it starts.
				e.cliOK("start", id)
				next(t, sub, protocol.EventStarted)
			}
			e.cliOK("delete", "--force", id)
			e.wantNoStateDir(id)
			if processAlive(before.Pid) {
				t.Errorf("container process %d alive after delete --force", before.Pid)
			}
			next(t, sub, protocol.EventDeleted)
		})
	}
}

// TestList covers the table, JSON and -q forms.
func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// No state root yet: nothing to list, and no error.
	if r := e.cliOK("list", "-q"); r.stdout != "" {
		t.Errorf("list -q with no root: %q", r.stdout)
	}
	if r := e.cliOK("list", "--format", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list --format json with no root: %q, want []", r.stdout)
	}

	want := map[string]protocol.Status{} // id -> status
	b := e.bundle([]string{"sleep", "100"}, nil)
	created, running, stopped := e.id(), e.id(), e.id()
	e.create(created, b)
	e.create(running, b)
	e.cliOK("start", running)
	e.create(stopped, e.bundle([]string{"sh", "-c", "exit 0"}, nil))
	e.cliOK("start", stopped)
	e.waitStopped(stopped)
	want[created], want[running], want[stopped] = protocol.StatusCreated, protocol.StatusRunning, protocol.StatusStopped

	q := strings.Fields(e.cliOK("list", "-q").stdout)
	slices.Sort(q)
	ids := []string{created, running, stopped}
	slices.Sort(ids)
	if !slices.Equal(q, ids) {
		t.Errorf("list -q = %q, want %q", q, ids)
	}

	var states []protocol.State
	if out := e.cliOK("list", "--format", "json").stdout; json.Unmarshal([]byte(out), &states) != nil {
		t.Fatalf("list --format json: %q", out)
	}
	if len(states) != 3 {
		t.Errorf("list --format json has %d entries, want 3", len(states))
	}
	for _, st := range states {
		if want[st.ID] != st.Status || st.Bundle == "" || (st.Status != protocol.StatusStopped && st.Pid <= 0) {
			t.Errorf("list --format json entry %+v, want status %q", st, want[st.ID])
		}
	}

	lines := strings.Split(strings.TrimSuffix(e.cliOK("list").stdout, "\n"), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}) {
		t.Errorf("list header %q", lines[0])
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 || string(want[f[0]]) != f[2] {
			t.Errorf("list row %q", l)
			continue
		}
		seen[f[0]] = true
	}
	if len(seen) != 3 {
		t.Errorf("list table rows %q, want the 3 containers", lines[1:])
	}
	wantCLIError(t, "list --format yaml", e.cliRun("list", "--format", "yaml"), "yaml")

	e.cliOK("delete", "--force", created)
	e.cliOK("delete", "--force", running)
	e.cliOK("delete", stopped)
	if r := e.cliOK("list", "-q"); r.stdout != "" {
		t.Errorf("list -q after deleting everything: %q", r.stdout)
	}
}

// TestSpec: spec writes a usable config.json and never overwrites one.
func TestSpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	check := func(dir string) {
		t.Helper()
		s := readSpec(t, dir)
		if s.Version == "" || s.Root == nil || s.Root.Path != "rootfs" || s.Process == nil || !slices.Equal(s.Process.Args, []string{"sh"}) || s.Linux == nil {
			t.Errorf("default spec: %+v", s)
		}
	}
	withB := t.TempDir()
	if r := e.cliOK("spec", "--bundle", withB); r.stdout != "" || r.stderr != "" {
		t.Errorf("spec printed %q %q", r.stdout, r.stderr)
	}
	check(withB)

	inCwd := t.TempDir()
	e.cliStart(func(c *exec.Cmd) { c.Dir = inCwd }, "spec").waitOK()
	check(inCwd)

	mine := []byte(`{"mine": true}`)
	os.WriteFile(filepath.Join(withB, "config.json"), mine, 0o644)
	wantCLIError(t, "spec over an existing config.json", e.cliRun("spec", "-b", withB), "exist")
	if b, _ := os.ReadFile(filepath.Join(withB, "config.json")); string(b) != string(mine) {
		t.Errorf("spec overwrote config.json: %q", b)
	}
	wantCLIError(t, "spec in a missing directory", e.cliRun("spec", "-b", filepath.Join(withB, "nope")), "nope")
}

// cliLongID returns a unique ID of exactly n characters.
func (e *env) cliLongID(n int) string {
	id := e.id() + "-"
	return id + strings.Repeat("x", n-len(id))
}

// TestLongIDs: a 250-character ID works end to end although its socket
// path is far longer than sun_path; 251 characters are refused.
func TestLongIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.cliLongID(250)
	b := e.bundle([]string{"sh", "-c", "exit 17"}, nil)
	created := e.cliStart(nil, "event", "--event", "created", id)
	e.create(id, b)
	if r := created.wait(); r.code != 0 || decodeEvent(t, r.stdout).ID != id {
		t.Fatalf("event --event created: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	sub := e.subscribe(id, true)
	if st := e.state(id); st.ID != id || st.Status != protocol.StatusCreated {
		t.Errorf("state: %+v", st)
	}
	if q := strings.TrimSpace(e.cliOK("list", "-q").stdout); q != id {
		t.Errorf("list -q = %q", q)
	}
	e.cliOK("start", id)
	r := e.cliOK("event", "--event", "stopped", id)
	wantExit(t, decodeEvent(t, r.stdout), 17, "")
	wantExit(t, next(t, sub, protocol.EventStopped), 17, "")
	e.cliOK("delete", id)
	next(t, sub, protocol.EventDeleted)
	e.wantNoStateDir(id)

	tooLong := e.cliLongID(251)
	for _, args := range [][]string{
		{"create", "--bundle", b, tooLong},
		{"run", "--bundle", b, tooLong},
		{"state", tooLong},
		{"event", tooLong},
	} {
		wantCLIError(t, args[0]+" with a 251-character ID", e.cliRun(args...), "250", "long")
		if leaks := e.leaks(); len(leaks) > 0 {
			t.Errorf("%s with a 251-character ID left: %q", args[0], leaks)
		}
	}
}

// TestBadInput: every bad input gives one line on stderr naming the
// problem, a non-zero exit, and leaves nothing behind.
func TestBadInput(t *testing.T) {
	t.Parallel()
	good := func(e *env) string { return e.bundle([]string{"true"}, nil) }
	withConfig := func(content string) func(e *env) string {
		return func(e *env) string {
			b := good(e)
			if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(content), 0o644); err != nil {
				e.t.Fatal(err)
			}
			return b
		}
	}
	edited := func(edit func(*specs.Spec)) func(e *env) string {
		return func(e *env) string { return e.bundle([]string{"true"}, edit) }
	}
	cases := []struct {
		name   string
		bundle func(e *env) string // "B" in args
		args   []string            // "ID" stands for a fresh ID
		wants  []string
	}{
		{name: "ID with ..", bundle: good, args: []string{"create", "--bundle", "B", "../x"}, wants: []string{"../x"}},
		{name: "empty ID", bundle: good, args: []string{"create", "--bundle", "B", ""}, wants: []string{"empty", "ID"}},
		{name: "ID with a slash", bundle: good, args: []string{"create", "--bundle", "B", "a/b"}, wants: []string{"a/b"}},
		{name: "ID starting with a dot", bundle: good, args: []string{"create", "--bundle", "B", ".hidden"}, wants: []string{".hidden"}},
		{name: "run with a bad ID", bundle: good, args: []string{"run", "--bundle", "B", "../x"}, wants: []string{"../x"}},
		{name: "event with a bad ID", args: []string{"event", "a/b"}, wants: []string{"a/b"}},
		{name: "missing bundle", args: []string{"create", "--bundle", "/nonexistent/bundle", "ID"}, wants: []string{"/nonexistent/bundle"}},
		{name: "bundle is a file", bundle: func(e *env) string {
			f := filepath.Join(e.dir, "not-a-dir")
			os.WriteFile(f, nil, 0o644)
			return f
		}, args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"not-a-dir"}},
		{name: "no config.json", bundle: func(e *env) string { b := good(e); os.Remove(filepath.Join(b, "config.json")); return b }, args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"config.json"}},
		{name: "config.json not JSON", bundle: withConfig("this is not JSON"), args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"config.json"}},
		{name: "config.json empty", bundle: withConfig(""), args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"config.json"}},
		{name: "missing root", bundle: edited(func(s *specs.Spec) { s.Root = nil }), args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"root"}},
		{name: "unknown namespace", bundle: edited(func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogusns"})
		}), args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"bogusns"}},
		{name: "missing rootfs directory", bundle: edited(func(s *specs.Spec) { s.Root.Path = "no-such-rootfs" }), args: []string{"create", "--bundle", "B", "ID"}, wants: []string{"no-such-rootfs", "rootfs"}},
		{name: "run with invalid config", bundle: withConfig("{"), args: []string{"run", "--bundle", "B", "ID"}, wants: []string{"config.json"}},
		{name: "unknown event-buffer type", bundle: good, args: []string{"create", "--bundle", "B", "--event-buffer", "created,bogus", "ID"}, wants: []string{"bogus"}},
		{name: "preserve-fds without the fds", bundle: good, args: []string{"create", "--bundle", "B", "--preserve-fds", "2", "ID"}, wants: []string{"preserve-fds", "descriptor"}},
		{name: "unknown flag", bundle: good, args: []string{"create", "--bogus-flag", "--bundle", "B", "ID"}, wants: []string{"bogus-flag"}},
		{name: "unknown global flag", args: []string{"--bogus-flag", "list"}, wants: []string{"bogus-flag"}},
		{name: "unknown command", args: []string{"frobnicate"}, wants: []string{"frobnicate"}},
		{name: "bad log format", args: []string{"--log-format", "xml", "list"}, wants: []string{"xml"}},
		{name: "create without ID", bundle: good, args: []string{"create", "--bundle", "B"}, wants: []string{"ID"}},
		{name: "create with two IDs", bundle: good, args: []string{"create", "--bundle", "B", "ID", "ID2"}, wants: []string{"ID"}},
		{name: "run without ID", bundle: good, args: []string{"run", "--bundle", "B"}, wants: []string{"ID"}},
		{name: "start without ID", args: []string{"start"}, wants: []string{"ID"}},
		{name: "state without ID", args: []string{"state"}, wants: []string{"ID"}},
		{name: "kill without ID", args: []string{"kill"}, wants: []string{"ID"}},
		{name: "delete without ID", args: []string{"delete"}, wants: []string{"ID"}},
		{name: "event without ID", args: []string{"event"}, wants: []string{"ID"}},
		{name: "start of a missing container", args: []string{"start", "ID"}, wants: []string{"not exist"}},
		{name: "state of a missing container", args: []string{"state", "ID"}, wants: []string{"not exist"}},
		{name: "delete of a missing container", args: []string{"delete", "ID"}, wants: []string{"not exist"}},
		{name: "event with an unknown type", args: []string{"event", "--event", "exploded", "ID"}, wants: []string{"exploded"}},
		{name: "event -H --no-history", args: []string{"event", "-H", "--no-history", "ID"}, wants: []string{"history"}},
		{name: "event with a negative timeout", args: []string{"event", "--timeout", "-1s", "ID"}, wants: []string{"timeout"}},
		{name: "event with a bad timeout", args: []string{"event", "--timeout", "soon", "ID"}, wants: []string{"soon"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			var b string
			if tc.bundle != nil {
				b = tc.bundle(e)
			}
			var args []string
			for _, a := range tc.args {
				switch a {
				case "B":
					a = b
				case "ID":
					a = id
				case "ID2":
					a = id + "-2"
				}
				args = append(args, a)
			}
			r := e.cliRun(args...)
			wantCLIError(t, strings.Join(args, " "), r, tc.wants...)
			if leaks := e.leaks(); len(leaks) > 0 {
				t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
			}
			if entries, _ := os.ReadDir(e.root); len(entries) > 0 {
				t.Errorf("state root has %d entries", len(entries))
			}
		})
	}
}

// TestCreateExistingID: creating an ID that exists fails and leaves the
// first container intact, also when both creates race.
func TestCreateExistingID(t *testing.T) {
	t.Parallel()
	t.Run("sequential", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.id()
		first := e.bundle([]string{"sh", "-c", "exit 5"}, nil)
		second := e.bundle([]string{"sh", "-c", "exit 6"}, nil)
		e.create(id, first)
		before := e.state(id)
		wantCLIError(t, "second create", e.cliRun("create", "--bundle", second, id), "exist")
		if ps := processesMatching(second); len(ps) > 0 {
			t.Errorf("the failed create left %q", ps)
		}
		after := e.state(id)
		if after.Pid != before.Pid || after.Status != protocol.StatusCreated || after.Bundle != first || after.Created != before.Created {
			t.Errorf("first container changed: %+v, was %+v", after, before)
		}
		sub := e.subscribe(id, true)
		e.cliOK("start", id)
		wantExit(t, next(t, sub, protocol.EventStopped), 5, "")
		e.cliOK("delete", id)
	})
	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.id()
		bundles := []string{e.bundle([]string{"sh", "-c", "exit 5"}, nil), e.bundle([]string{"sh", "-c", "exit 6"}, nil)}
		procs := []*cliProc{
			e.cliStart(nil, "create", "--bundle", bundles[0], id),
			e.cliStart(nil, "create", "--bundle", bundles[1], id),
		}
		results := []cliResult{procs[0].wait(), procs[1].wait()}
		winner := -1
		for i, r := range results {
			if r.code == 0 {
				if winner >= 0 {
					t.Fatalf("both creates of %s succeeded", id)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("both creates failed: %q, %q", results[0].stderr, results[1].stderr)
		}
		loser := 1 - winner
		wantCLIError(t, "losing create", results[loser], "exist")
		if ps := processesMatching(bundles[loser]); len(ps) > 0 {
			t.Errorf("the losing create left %q", ps)
		}
		if st := e.state(id); st.Bundle != bundles[winner] || st.Status != protocol.StatusCreated {
			t.Errorf("state %+v, want the winner's bundle %s", st, bundles[winner])
		}
		sub := e.subscribe(id, true)
		e.cliOK("start", id)
		wantExit(t, next(t, sub, protocol.EventStopped), 5+winner, "")
		e.cliOK("delete", id)
	})
}

// TestConcurrentStart: two starts at once on one created container,
// exactly one succeeds and the container starts once.
func TestConcurrentStart(t *testing.T) {
	t.Parallel()
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"sh", "-c", "exit 0"}, nil))
			sub := e.subscribe(id, true)
			a, b := e.cliStart(nil, "start", id), e.cliStart(nil, "start", id)
			ra, rb := a.wait(), b.wait()
			switch {
			case ra.code == 0 && rb.code == 0:
				t.Errorf("both starts succeeded")
			case ra.code != 0 && rb.code != 0:
				t.Errorf("both starts failed: %q, %q", ra.stderr, rb.stderr)
			case ra.code != 0:
				wantCLIError(t, "losing start", ra)
			default:
				wantCLIError(t, "losing start", rb)
			}
			e.cliOK("event", "--event", "stopped", id)
			e.cliOK("delete", id)
			res := collect(sub, nil)
			wantEOF(t, "after deleted", res.end)
			for i, ev := range res.events {
				if ev.Seq != uint64(i+1) {
					t.Errorf("event %+v: seq %d, want %d", ev, ev.Seq, i+1)
				}
			}
			if types, want := typesOf(res.events), containerLifecycle; !slices.Equal(types, want) {
				t.Errorf("events %q, want %q", types, want)
			}
		})
	}
}

// TestDeleteForceMissing: as runc, a forced delete of a container that does
// not exist (any more) succeeds and says nothing: containerd's cleanup runs
// one after every task, and podman's after its own delete. Without --force
// it is still an error (TestBadInput).
func TestDeleteForceMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	r := e.cliOK("delete", "--force", id)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("delete --force of a missing container printed %q %q", r.stdout, r.stderr)
	}
	// And of one that was just deleted.
	e.create(id, e.bundle([]string{"true"}, nil))
	e.cliOK("delete", "--force", id)
	e.cliOK("delete", "--force", id)
	e.wantNoStateDir(id)
}
