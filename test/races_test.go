package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// Races (issue 13): requests that meet at the worst moment each end in a
// consistent state: one winner, clear errors for the others, nothing left.
// Two starts at once: TestConcurrentStart and TestShimConcurrentStarts.

// TestRaceCreateSameID: 50 creates of one ID at once, each from its own
// bundle: exactly one wins, the 49 others fail with one line saying the
// container already exists, and leave nothing: no process, no temporary
// state directory, and the winner's cgroups and container untouched.
func TestRaceCreateSameID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	rootfs := e.sharedRootfs()
	const n = 50
	bundles := make([]string, n)
	for i := range bundles {
		bundles[i] = e.bundleOn(rootfs, []string{"sh", "-c", fmt.Sprintf("exit %d", i)})
	}
	procs := make([]*cliProc, n)
	for i, b := range bundles {
		procs[i] = e.cliStart(nil, "create", "--bundle", b, id)
	}
	winner := -1
	for i, p := range procs {
		r := p.wait()
		if r.code == 0 {
			if winner >= 0 {
				t.Errorf("creates %d and %d both succeeded", winner, i)
			}
			winner = i
			continue
		}
		wantCLIError(t, fmt.Sprintf("create %d", i), r, "already exists")
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	for i, b := range bundles {
		// An init forked before the loser found the ID taken
		// (container.ForkAhead) has only its directory in the bundle.
		if ps := append(processesMatching(b), processesWithCwd(b)...); i != winner && len(ps) > 0 {
			t.Errorf("losing create %d left %q", i, ps)
		}
	}
	entries, _ := os.ReadDir(e.root)
	if len(entries) != 1 || entries[0].Name() != id {
		t.Errorf("state root holds %v, want only %s", names(entries), id)
	}
	if st := e.state(id); st.Bundle != bundles[winner] || st.Status != protocol.StatusCreated {
		t.Errorf("state %+v, want the winner's bundle %s, created", st, bundles[winner])
	}
	if len(cgroupDirsOf(id)) == 0 {
		t.Errorf("the winner's cgroups are gone: a loser removed them")
	}
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	wantExit(t, next(t, sub, protocol.EventStopped), winner, "")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestRaceDeleteForceDuringCreate: delete --force while create is held in
// its createRuntime hook. Whichever order the shim takes them in, create
// and delete each succeed or fail with one line, and once the hook is let
// go and both have returned, the container is gone: no state directory,
// cgroup or process.
func TestRaceDeleteForceDuringCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	gate := e.gate("createRuntime")
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{gate.hook()}}
	})
	create := e.cliStart(nil, "create", "--bundle", b, id)
	gate.waitHeld(t)
	del := e.cliStart(nil, "delete", "--force", id)
	waitConnected(t, del)
	gate.release()
	rc, rd := create.wait(), del.wait()
	t.Logf("create: exit %d %q; delete --force: exit %d %q", rc.code, rc.stderr, rd.code, rd.stderr)
	if rc.code != 0 {
		wantCLIError(t, "create", rc)
	}
	if rd.code != 0 {
		wantCLIError(t, "delete --force", rd)
	}
	if rc.code == 0 && rd.code == 0 {
		// The delete came second: it removed the created container.
		e.wantNoStateDir(id)
	}
	if _, err := os.Lstat(shim.Dir(e.root, id)); err == nil {
		// The delete came first and found nothing to delete yet: what
		// create made is a container like any other.
		e.cliOK("delete", "--force", id)
	}
	e.assertGone(id)
	if ps := processesMatching(b); len(ps) > 0 {
		t.Errorf("left %q", ps)
	}
}

// TestRaceKillDuringStart: crier kill KILL while start is held in the
// startContainer hook. Both return, each with success or one line; the
// container (a sleep) has exactly one stopped event, exit 137 from the
// SIGKILL, whether the kill or a later one reached it, and delete then
// removes everything.
func TestRaceKillDuringStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	gate := e.gate("startContainer")
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/gate", Type: "bind", Source: gate.dir, Options: []string{"rbind", "rw"}})
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{gate.hookIn("/gate")}}
	})
	e.create(id, b)
	sub := e.subscribe(id, true)
	start := e.cliStart(nil, "start", id)
	gate.waitHeld(t)
	kill := e.cliStart(nil, "kill", id, "KILL")
	waitConnected(t, kill)
	gate.release()
	rs, rk := start.wait(), kill.wait()
	t.Logf("start: exit %d %q; kill: exit %d %q", rs.code, rs.stderr, rk.code, rk.stderr)
	if rs.code != 0 {
		wantCLIError(t, "start", rs)
	}
	if rk.code != 0 {
		wantCLIError(t, "kill", rk)
		// The kill did not reach the container: end it now.
		e.cliOK("kill", id, "KILL")
	}
	wantExit(t, next(t, sub, protocol.EventStopped), 137, "SIGKILL")
	e.cliOK("delete", id)
	res := collect(sub, nil)
	wantEOF(t, "subscriber", res.end)
	if got := typesOf(res.events); len(got) != 1 || got[0] != protocol.EventDeleted {
		t.Errorf("after stopped: %v, want only deleted (one stopped)", got)
	}
	e.assertGone(id)
}

// TestRaceDeleteWhileSubscribing: 100 subscribers connect while delete
// --force removes the running container. Each ends in one of two ways: its
// subscribe fails with an error that says the container is gone (or its
// shim went away), or its stream ends with deleted and then EOF. None
// hangs, and nothing is left.
func TestRaceDeleteWhileSubscribing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	e.cliOK("start", id)
	const n = 100
	outcomes := make([]string, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	// Spread over a delete's time and after (it takes some 100 to 300 ms here), so that
	// subscribers come before, during and after it.
	spread := 200 * time.Millisecond
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			time.Sleep(spread * time.Duration(i) / n)
			outcomes[i] = subscribeToEnd(e, id)
		}()
	}
	del := e.cliStart(nil, "delete", "--force", id)
	close(gate)
	del.waitOK()
	wg.Wait()
	counts := map[string]int{}
	for i, o := range outcomes {
		kind, _, _ := strings.Cut(o, ":")
		counts[o[strings.LastIndex(o, ":")+1:]]++
		if kind != "deleted" && kind != "refused" {
			t.Errorf("subscriber %d: %s", i, o)
		}
	}
	t.Logf("outcomes: %v", counts)
	e.assertGone(id)
}

// TestDeleteForceSweepsAbandonedCreate: a shim killed after it made its
// temporary state directory and before it claimed the ID (statedir's
// NewTemp, Publish) leaves a directory that no ID names. delete --force of
// the ID, which finds nothing, removes it, and leaves one whose maker is
// alive. make soak found such directories left.
func TestDeleteForceSweepsAbandonedCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	dead := exec.Command("/bin/true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := container.StartTime(dead.Process.Pid) // a zombie until Wait
	if err != nil {
		t.Fatal(err)
	}
	dead.Wait()
	selfStart, err := container.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	abandoned := filepath.Join(e.root, fmt.Sprintf(".new-%d-%d-0123456789abcdef", dead.Process.Pid, start))
	alive := filepath.Join(e.root, fmt.Sprintf(".new-%d-%d-fedcba9876543210", os.Getpid(), selfStart))
	for _, d := range []string{abandoned, alive} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "state.json"), []byte("{}"), 0o600)
	}
	os.Chmod(e.root, 0o700)
	if r := e.cliOK("delete", "--force", id); r.stderr != "" {
		t.Errorf("delete --force printed %q", r.stderr)
	}
	if _, err := os.Lstat(abandoned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the abandoned directory is left: %v", err)
	}
	if _, err := os.Lstat(alive); err != nil {
		t.Errorf("the directory of a live maker was removed: %v", err)
	}
	os.RemoveAll(alive)
}

// subscribeToEnd subscribes to id and reads to the end, and says how it
// went: "deleted" (the stream ended with deleted, then EOF), "refused: ..."
// (the container or its shim was gone: a clear error), or anything else,
// which is wrong.
func subscribeToEnd(e *env, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	c, err := protocol.Dial(ctx, shim.SocketPath(e.root, id))
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return "refused: " + err.Error()
		}
		return "dial: " + err.Error()
	}
	defer c.Close()
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		if errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) || errors.Is(err, protocol.ErrNotExist) {
			return "refused: " + err.Error()
		}
		return "subscribe: " + err.Error()
	}
	res := collect(c, nil)
	n := len(res.events)
	if n == 0 || res.events[n-1].Type != protocol.EventDeleted {
		return fmt.Sprintf("stream %v ended with %v, not after deleted", typesOf(res.events), res.end)
	}
	if !errors.Is(res.end, io.EOF) || errors.Is(res.end, io.ErrUnexpectedEOF) {
		return fmt.Sprintf("after deleted: %v, want EOF", res.end)
	}
	return "deleted"
}

// ---------------------------------------------------------------------------
// Helpers.

// sharedRootfs extracts one busybox rootfs for many bundles (bundleOn).
func (e *env) sharedRootfs() string {
	e.t.Helper()
	dir := filepath.Join(e.dir, "rootfs")
	os.Mkdir(dir, 0o755)
	if out, err := exec.Command("tar", "xzf", suite.rootfs, "-C", dir).CombinedOutput(); err != nil {
		e.t.Fatalf("extract rootfs: %v: %s", err, out)
	}
	return dir
}

// bundleOn makes a bundle whose process runs args on rootfs, read-only.
func (e *env) bundleOn(rootfs string, args []string) string {
	e.t.Helper()
	dir, err := os.MkdirTemp(e.dir, "bundle-")
	if err != nil {
		e.t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	spec := e.specFor(dir)
	spec.Process.Terminal = false
	spec.Process.Args = args
	spec.Root = &specs.Root{Path: rootfs, Readonly: true}
	writeSpec(e.t, dir, spec)
	return dir
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// hookGate holds a hook until the test lets it go: the hook reads a FIFO,
// which blocks until the test opens it for writing (the hook is then
// running: waitHeld) and returns once the test closes it (release).
type hookGate struct {
	dir, name string
	opened    chan *os.File
	w         *os.File
}

func (e *env) gate(kind string) *hookGate {
	e.t.Helper()
	g := &hookGate{dir: e.hostDir("gate-" + kind), name: kind + ".fifo", opened: make(chan *os.File, 1)}
	if err := unix.Mkfifo(filepath.Join(g.dir, g.name), 0o600); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		f, _ := os.OpenFile(filepath.Join(g.dir, g.name), os.O_WRONLY, 0) // until the hook opens it
		g.opened <- f
	}()
	e.t.Cleanup(func() {
		// Free the opener and the hook whatever happened.
		if r, err := os.OpenFile(filepath.Join(g.dir, g.name), os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		g.release()
	})
	return g
}

// hook is the hook as run on the host.
func (g *hookGate) hook() specs.Hook { return g.hookIn(g.dir) }

// hookIn is the hook as run where the gate's directory is at dir.
func (g *hookGate) hookIn(dir string) specs.Hook {
	timeout := int(hangDeadline / time.Second)
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat " + filepath.Join(dir, g.name) + " >/dev/null"}, Timeout: &timeout}
}

// waitHeld waits until the hook runs, held.
func (g *hookGate) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case g.w = <-g.opened:
	case <-time.After(hangDeadline):
		t.Fatalf("the hook never opened %s", g.name)
	}
}

// release lets the hook finish.
func (g *hookGate) release() {
	if g.w == nil {
		select {
		case g.w = <-g.opened:
		default:
			return
		}
	}
	if g.w != nil {
		g.w.Close()
		g.w = nil
	}
}

// waitConnected waits until the CLI run p holds a socket: it has connected
// to the shim, and its request is on its way.
func waitConnected(t *testing.T, p *cliProc) {
	t.Helper()
	deadline := time.Now().Add(hangDeadline)
	for time.Now().Before(deadline) {
		if holdsSocket(p.cmd.Process.Pid) {
			return
		}
		if procState(p.cmd.Process.Pid) == 'Z' || procState(p.cmd.Process.Pid) == 0 {
			return // it has finished without waiting
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("crier %s never connected", strings.Join(p.args, " "))
}

func holdsSocket(pid int) bool { return socketCount(pid) > 0 }

// socketCount counts the sockets process pid holds.
func socketCount(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	n := 0
	for _, e := range entries {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestDeleteFinishesCutRemoval: a shim killed while it removes its state
// directory (the state file goes first) leaves the rest: the config, the
// journal, the socket file with nobody listening. delete, forced or not,
// finishes the removal; before, every command said the container did not
// exist and the directory stayed for good. make soak found it (a shim
// killed during delete).
func TestDeleteFinishesCutRemoval(t *testing.T) {
	t.Parallel()
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"true"}, nil))
			e.cliOK("delete", "--force", id)
			// What the killed shim left.
			dir := shim.Dir(e.root, id)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o600)
			os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte{}, 0o600)
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: shim.SocketPath(e.root, id)}); err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			args := []string{"delete", id}
			if force {
				args = []string{"delete", "--force", id}
			}
			e.cliOK(args...)
			e.assertGone(id)
		})
	}
}
