package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// The relay (internal/relay): on amd64, state, start, kill, delete, pause
// and resume are handed by crier's pre-runtime entry to the container's
// shim, which runs them as the CLI would. CRIER_RELAY=0 makes the CLI run
// them itself.

// relayed runs the command line through the relay and fails the test if a
// Go runtime started for it: with GODEBUG=inittrace=1 the runtime prints a
// line for each package it initialises, and the relay starts none.
func (e *env) relayed(args ...string) cliResult {
	e.t.Helper()
	r := e.cliStart(func(c *exec.Cmd) { c.Env = append(os.Environ(), "GODEBUG=inittrace=1") }, args...).wait()
	if strings.Contains(r.stderr, "init runtime") || strings.Contains(r.stderr, "init internal/") {
		e.t.Fatalf("crier %s ran in its own Go runtime, not through the shim:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// unrelayed runs the command line in the CLI's own Go runtime.
func (e *env) unrelayed(args ...string) cliResult {
	e.t.Helper()
	return e.cliStart(func(c *exec.Cmd) { c.Env = append(os.Environ(), "CRIER_RELAY=0") }, args...).wait()
}

// sameBothWays runs a command line that changes nothing both ways and
// wants the same output and exit code.
func (e *env) sameBothWays(want int, args ...string) cliResult {
	e.t.Helper()
	r, c := e.relayed(args...), e.unrelayed(args...)
	if r.code != c.code || r.stdout != c.stdout || r.stderr != c.stderr {
		e.t.Fatalf("crier %s:\nrelayed: exit %d, stdout %q, stderr %q\nCLI:     exit %d, stdout %q, stderr %q",
			strings.Join(args, " "), r.code, r.stdout, r.stderr, c.code, c.stdout, c.stderr)
	}
	if r.code != want {
		e.t.Fatalf("crier %s: exit %d, want %d: %s%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// TestRelayMatchesCLI drives a container through every relayed verb, in
// every status, and wants from each command what the CLI says of it.
func TestRelayMatchesCLI(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	out := e.createPiped(id, e.bundle([]string{"sh", "-c", termScript}, nil))

	created := e.sameBothWays(0, "state", id)
	if !strings.Contains(created.stdout, `"status": "created"`) {
		t.Fatalf("state: %s", created.stdout)
	}
	e.sameBothWays(0, "kill", id, "0")
	e.sameBothWays(1, "delete", id)
	e.sameBothWays(1, "resume", id)
	if r := e.relayed("pause", id); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("pause: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	e.sameBothWays(1, "pause", id)
	e.sameBothWays(1, "start", id)
	if st := e.sameBothWays(0, "state", id); !strings.Contains(st.stdout, `"status": "paused"`) {
		t.Fatalf("state: %s", st.stdout)
	}
	if r := e.relayed("resume", id); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("resume: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.relayed("start", id); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("start: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	e.sameBothWays(1, "start", id)
	e.sameBothWays(1, "delete", id)
	e.sameBothWays(0, "kill", id, "0")
	out.until(t, "ready")
	if r := e.relayed("--root", e.root, "kill", "--signal", "TERM", id); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("kill: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	wantExit(t, e.waitStopped(id), 42, "")
	stopped := e.sameBothWays(0, "state", id)
	var st protocol.State
	if err := json.Unmarshal([]byte(stopped.stdout), &st); err != nil || st.Status != protocol.StatusStopped || st.ExitStatus == nil || *st.ExitStatus != 42 {
		t.Fatalf("state once stopped: %v: %s", err, stopped.stdout)
	}
	killed := e.sameBothWays(1, "kill", id, "KILL")
	wantErrorLine(t, "kill of a stopped container", killed, "container not running")
	e.sameBothWays(1, "kill", id, "0")
	e.sameBothWays(1, "pause", id)

	shimPid := e.shimState(id).ShimPid
	if r := e.relayed("delete", id); r.code != 0 || r.stdout+r.stderr != "" {
		t.Fatalf("delete: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	// As the CLI's, a relayed delete returns once the shim has gone.
	if processAlive(shimPid) {
		t.Errorf("shim %d still running after delete returned", shimPid)
	}
	e.assertGone(id)
}

// TestRelayLogFile: a relayed command that fails writes the --log line
// the CLI writes, in both formats, relative paths read from the caller's
// directory.
func TestRelayLogFile(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	stamp := regexp.MustCompile(`"time":"[^"]*"|time="[^"]*"`)
	for _, format := range []string{"json", "text"} {
		var logs [2]string
		for i := range logs {
			name := fmt.Sprintf("log-%s-%d", format, i)
			r := e.cliStart(func(c *exec.Cmd) {
				c.Dir = e.dir
				if i == 0 {
					c.Env = append(os.Environ(), "GODEBUG=inittrace=1")
				} else {
					c.Env = append(os.Environ(), "CRIER_RELAY=0")
				}
			}, "--log", name, "--log-format", format, "delete", id).wait()
			if r.code != 1 || (i == 0 && strings.Contains(r.stderr, "init runtime")) {
				t.Fatalf("delete of a created container (%s, relayed %v): exit %d: %s", format, i == 0, r.code, r.stderr)
			}
			logs[i] = stamp.ReplaceAllString(readFile(t, filepath.Join(e.dir, name)), "TIME")
		}
		if logs[0] != logs[1] || !strings.Contains(logs[0], "stop it first") || strings.Count(logs[0], "stop it first") != 1 {
			t.Errorf("%s log: relayed %q, CLI %q", format, logs[0], logs[1])
		}
	}
}

// TestRelayOnlyToOwnUser performs the attack the relay's peer check
// stops: another user serves a socket where a container's shim would be.
// The relay must not send it the command line (nor read its answer); the
// CLI then refuses the directory as it always has.
func TestRelayOnlyToOwnUser(t *testing.T) {
	e := newEnv(t)
	root := filepath.Join(e.dir, "root-theirs")
	dir := filepath.Join(root, "c1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, 65534, 65534)
	sock := filepath.Join(dir, protocol.SocketName)
	helper := exec.Command(e.linkSelf("fake-shim"))
	helper.Env = []string{fakeShimEnv + "=" + sock}
	helper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		helper.Process.Kill()
		helper.Wait()
		t.Fatalf("fake shim: %q", lines.Text())
	}
	for _, args := range [][]string{{"state", "c1"}, {"start", "c1"}, {"delete", "--force", "c1"}} {
		r := e.cliStart(nil, append([]string{"--root", root}, args...)...).wait()
		if r.code == 0 || r.stdout != "" {
			t.Errorf("%s through another user's socket: exit %d, stdout %q", args[0], r.code, r.stdout)
		}
	}
	helper.Process.Kill()
	for lines.Scan() {
		if l := lines.Text(); l != "got 0 bytes" {
			t.Errorf("the other user's server %s", l)
		}
	}
	helper.Wait()
}

// fakeShimEnv, when set, makes the test binary the other user's server of
// TestRelayOnlyToOwnUser (see init): it listens at the path in the
// variable, answers each connection as a shim accepting a relayed command
// would, and says how many bytes the client sent it.
const fakeShimEnv = "CRIER_TEST_FAKE_SHIM"

// init runs before TestMain, so the helper, started as another user,
// never reaches the suite setup (which needs root).
func init() {
	if path := os.Getenv(fakeShimEnv); path != "" {
		fakeShim(path)
		os.Exit(0)
	}
}

func fakeShim(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("CRIER\x00\x01A" + "O\x0b\x00\x00{\"id\":\"c1\"}" + "X\x01\x00\x00\x00"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n := 0
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			n += k
			if err != nil {
				break
			}
		}
		fmt.Printf("got %d bytes\n", n)
		c.Close()
	}
}

// TestRelayNotThroughLinks performs the attack the shim's check of root
// and ID stops: a root whose entries link to another root's container.
// The shim at the end of the link must not answer for a container it is
// not, whether the ID differs or only the root.
func TestRelayNotThroughLinks(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	other := filepath.Join(e.dir, "root-linked")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{id, "other-" + id} {
		if err := os.Symlink(filepath.Join(e.root, id), filepath.Join(other, name)); err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"state", "kill"} {
			r := e.cliStart(nil, "--root", other, verb, name).wait()
			if r.code == 0 || r.stdout != "" {
				t.Errorf("%s %s in a root of links: exit %d, stdout %q", verb, name, r.code, r.stdout)
			}
		}
	}
	if st := e.state(id); st.Status != protocol.StatusCreated {
		t.Errorf("the container behind the links is %s", st.Status)
	}
}

// TestRelayShimDiesUnderCommand: a shim that dies while it runs a relayed
// start leaves the caller one line and exit 1, not a hang.
func TestRelayShimDiesUnderCommand(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		// Poststart hooks are the shim's children: this one kills it.
		s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "kill -9 $PPID"}}}}
	}))
	r := e.relayed("start", id)
	wantErrorLine(t, "start under a dying shim", r, "the container's shim exited before it answered")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
}

// startEvent starts `crier event` relayed (or with CRIER_RELAY=0) and
// returns it running.
func (e *env) startEvent(relayed bool, args ...string) *cliProc {
	e.t.Helper()
	return e.cliStart(func(c *exec.Cmd) {
		if relayed {
			c.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		} else {
			c.Env = append(os.Environ(), "CRIER_RELAY=0")
		}
	}, append([]string{"event"}, args...)...)
}

// TestRelayEventMatchesCLI: relayed and not, `crier event` prints the
// same lines and ends the same way, from the history and live, with and
// without --monitor, and when the container is deleted before the event
// it waits for.
func TestRelayEventMatchesCLI(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	out := e.createPiped(id, e.bundle([]string{"sh", "-c", termScript}, nil))
	e.sameBothWays(0, "event", "--event", "created", id)
	e.sameBothWays(0, "event", id)
	e.sameBothWays(0, "event", "--timeout", "1m", "-e", "created", id)
	timedOut := e.sameBothWays(1, "event", "--timeout", "100ms", "--event", "paused", "-e", "stopped", id)
	wantErrorLine(t, "event --timeout", timedOut, "timed out after 100ms waiting for paused or stopped of container")

	type pair struct{ relayed, cli *cliProc }
	both := func(args ...string) pair {
		return pair{e.startEvent(true, args...), e.startEvent(false, args...)}
	}
	// Each waiter holds one connection to the shim once subscribed.
	sockets := e.shimSockets(id)
	waits := map[string]pair{
		"stopped":        both("-e", "stopped", id),
		"started or oom": both("--event", "oom", "--event=started", id),
		"monitor":        both("--monitor", id),
		"never paused":   both("-e", "paused", "--no-history", id),
		"live only":      both("-m", "--no-history", "-e", "stopped", "-e", "deleted", id),
	}
	if !e.waitSockets(id, sockets+len(waits)*2) {
		for name, p := range waits {
			p.relayed.cmd.Process.Kill()
			p.cli.cmd.Process.Kill()
			r, c := p.relayed.wait(), p.cli.wait()
			t.Logf("%s: relayed %d %q %q; CLI %d %q %q", name, r.code, r.stdout, r.stderr, c.code, c.stdout, c.stderr)
		}
		t.FailNow()
	}
	e.cliOK("start", id)
	out.until(t, "ready")
	e.cliOK("kill", id, "TERM")
	wantExit(t, e.waitStopped(id), 42, "")
	e.sameBothWays(0, "event", "--event", "stopped", id)
	e.cliOK("delete", id)
	for name, p := range waits {
		r, c := p.relayed.wait(), p.cli.wait()
		if strings.Contains(r.stderr, "init runtime") {
			t.Errorf("%s: the relayed event ran in its own Go runtime", name)
		}
		if r.code != c.code || r.stdout != c.stdout || r.stderr != c.stderr {
			t.Errorf("event %s:\nrelayed: exit %d, stdout %q, stderr %q\nCLI:     exit %d, stdout %q, stderr %q",
				name, r.code, r.stdout, r.stderr, c.code, c.stdout, c.stderr)
		}
	}
}

// TestRelayEventAcrossReexec: a relayed event waiting since before the
// shim went idle is handed to the serving image with its filter, and
// still gets its event, once.
func TestRelayEventAcrossReexec(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	waiting := e.startEvent(true, "--event", "stopped", "-e", "paused", "--timeout", "1h", id)
	e.cliOK("start", id)
	waitServing(t, e.shimState(id).ShimPid)
	e.cliOK("kill", id, "KILL")
	r := waiting.wait()
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"type":"stopped"`) || r.stderr != "" {
		t.Errorf("event across the re-exec: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.cliOK("delete", id)
}

// shimSockets counts the sockets among the descriptors of id's shim.
func (e *env) shimSockets(id string) int {
	e.t.Helper()
	return socketCount(e.shimState(id).ShimPid)
}

// waitSockets waits until id's shim holds at least n sockets, and
// reports whether it came to.
func (e *env) waitSockets(id string, n int) bool {
	e.t.Helper()
	deadline := time.Now().Add(hangDeadline)
	for {
		got := e.shimSockets(id)
		if got >= n {
			return true
		}
		if time.Now().After(deadline) {
			e.t.Errorf("the shim of %s holds %d sockets, want %d", id, got, n)
			return false
		}
		// Nothing tells when a client's subscription is in place
		// but its socket in the shim.
		time.Sleep(5 * time.Millisecond)
	}
}
