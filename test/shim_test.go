package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// ---------------------------------------------------------------------------
// Helpers for talking to the shim and watching processes.

// rawDial connects to the shim socket without the Go client.
func rawDial(t *testing.T, e *env, id string) *net.UnixConn {
	t.Helper()
	c, err := dialSocket(shim.SocketPath(e.root, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialSocket is net.Dial("unix", path) for paths of any length: test state
// roots are deep, and sun_path holds 108 bytes, so a long path is reached
// through an O_PATH descriptor of its directory.
func dialSocket(path string) (*net.UnixConn, error) {
	if len(path) < 100 {
		c, err := net.Dial("unix", path)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	c, err := net.Dial("unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// readLines reads newline-terminated lines from r until it ends, until
// stop says so, or until the connection's deadline. It returns the lines
// and the error that ended the stream (nil when stop ended it).
func readLines(r *bufio.Reader, stop func([]string) bool) ([]string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
			if stop != nil && stop(lines) {
				return lines, nil
			}
		}
		if err != nil {
			return lines, err
		}
	}
}

// closedConn reports whether err means the peer closed the connection, as
// opposed to a timeout.
func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// rawRequest sends one request line on a fresh connection and returns the
// parsed reply.
func rawRequest(t *testing.T, e *env, id, line string) protocol.Reply {
	t.Helper()
	c := rawDial(t, e, id)
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangDeadline))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("write %s: %v", line, err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reply to %s: %v (read %q)", line, err, got)
	}
	var r protocol.Reply
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("reply to %s is not JSON: %q", line, got)
	}
	return r
}

// startAndStop starts a created container whose process exits 0 at once,
// and checks that it stops with status 0 and deletes cleanly.
func (e *env) startAndStop(id string) {
	e.t.Helper()
	sub := e.subscribe(id, false)
	e.cliOK("start", id)
	wantExit(e.t, next(e.t, sub, protocol.EventStopped), 0, "")
	e.cliOK("delete", id)
	next(e.t, sub, protocol.EventDeleted)
	if res := collect(sub, nil); len(res.events) > 0 {
		e.t.Errorf("after deleted: %q, want EOF", typesOf(res.events))
	} else {
		wantEOF(e.t, "after deleted", res.end)
	}
}

// ---------------------------------------------------------------------------
// SIGKILL of the shim.

// TestShimKilledContainerSurvives kills a running container's shim: the
// container keeps running, state still answers, a subscriber sees the
// stream end (not a hang), kill signals the pid directly, and delete then
// cleans up.
func TestShimKilledContainerSurvives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, nil)
	e.create(id, b)
	sub := e.subscribe(id, false)
	e.cliOK("start", id)
	st := e.shimState(id)
	if st.Status != protocol.StatusRunning || st.Pid <= 0 || st.PidStart == 0 {
		t.Fatalf("state file after start: %+v", st)
	}
	pid := st.Pid
	pidfd := openPidfd(t, pid)

	killShim(t, st)

	// The container process is the same process as before.
	if start, err := container.StartTime(pid); err != nil || start != st.PidStart {
		t.Fatalf("container process %d after the shim died: start time %d, %v; want %d", pid, start, err, st.PidStart)
	}
	if pidfdExited(pidfd, 0) {
		t.Fatalf("container process %d exited with its shim", pid)
	}
	if !container.Alive(pid, st.PidStart) {
		t.Fatalf("container process %d is not alive after the shim died", pid)
	}

	// A subscriber learns that the shim is gone.
	res := collect(sub, nil)
	if !errors.Is(res.end, io.ErrUnexpectedEOF) {
		t.Errorf("subscriber after the shim died: %v, want io.ErrUnexpectedEOF", res.end)
	}
	for _, ev := range res.events {
		if ev.Type != protocol.EventStarted {
			t.Errorf("subscriber got %+v after the shim died", ev)
		}
	}
	// The next command brings a new shim back, which has the history.
	if ev := decodeEvent(t, e.cliOK("event", "--timeout", "20s", id).stdout); ev.Type != protocol.EventCreated {
		t.Errorf("event after the shim died: %+v, want created from a new shim", ev)
	}
	if got := e.state(id); got.Status != protocol.StatusRunning || got.Pid != pid {
		t.Errorf("state after the shim died = %s pid %d, want running pid %d", got.Status, got.Pid, pid)
	}

	e.cliOK("kill", id, "KILL")
	if !pidfdExited(pidfd, hangDeadline) {
		t.Fatalf("container process %d still runs after crier kill KILL", pid)
	}
	wantExit(t, e.waitStopped(id), 137, "SIGKILL")
	if got := e.state(id); got.Status != protocol.StatusStopped {
		t.Errorf("state after kill = %s, want stopped", got.Status)
	}
	e.cliOK("delete", id)
	e.wantNoStateDir(id)
	wantNoCgroups(t, id)
}

// TestShimKilledDeleteForce force-deletes a container whose shim was
// SIGKILLed, while the container was running or only created.
func TestShimKilledDeleteForce(t *testing.T) {
	t.Parallel()
	for _, started := range []bool{true, false} {
		name := "created"
		if started {
			name = "running"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sleep", "1000"}, nil)
			e.create(id, b)
			if started {
				e.cliOK("start", id)
			}
			st := e.shimState(id)
			if st.Pid <= 0 {
				t.Fatalf("state file has no pid: %+v", st)
			}
			if len(cgroupDirsOf(id)) == 0 {
				t.Fatalf("no cgroup directories for %s under /sys/fs/cgroup/*", id)
			}
			pidfd := openPidfd(t, st.Pid)
			killShim(t, st)
			if started && pidfdExited(pidfd, 0) {
				t.Fatalf("container process exited with its shim")
			}

			if started {
				if r := e.cliRun("delete", id); r.code == 0 {
					t.Fatalf("delete without --force of a running container with a dead shim succeeded: %s%s", r.stdout, r.stderr)
				}
			}
			e.cliOK("delete", "--force", id)
			if !pidfdExited(pidfd, 0) {
				t.Errorf("container process %d still runs after delete --force returned", st.Pid)
			}
			e.wantNoStateDir(id)
			wantNoCgroups(t, id)
			if r := e.cliRun("state", id); r.code == 0 {
				t.Errorf("state after delete --force succeeded: %s%s", r.stdout, r.stderr)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Garbage on the socket.

// TestShimSocketGarbage sends each kind of bad input to a fresh container's
// shim: it must answer with an error and/or close the connection, and then
// still serve state, start and delete as if nothing had happened.
func TestShimSocketGarbage(t *testing.T) {
	t.Parallel()
	random := make([]byte, 8192)
	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'r', 'i', 'e', 'r'}))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random = append(random, '\n')
	long := []byte(`{"op":"state","pad":"` + strings.Repeat("x", protocol.MaxLine+1024) + `"}` + "\n")

	cases := []struct {
		name    string
		payload []byte
		// hangUp closes the write side right after the payload: the shim
		// cannot wait for the rest of the line.
		hangUp bool
		// firstOK: the first reply answers a valid request.
		firstOK bool
	}{
		{name: "random bytes", payload: random},
		{name: "random bytes then hang up", payload: random[:4000], hangUp: true},
		{name: "NUL bytes", payload: append(bytes.Repeat([]byte{0}, 100), '\n')},
		{name: "malformed JSON", payload: []byte(`{"op":"state"` + "\n")},
		{name: "not an object", payload: []byte(`["op","state"]` + "\n")},
		{name: "op of the wrong type", payload: []byte(`{"op":42}` + "\n")},
		{name: "empty object", payload: []byte("{}\n")},
		{name: "empty line", payload: []byte("\n")},
		{name: "unknown op", payload: []byte(`{"op":"frobnicate"}` + "\n")},
		{name: "kill with a bad signal", payload: []byte(`{"op":"kill","signal":4242}` + "\n")},
		{name: "over-long line", payload: long},
		{name: "over-long line without newline", payload: long[:len(long)-1], hangUp: true},
		{name: "half-sent request then close", payload: []byte(`{"op":"sta`), hangUp: true},
		{name: "valid request then garbage", payload: []byte(`{"op":"state"}` + "\n" + "\x01\x02garbage}}\n"), firstOK: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"true"}, nil)
			e.create(id, b)
			created := e.shimState(id)

			c := rawDial(t, e, id)
			c.SetDeadline(time.Now().Add(hangDeadline))
			// The shim may stop reading part-way (over-long line): write
			// from a goroutine and ignore its error.
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				c.Write(tc.payload)
				if tc.hangUp {
					c.CloseWrite()
				}
			}()
			r := bufio.NewReader(c)
			// First response: a line, or the connection closed. A shim that
			// neither answers nor hangs up is stuck on the input.
			lines, err := readLines(r, func(l []string) bool { return !tc.hangUp && len(l) == 1 })
			if err != nil && !closedConn(err) {
				t.Fatalf("no reply and no hang-up: %v (lines %q)", err, lines)
			}
			if err == nil {
				// Got a reply on an open connection; after we hang up,
				// the shim must close it too.
				<-wrote
				c.CloseWrite()
				more, err := readLines(r, nil)
				lines = append(lines, more...)
				if !closedConn(err) {
					t.Errorf("after the client hung up: %v, want the shim to close", err)
				}
			}
			<-wrote
			if len(lines) == 0 {
				t.Logf("no reply; the shim closed the connection")
			}
			for i, line := range lines {
				var rep protocol.Reply
				if err := json.Unmarshal([]byte(line), &rep); err != nil {
					t.Errorf("reply %d is not JSON: %q", i, line)
					continue
				}
				if i == 0 && tc.firstOK {
					if !rep.OK || rep.State == nil || rep.State.ID != id {
						t.Errorf("reply to the valid request = %q", line)
					}
					continue
				}
				if rep.OK || rep.Error == "" {
					t.Errorf("reply %d to garbage = %q, want ok:false with an error", i, line)
				}
			}
			if tc.firstOK && len(lines) == 0 {
				t.Errorf("no reply to the valid request before the garbage")
			}

			// The shim carries on unharmed.
			rep := rawRequest(t, e, id, `{"op":"state"}`)
			if !rep.OK || rep.State == nil || rep.State.ID != id || rep.State.Status != protocol.StatusCreated || rep.State.Pid != created.Pid {
				t.Fatalf("state after garbage = %+v (state %+v), want created pid %d", rep, rep.State, created.Pid)
			}
			e.startAndStop(id)
		})
	}
}

// TestShimSilentConnections opens many connections that never say a word,
// closes some and keeps the rest open: the shim must still serve others.
func TestShimSilentConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	e.create(id, b)
	for i := 0; i < 200; i++ {
		c, err := dialSocket(shim.SocketPath(e.root, id))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
	var open []*net.UnixConn
	for i := 0; i < 100; i++ {
		c, err := dialSocket(shim.SocketPath(e.root, id))
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	rep := rawRequest(t, e, id, `{"op":"state"}`)
	if !rep.OK || rep.State == nil || rep.State.Status != protocol.StatusCreated {
		t.Fatalf("state with 100 idle connections = %+v", rep)
	}
	e.startAndStop(id)
	// The idle connections end with the shim.
	for i, c := range open {
		c.SetReadDeadline(time.Now().Add(hangDeadline))
		if n, err := c.Read(make([]byte, 1)); !closedConn(err) {
			t.Fatalf("idle connection %d after delete: read %d, %v; want EOF", i, n, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Subscribers.

// TestFrozenSubscriberAmongHundred: one subscriber never reads; a hundred
// others still get every event, promptly, and EOF after deleted.
func TestFrozenSubscriberAmongHundred(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	e.create(id, b)

	frozen := rawDial(t, e, id)
	raw, err := frozen.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
	})
	if _, err := frozen.Write([]byte(`{"op":"subscribe"}` + "\n")); err != nil {
		t.Fatal(err)
	}

	const n = 100
	subs := make([]*protocol.Client, n)
	for i := range subs {
		subs[i] = e.subscribe(id, true)
	}
	results := make([]subResult, n)
	var stopped, done sync.WaitGroup
	stopped.Add(n)
	done.Add(n)
	for i, c := range subs {
		go func() {
			defer done.Done()
			var once sync.Once
			results[i] = collect(c, func() { once.Do(stopped.Done) })
		}()
	}
	waitGroup := func(wg *sync.WaitGroup, what string, d time.Duration) {
		t.Helper()
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(d):
			t.Fatalf("%s took longer than %v with a frozen subscriber attached", what, d)
		}
	}

	begin := time.Now()
	e.cliOK("start", id)
	// The shim's write timeout is 10s: a shim held up by the frozen
	// subscriber would take at least that long.
	waitGroup(&stopped, "stopped reaching 100 subscribers", 5*time.Second)
	t.Logf("100 subscribers saw stopped %v after start began", time.Since(begin))
	e.cliOK("delete", id)
	waitGroup(&done, "deleted and EOF reaching 100 subscribers", 5*time.Second)
	for i, res := range results {
		checkStream(t, fmt.Sprintf("subscriber %d", i), res, protocol.LifecycleEventTypes())
		if len(res.events) == 4 {
			if st := res.events[2]; st.ExitStatus == nil || *st.ExitStatus != 0 {
				t.Errorf("subscriber %d: stopped = %+v, want exitStatus 0", i, st)
			}
		}
	}

	// Only now read the frozen connection: whatever it got is well-formed
	// and ends; the shim is gone.
	frozen.SetReadDeadline(time.Now().Add(hangDeadline))
	lines, err := readLines(bufio.NewReader(frozen), nil)
	if !closedConn(err) {
		t.Errorf("frozen subscriber's stream: %v, want it closed", err)
	}
	if len(lines) == 0 {
		t.Fatalf("frozen subscriber got nothing, not even the subscribe reply")
	}
	var rep protocol.Reply
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil || !rep.OK || rep.Protocol != protocol.Version {
		t.Errorf("frozen subscriber's first line = %q", lines[0])
	}
}

// TestDeleteWithSubscribers: subscribers attached when the container is
// deleted get deleted and then EOF, whatever state it was in.
func TestDeleteWithSubscribers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		args  []string
		start bool
		force bool
		// want is what a subscriber with history sees.
		want []string
	}{
		{"created", []string{"sleep", "1000"}, false, true, []string{"created", "stopped", "deleted"}},
		{"running", []string{"sleep", "1000"}, true, true, []string{"created", "started", "stopped", "deleted"}},
		{"stopped", []string{"true"}, true, false, []string{"created", "started", "stopped", "deleted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle(tc.args, nil)
			e.create(id, b)
			if tc.start {
				w := e.subscribe(id, true)
				e.cliOK("start", id)
				if tc.force {
					next(t, w, protocol.EventStarted)
				} else {
					next(t, w, protocol.EventStopped)
				}
			}
			hist := []*protocol.Client{e.subscribe(id, true), e.subscribe(id, true), e.subscribe(id, true)}
			live := []*protocol.Client{e.subscribe(id, false), e.subscribe(id, false)}
			all := append(append([]*protocol.Client{}, hist...), live...)
			results := make([]subResult, len(all))
			var wg sync.WaitGroup
			for i, c := range all {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = collect(c, nil) }()
			}
			args := []string{"delete"}
			if tc.force {
				args = append(args, "--force")
			}
			e.cliOK(append(args, id)...)
			wg.Wait()
			for i := range hist {
				checkStream(t, fmt.Sprintf("subscriber %d with history", i), results[i], tc.want)
			}
			wantLive := []string{"deleted"}
			if tc.force {
				wantLive = []string{"stopped", "deleted"}
			}
			for i := range live {
				checkStream(t, fmt.Sprintf("live subscriber %d", i), results[len(hist)+i], wantLive)
			}
			if tc.force {
				for _, ev := range results[0].events {
					if ev.Type == protocol.EventStopped && (ev.Signal != "SIGKILL" || ev.ExitStatus == nil || *ev.ExitStatus != 137) {
						t.Errorf("stopped on delete --force = %+v, want SIGKILL/137", ev)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Permissions.

// TestShimSocketModes checks the modes of the state directory and socket.
func TestShimSocketModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	e.create(id, b)
	fi, err := os.Lstat(shim.Dir(e.root, id))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want a 0700 directory", fi.Mode())
	}
	fi, err = os.Lstat(shim.SocketPath(e.root, id))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a 0600 socket", fi.Mode())
	}
	e.startAndStop(id)
}

// peerHelperEnv, when set, makes the test binary a socket client instead of
// a test run (see init): it connects to the path in the variable, asks to
// start the container and for its state, and prints what happened as JSON.
const peerHelperEnv = "CRIER_TEST_PEER_HELPER"

// init runs before TestMain, so a helper child started as an unprivileged
// user never reaches the suite setup (which needs root).
func init() {
	if path := os.Getenv(peerHelperEnv); path != "" {
		os.Exit(peerHelper(path))
	}
}

type peerResult struct {
	UID     int      `json:"uid"`
	DialErr string   `json:"dialErr,omitempty"`
	Lines   []string `json:"lines,omitempty"`
	End     string   `json:"end,omitempty"`
}

func peerHelper(path string) int {
	res := peerResult{UID: os.Getuid()}
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		res.DialErr = err.Error()
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(`{"op":"start"}` + "\n" + `{"op":"state"}` + "\n"))
		lines, err := readLines(bufio.NewReader(c), func(l []string) bool {
			// Served: both requests answered, nothing more to learn.
			return len(l) == 2 && strings.Contains(l[1], `"ok":true`)
		})
		res.Lines = lines
		if err != nil {
			res.End = err.Error()
			if closedConn(err) {
				res.End = "closed"
			}
		}
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// TestShimPeerCredentials runs clients as uid 1000 against a root
// container's shim: one plain, stopped by the file modes, and one with
// CAP_DAC_OVERRIDE so that it reaches the socket and only SO_PEERCRED can
// refuse it. Neither may be served; the container is still created after.
func TestShimPeerCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	e.create(id, b)

	helper := e.linkSelf("peer-helper")
	dir, err := os.OpenFile(shim.Dir(e.root, id), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()

	run := func(uid uint32, caps []uintptr) peerResult {
		t.Helper()
		cmd := exec.Command(helper)
		cmd.Env = []string{peerHelperEnv + "=/proc/self/fd/3/" + protocol.SocketName}
		cmd.ExtraFiles = []*os.File{dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential:  &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}},
			AmbientCaps: caps,
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("peer helper as uid %d: %v: %s", uid, err, stderr.String())
		}
		var res peerResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("peer helper output %q: %v", out, err)
		}
		if res.UID != int(uid) {
			t.Fatalf("peer helper ran as uid %d, want %d", res.UID, uid)
		}
		return res
	}
	refused := func(who string, res peerResult) {
		t.Helper()
		for _, line := range res.Lines {
			var rep protocol.Reply
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				t.Errorf("%s got a non-JSON line %q", who, line)
			} else if rep.OK {
				t.Errorf("%s was served: %q", who, line)
			}
		}
		if res.DialErr == "" && res.End != "closed" {
			t.Errorf("%s: connection not closed after refusal: %+v", who, res)
		}
		t.Logf("%s: %+v", who, res)
	}

	plain := run(1000, nil)
	refused("uid 1000", plain)
	if plain.DialErr == "" {
		t.Errorf("uid 1000 without privileges could connect to a 0600 socket in a 0700 directory: %+v", plain)
	}

	privileged := run(1000, []uintptr{unix.CAP_DAC_OVERRIDE})
	if privileged.DialErr != "" {
		t.Fatalf("uid 1000 with CAP_DAC_OVERRIDE could not connect, so SO_PEERCRED is untested: %s", privileged.DialErr)
	}
	refused("uid 1000 with CAP_DAC_OVERRIDE", privileged)
	if len(privileged.Lines) == 0 {
		t.Logf("the shim closed the connection without an error reply")
	}

	if st := e.state(id); st.Status != protocol.StatusCreated {
		t.Fatalf("container is %s after refused clients asked to start it, want created", st.Status)
	}

	// Control: the same helper as root is served, so the refusals above
	// are the shim's doing.
	root := run(0, nil)
	if root.DialErr != "" || len(root.Lines) != 2 || !strings.Contains(root.Lines[1], `"ok":true`) {
		t.Fatalf("peer helper as root was not served: %+v", root)
	}
	wantExit(t, e.waitStopped(id), 0, "")
	e.cliOK("delete", id)
}

// ---------------------------------------------------------------------------
// Requests.

// TestShimConcurrentStarts: of five simultaneous starts exactly one wins,
// the others get ErrInvalidState, and there is one started event.
func TestShimConcurrentStarts(t *testing.T) {
	t.Parallel()
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"true"}, nil)
			e.create(id, b)
			sub := e.subscribe(id, true)
			const n = 5
			clients := make([]*protocol.Client, n)
			for i := range clients {
				clients[i] = e.dial(id)
			}
			errs := make([]error, n)
			gate := make(chan struct{})
			var ready, done sync.WaitGroup
			for i, c := range clients {
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
					defer cancel()
					ready.Done()
					<-gate
					errs[i] = c.Start(ctx)
				}()
			}
			ready.Wait()
			close(gate)
			done.Wait()
			ok := 0
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, protocol.ErrInvalidState):
					t.Errorf("start %d: %v, want success or ErrInvalidState", i, err)
				}
			}
			if ok != 1 {
				t.Errorf("%d of %d concurrent starts succeeded, want exactly 1 (errors %v)", ok, n, errs)
			}
			e.cliOK("delete", "--force", id)
			res := collect(sub, nil)
			checkStream(t, "subscriber", res, protocol.LifecycleEventTypes())
		})
	}
}

// TestShimHello: hello answers with the protocol version, on a raw
// connection and through the Go client, and does not end the connection.
func TestShimHello(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	e.create(id, b)

	c := rawDial(t, e, id)
	c.SetDeadline(time.Now().Add(hangDeadline))
	c.Write([]byte(`{"op":"hello"}` + "\n" + `{"op":"hello"}` + "\n"))
	lines, err := readLines(bufio.NewReader(c), func(l []string) bool { return len(l) == 2 })
	if err != nil {
		t.Fatalf("two hellos: %v (%q)", err, lines)
	}
	for _, line := range lines {
		var rep protocol.Reply
		if err := json.Unmarshal([]byte(line), &rep); err != nil || !rep.OK || rep.Protocol != 1 {
			t.Errorf("hello reply = %q, want ok with protocol 1", line)
		}
	}
	rep, err := e.dial(id).Do(context.Background(), protocol.Request{Op: protocol.OpHello})
	if err != nil || rep.Protocol != 1 || protocol.Version != 1 {
		t.Errorf("hello through the client = %+v, %v; want protocol 1", rep, err)
	}
	e.startAndStop(id)
}
