//go:build clients

package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// client is one of the three systems, running in its sandbox. Names are
// the client's names for containers; id returns the runtime's.
type client interface {
	base() *sandbox
	// run runs o attached, removing the container at the end (--rm).
	run(t *testing.T, o runOpts) result
	// runDetached starts o in the background and returns its name.
	runDetached(t *testing.T, o runOpts) string
	id(t *testing.T, name string) string
	exec(t *testing.T, name string, tty bool, args ...string) result
	pause(t *testing.T, name string)
	unpause(t *testing.T, name string)
	// status is "running", "paused" or "exited".
	status(t *testing.T, name string) string
	// stop asks the container to stop, and kills it after grace.
	stop(t *testing.T, name string, grace time.Duration)
	// startWait starts waiting for the container's exit, the client's
	// way; the waiter returns the exit code the client reports.
	startWait(t *testing.T, name string) func(*testing.T) int
	// exitCode is the exit code the client shows for a stopped container.
	exitCode(t *testing.T, name string) int
	kill(t *testing.T, name string)
	remove(t *testing.T, name string, force bool)
	exists(t *testing.T, name string) bool
	// pid is the host pid of the container's process, as the client knows it.
	pid(t *testing.T, name string) int
	// top is what the client lists of the container's processes.
	top(t *testing.T, name string) string
	// statsPids is the process count of the client's stats.
	statsPids(t *testing.T, name string) int
	// shutdown removes every container through the client, then stops
	// its daemons.
	shutdown(t *testing.T)
}

// runOpts is a container to run.
type runOpts struct {
	name   string
	tty    bool
	volume string // a host directory to bind at /sync
	pidOf  string // join this container's pid namespace
	args   []string
}

// sandbox is what every client's sandbox has.
type sandbox struct {
	kind       string // podman, containerd, docker
	dir        string
	supervisor string // the command name of the container process's parent
	// rtRoot is the --root the client gives the runtime ("" for none: the
	// runtime's default).
	rtRoot string
	// shimSocket, for containerd and docker, is where containerd puts the
	// socket of a container's shim: outside the sandbox.
	shimSocket func(id string) string
	trace      trace
	names      int
}

// newSandbox makes the directory of one client's sandbox and registers
// its teardown: the client's own cleanup, then a sweep of whatever it
// left, which is an error.
func newSandbox(t *testing.T, kind, supervisor string) *sandbox {
	t.Helper()
	dir := filepath.Join(suite.tmp, kind)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &sandbox{kind: kind, dir: dir, supervisor: supervisor,
		trace: trace{dir: dir, cgroupParent: suite.prefix + "-" + kind}}
}

// tearDown makes c clean up after itself, then checks what is left of the
// sandbox, and sweeps it away.
func tearDown(t *testing.T, c client) {
	sb := c.base()
	c.shutdown(t)
	for _, id := range sb.trace.ids {
		sb.runtimeDelete(id)
	}
	sb.trace.settle(10 * time.Second)
	if left := sb.trace.leftovers(); len(left) > 0 {
		t.Errorf("%s left behind (now swept):\n  %s", sb.kind, strings.Join(left, "\n  "))
	}
	sb.trace.sweep()
	if left := sb.trace.leftovers(); len(left) > 0 {
		t.Errorf("%s: could not sweep:\n  %s", sb.kind, strings.Join(left, "\n  "))
	}
}

// name returns a container name unique in the run.
func (sb *sandbox) name() string {
	sb.names++
	return fmt.Sprintf("%s-%s-%d", suite.prefix, sb.kind, sb.names)
}

// remember records a runtime container ID, for the leak checks and the
// sweep.
func (sb *sandbox) remember(id string) {
	for _, known := range sb.trace.ids {
		if known == id {
			return
		}
	}
	sb.trace.ids = append(sb.trace.ids, id)
	sb.trace.paths = append(sb.trace.paths, sb.stateDir(id))
	if sb.shimSocket != nil {
		sb.trace.paths = append(sb.trace.paths, sb.shimSocket(id))
	}
}

// stateDir is the runtime's state directory of container id, as the
// client has the runtime put it (runc and crier both use ROOT/ID).
func (sb *sandbox) stateDir(id string) string {
	root := sb.rtRoot
	if root == "" {
		root = "/run/runc"
		if suite.crier {
			root = "/run/crier"
		}
	}
	return filepath.Join(root, id)
}

// runtime runs the runtime under test with the root the client gives it.
func (sb *sandbox) runtime(ctx context.Context, args ...string) *exec.Cmd {
	var all []string
	if sb.rtRoot != "" {
		all = append(all, "--root", sb.rtRoot)
	}
	return exec.CommandContext(ctx, suite.runtime, append(all, args...)...)
}

// runtimeState is the runtime's own `state` of a container, as the client
// set it up; ok is false when the runtime does not know it.
func (sb *sandbox) runtimeState(t *testing.T, id string) (st struct {
	Status string
	Pid    int
}, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), *stepFlag)
	defer cancel()
	out, err := sb.runtime(ctx, "state", id).Output()
	if ctx.Err() != nil {
		t.Fatalf("%s state %s: no answer after %v", suite.runtime, id, *stepFlag)
	}
	if err != nil {
		return st, false
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%s state %s: %v: %s", suite.runtime, id, err, out)
	}
	return st, true
}

// runtimeDelete force-deletes what the client left in the runtime: the
// sweep's first step, so that the runtime's own clean-up runs.
func (sb *sandbox) runtimeDelete(id string) {
	if _, err := os.Stat(sb.stateDir(id)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb.runtime(ctx, "delete", "--force", id).Run()
}

// daemon is a long-running process of a sandbox (containerd, dockerd).
type daemon struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startDaemon starts a sandbox's daemon with its output to a log file in
// the sandbox, in its own process group, away from the test's signals.
func startDaemon(t *testing.T, dir, name string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.Dir = dir
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	return d
}

// waitReady waits until ready says the daemon answers, and fails the test
// with the daemon's log if it exits first.
func (d *daemon) waitReady(t *testing.T, ready func() bool) {
	t.Helper()
	exited := false
	waitFor(t, filepath.Base(d.cmd.Path)+" to answer", func() bool {
		select {
		case <-d.done:
			exited = true
			return true
		default:
			return ready()
		}
	})
	if exited {
		t.Fatalf("%s exited before it answered: %v\n%s", d.cmd.Path, d.cmd.ProcessState, d.logTail())
	}
}

// stop asks the daemon to exit, and kills it if it has not in 15 seconds.
func (d *daemon) stop(t *testing.T) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not exit on SIGTERM in 15s: killed", d.cmd.Path)
		d.cmd.Process.Kill()
		<-d.done
	}
}

// logTail is the end of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
