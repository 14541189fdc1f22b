package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// This file is the suite's setup and what tests in every file share: each
// test's env and bundles, running the CLI and containers, reading what they
// print, waiting for events, and the checks that come after.

var binDir = flag.String("crier-bin", "../bin", "directory with the built crier and crier-shim")

// suite is what TestMain sets up once for every test.
var suite struct {
	crier   string // absolute path of bin/crier
	rootfs  string // pristine busybox rootfs tarball
	tmp     string // parent of every test's files
	counter atomic.Int64
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("integration tests need root; skipping")
		os.Exit(0)
	}
	code, err := setupSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test setup:", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	if leaks := suiteLeaks(); len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "LEAKS after the suite:\n  "+strings.Join(leaks, "\n  "))
		code = 1
	}
	os.RemoveAll(suite.tmp)
	os.Exit(code)
}

func setupSuite() (int, error) {
	dir, err := filepath.Abs(*binDir)
	if err != nil {
		return 1, err
	}
	suite.crier = filepath.Join(dir, "crier")
	for _, b := range []string{suite.crier, filepath.Join(dir, "crier-shim")} {
		if _, err := os.Stat(b); err != nil {
			return 1, fmt.Errorf("%w (run make build first)", err)
		}
	}
	if suite.rootfs, err = busyboxTarball(); err != nil {
		return 1, err
	}
	// Bundles go in a 0755 directory: the container's uid must be able
	// to reach its rootfs.
	if suite.tmp, err = os.MkdirTemp("", "crier-it-"); err != nil {
		return 1, err
	}
	return 0, os.Chmod(suite.tmp, 0o755)
}

// busyboxTarball finds the busybox rootfs that the runtime-tools module
// ships, fetching the module through the Go module proxy if needed.
func busyboxTarball() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0").Output()
	if err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	p := filepath.Join(mod.Dir, "rootfs-amd64.tar.gz")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// env is one test's world: its own state root and bundles.
type env struct {
	t    *testing.T
	root string
	dir  string
}

// newEnv makes a private state root for t and checks, when t ends, that
// every container it made is gone without a trace.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp(suite.tmp, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	e := &env{t: t, root: filepath.Join(dir, "root"), dir: dir}
	t.Cleanup(func() {
		e.cleanup()
		if leaks := e.leaks(); len(leaks) > 0 {
			t.Errorf("leaked:\n  %s", strings.Join(leaks, "\n  "))
		}
	})
	return e
}

// linkSelf links the test binary into the test's directory as name, for
// a helper run as another user: the binary may sit in a directory that
// user cannot enter. A hard link, not a copy: a copy's write descriptor,
// inherited for an instant by a parallel test's fork, would make exec
// fail with ETXTBSY.
func (e *env) linkSelf(name string) string {
	e.t.Helper()
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(e.dir, name)
	if err := os.Link(self, p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// id returns a container ID unique in the suite.
func (e *env) id() string {
	return fmt.Sprintf("it%d-%d", os.Getpid(), suite.counter.Add(1))
}

// cleanup force-deletes whatever the test left, so one failure does not
// leak into the leak checks of the others.
func (e *env) cleanup() {
	entries, _ := os.ReadDir(e.root)
	for _, ent := range entries {
		if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") {
			if r := e.cliRun("delete", "--force", ent.Name()); r.code != 0 {
				e.t.Errorf("cleanup of %s: exit %d: %s%s", ent.Name(), r.code, r.stdout, r.stderr)
			}
		}
	}
}

// leaks lists what is left of this test's containers.
func (e *env) leaks() []string {
	var leaks []string
	entries, _ := os.ReadDir(e.root)
	for _, ent := range entries {
		leaks = append(leaks, "state entry "+filepath.Join(e.root, ent.Name()))
	}
	leaks = append(leaks, processesMatching(e.dir)...)
	leaks = append(leaks, mountsMatching(e.dir)...)
	return leaks
}

// suiteLeaks looks for anything left by the whole suite: shims, container
// processes, mounts and cgroups of its IDs.
func suiteLeaks() []string {
	leaks := processesMatching(suite.tmp)
	leaks = append(leaks, mountsMatching(suite.tmp)...)
	leaks = append(leaks, cgroupsMatching(fmt.Sprintf("it%d-", os.Getpid()))...)
	return leaks
}

// processesMatching lists live processes whose command line or root
// directory mentions s: shims name their root and bundle on the command
// line, container processes have their root in the bundle.
func processesMatching(s string) []string {
	var found []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if procState(pid) == 'Z' {
			continue // a zombie holds nothing; its parent will reap it
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		root, _ := os.Readlink(filepath.Join("/proc", p.Name(), "root"))
		if bytes.Contains(cmdline, []byte(s)) || strings.HasPrefix(root, s) {
			found = append(found, fmt.Sprintf("process %d %q", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func mountsMatching(s string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			found = append(found, "mount "+line)
		}
	}
	return found
}

func cgroupsMatching(prefix string) []string {
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), prefix) {
			found = append(found, "cgroup "+path)
		}
		if strings.Count(path, "/") > 6 {
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// ---------------------------------------------------------------------------
// Bundles.

// bundle makes a bundle with its own busybox rootfs whose process runs
// args, and lets edit change the config before it is written.
func (e *env) bundle(args []string, edit func(*specs.Spec)) string {
	e.t.Helper()
	dir, err := os.MkdirTemp(e.dir, "bundle-")
	if err != nil {
		e.t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	os.Mkdir(rootfs, 0o755)
	if out, err := exec.Command("tar", "xzf", suite.rootfs, "-C", rootfs).CombinedOutput(); err != nil {
		e.t.Fatalf("extract rootfs: %v: %s", err, out)
	}
	spec := e.specFor(dir)
	spec.Process.Terminal = false
	spec.Process.Args = args
	if edit != nil {
		edit(spec)
	}
	writeSpec(e.t, dir, spec)
	return dir
}

// specFor returns the config `crier spec` writes in dir.
func (e *env) specFor(dir string) *specs.Spec {
	e.t.Helper()
	e.cliOK("spec", "--bundle", dir)
	return readSpec(e.t, dir)
}

// readSpec reads dir/config.json.
func readSpec(t *testing.T, dir string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	return &spec
}

// writeSpec writes spec as dir/config.json.
func writeSpec(t *testing.T, dir string, spec *specs.Spec) {
	t.Helper()
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editBundle rewrites bundle/config.json, for edits that need the bundle's
// own path (such as hooks run from its rootfs).
func editBundle(t *testing.T, bundle string, edit func(*specs.Spec)) {
	t.Helper()
	spec := readSpec(t, bundle)
	edit(spec)
	writeSpec(t, bundle, spec)
}

// dropNamespace takes the namespace of type typ out of the spec: the
// container shares the host's (or crier's) instead.
func dropNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) {
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == typ })
}

// ---------------------------------------------------------------------------
// Running the CLI.

// hangDeadline bounds everything a test waits for: a CLI run, an event, a
// line on a pipe, a process's exit. A hang is a bug, and it must fail the
// test rather than stall the suite.
const hangDeadline = 30 * time.Second

// cliResult is one finished CLI run with its output streams apart.
type cliResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// cliProc is a CLI run in progress. Its stdout and stderr go to files, not
// pipes: a container it makes keeps them, and os/exec would wait for the
// container to close a pipe.
type cliProc struct {
	t        *testing.T
	args     []string // after --root
	cmd      *exec.Cmd
	out, err *os.File
	begin    time.Time
}

// cliCommand returns the CLI with this env's root, bounded by hangDeadline.
func (e *env) cliCommand(args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	e.t.Cleanup(cancel)
	return exec.CommandContext(ctx, suite.crier, append([]string{"--root", e.root}, args...)...)
}

// cliStart starts the CLI in the background; setup, when not nil, may change
// the command (its stdio, directory, environment) before it starts.
func (e *env) cliStart(setup func(*exec.Cmd), args ...string) *cliProc {
	e.t.Helper()
	cmd := e.cliCommand(args...)
	p := &cliProc{t: e.t, args: args, cmd: cmd}
	var err error
	if p.out, err = os.CreateTemp(e.dir, "stdout-"); err != nil {
		e.t.Fatal(err)
	}
	if p.err, err = os.CreateTemp(e.dir, "stderr-"); err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = p.out, p.err
	if setup != nil {
		setup(cmd)
	}
	p.begin = time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// wait waits for the CLI to exit and returns what it did.
func (p *cliProc) wait() cliResult {
	p.t.Helper()
	err := p.cmd.Wait()
	r := cliResult{code: exitCode(err), elapsed: time.Since(p.begin)}
	if err != nil && r.code < 0 {
		p.t.Errorf("crier %s: %v (still running after %v?)", strings.Join(p.cmd.Args[1:], " "), err, hangDeadline)
	}
	p.out.Close()
	p.err.Close()
	b, _ := os.ReadFile(p.out.Name())
	r.stdout = string(b)
	b, _ = os.ReadFile(p.err.Name())
	r.stderr = string(b)
	return r
}

// waitOK waits for the CLI to exit and fails the test unless it succeeded.
func (p *cliProc) waitOK() cliResult {
	p.t.Helper()
	r := p.wait()
	if r.code != 0 {
		p.t.Fatalf("crier %s: exit %d: %s%s", strings.Join(p.args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// cliRun runs the CLI to the end.
func (e *env) cliRun(args ...string) cliResult {
	e.t.Helper()
	return e.cliStart(nil, args...).wait()
}

// cliOK runs the CLI and fails the test unless it succeeds.
func (e *env) cliOK(args ...string) cliResult {
	e.t.Helper()
	return e.cliStart(nil, args...).waitOK()
}

// cliStartPiped starts the CLI with its stdout a pipe, and returns a reader
// of it. The test's copy of the write end is closed, so the reader sees EOF
// once the CLI and what it started (a container) have closed theirs.
func (e *env) cliStartPiped(args ...string) (*cliProc, *outPipe) {
	e.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Close() })
	defer w.Close()
	return e.cliStart(func(c *exec.Cmd) { c.Stdout = w }, args...), newOutPipe(r)
}

// create runs create with the container's stdio to a file and returns the
// file's path: once the container has stopped, it holds what it printed.
func (e *env) create(id, bundle string, extra ...string) string {
	e.t.Helper()
	outPath, r := e.createTo(id, bundle, extra...)
	if r.code != 0 {
		b, _ := os.ReadFile(outPath)
		e.t.Fatalf("create %s: exit %d: %s", id, r.code, b)
	}
	return outPath
}

// createFails runs create and expects it to fail; it returns the output.
func (e *env) createFails(id, bundle string) string {
	e.t.Helper()
	outPath, r := e.createTo(id, bundle)
	b, _ := os.ReadFile(outPath)
	if r.code == 0 {
		e.t.Fatalf("create succeeded, want it to fail; output %q", b)
	}
	return string(b)
}

// createTo runs create with its output and the container's stdio to the
// file ID.out in the test's directory, and returns that path and the run.
func (e *env) createTo(id, bundle string, extra ...string) (string, cliResult) {
	e.t.Helper()
	outPath := filepath.Join(e.dir, id+".out")
	f, err := os.Create(outPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	args := append(append([]string{"create", "--bundle", bundle}, extra...), id)
	return outPath, e.cliStart(func(c *exec.Cmd) { c.Stdout, c.Stderr = f, f }, args...).wait()
}

// createPiped creates id with the container's stdout a pipe, so that the
// test can read what a running container prints (its stderr goes to a
// file): the reader sees EOF once the container (alone) has closed it.
func (e *env) createPiped(id, bundle string, extra ...string) *outPipe {
	e.t.Helper()
	p, out := e.cliStartPiped(append(append([]string{"create", "--bundle", bundle}, extra...), id)...)
	p.waitOK()
	return out
}

// state returns the parsed `crier state`.
func (e *env) state(id string) protocol.State {
	e.t.Helper()
	var st protocol.State
	if err := json.Unmarshal([]byte(e.cliOK("state", id).stdout), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// exitCode returns the exit status of a finished command's error.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// waitOrKill waits for cmd, started, to exit; after hangDeadline it kills
// it and reports that it did not exit by itself.
func waitOrKill(cmd *exec.Cmd) (exited bool, err error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return true, err
	case <-time.After(hangDeadline):
		cmd.Process.Kill()
		return false, <-done
	}
}

// ---------------------------------------------------------------------------
// Talking to the shim.

// dial connects a Go client to the container's shim.
func (e *env) dial(id string) *protocol.Client {
	e.t.Helper()
	c, err := protocol.Dial(context.Background(), shim.SocketPath(e.root, id))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// subscribe returns a Go client subscribed to id's events.
func (e *env) subscribe(id string, history bool) *protocol.Client {
	e.t.Helper()
	c := e.dial(id)
	if err := c.Subscribe(context.Background(), protocol.SubscribeOptions{NoHistory: !history}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// startSleeper creates and starts a container of a new ID running
// sleep 1000, and returns the ID and its shim's state.
func (e *env) startSleeper() (string, *shim.State) {
	e.t.Helper()
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	e.cliOK("start", id)
	return id, e.shimState(id)
}

// shimState reads ROOT/ID/state.json as the shim wrote it.
func (e *env) shimState(id string) *shim.State {
	e.t.Helper()
	st, err := shim.ReadState(shim.Dir(e.root, id))
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// ---------------------------------------------------------------------------
// Reading a pipe.

// outPipe reads the read end of a pipe that a CLI run or a container writes,
// each read bounded by hangDeadline.
type outPipe struct {
	f  *os.File
	br *bufio.Reader
}

func newOutPipe(f *os.File) *outPipe {
	return &outPipe{f: f, br: bufio.NewReader(f)}
}

// line reads one line and returns it without its newline.
func (p *outPipe) line(t *testing.T) string {
	t.Helper()
	p.f.SetReadDeadline(time.Now().Add(hangDeadline))
	line, err := p.br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// until reads up to and including a line that is exactly marker, and
// returns what it read.
func (p *outPipe) until(t *testing.T, marker string) string {
	t.Helper()
	p.f.SetReadDeadline(time.Now().Add(hangDeadline))
	var out strings.Builder
	for {
		line, err := p.br.ReadString('\n')
		out.WriteString(line)
		if line == marker+"\n" {
			return out.String()
		}
		if err != nil {
			t.Fatalf("output before %q: %v; got %q", marker, err, out.String())
		}
	}
}

// rest reads what is left to EOF.
func (p *outPipe) rest(t *testing.T) string {
	t.Helper()
	p.f.SetReadDeadline(time.Now().Add(hangDeadline))
	b, err := io.ReadAll(p.br)
	if err != nil {
		t.Fatalf("reading to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Errors.

// wantCLIError checks that r failed with exactly one line on stderr and
// nothing on stdout, and that the line mentions one of wants
// (case-insensitive).
func wantCLIError(t *testing.T, what string, r cliResult, wants ...string) {
	t.Helper()
	if r.stdout != "" {
		t.Errorf("%s: stdout %q on error, want nothing", what, r.stdout)
	}
	wantErrorLine(t, what, r, wants...)
}

// wantErrorLine checks that r failed with exactly one line on stderr that
// mentions one of wants (case-insensitive).
func wantErrorLine(t *testing.T, what string, r cliResult, wants ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("%s: exit 0, want an error (stdout %q, stderr %q)", what, r.stdout, r.stderr)
		return
	}
	line, found := strings.CutSuffix(r.stderr, "\n")
	if !found || line == "" || strings.Contains(line, "\n") {
		t.Errorf("%s: stderr is not exactly one line: %q", what, r.stderr)
	}
	if len(wants) == 0 {
		return
	}
	for _, w := range wants {
		if strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
			return
		}
	}
	t.Errorf("%s: error %q mentions none of %q", what, line, wants)
}

// wantOneLine checks that out, what a failed command printed, is one line
// (around white space) that contains every one of wants.
func wantOneLine(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	out = strings.TrimSpace(out)
	if lines := strings.Split(out, "\n"); out == "" || len(lines) != 1 {
		t.Errorf("%s: printed %d lines, want one:\n%s", what, len(lines), out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: error %q does not mention %q", what, out, w)
		}
	}
}

// wantCreateFails checks that create of a bundle made with edit fails with
// one line naming wants, and leaves nothing behind.
func wantCreateFails(t *testing.T, edit func(*specs.Spec), wants ...string) {
	t.Helper()
	e := newEnv(t)
	id := e.id()
	out := e.createFails(id, e.bundle([]string{"true"}, edit))
	t.Logf("create: %s", strings.TrimSpace(out))
	wantOneLine(t, "create", out, wants...)
	e.assertGone(id)
}

// ---------------------------------------------------------------------------
// Events.

// next reads events from c until one of type typ, failing the test on any
// error or after hangDeadline.
func next(t *testing.T, c *protocol.Client, typ string) protocol.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
}

// waitStopped waits, as a subscriber that is not the parent, for id's stopped
// event.
func (e *env) waitStopped(id string) protocol.Event {
	e.t.Helper()
	return next(e.t, e.subscribe(id, true), protocol.EventStopped)
}

// subResult is a subscriber's whole stream and the error that ended it.
type subResult struct {
	events []protocol.Event
	end    error
}

// collect reads c until its stream ends, each event within hangDeadline,
// and calls stopped (when not nil) once it sees the stopped event.
func collect(c *protocol.Client, stopped func()) subResult {
	var res subResult
	for {
		ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
		ev, err := c.Next(ctx)
		cancel()
		if err != nil {
			res.end = err
			return res
		}
		res.events = append(res.events, ev)
		if ev.Type == protocol.EventStopped && stopped != nil {
			stopped()
		}
	}
}

// wantEOF checks that the stream ended cleanly, after deleted, not cut off.
func wantEOF(t *testing.T, who string, err error) {
	t.Helper()
	if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("%s: stream ended with %v, want EOF", who, err)
	}
}

// checkStream checks one subscriber's whole stream: the lifecycle in
// order, consecutive seqs, and EOF after deleted.
func checkStream(t *testing.T, who string, res subResult, want []string) {
	t.Helper()
	if got := typesOf(res.events); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s got events %v, want %v", who, got, want)
		return
	}
	for i := 1; i < len(res.events); i++ {
		if res.events[i].Seq != res.events[i-1].Seq+1 {
			t.Errorf("%s: seq %d follows %d", who, res.events[i].Seq, res.events[i-1].Seq)
		}
	}
	wantEOF(t, who, res.end)
}

func typesOf(evs []protocol.Event) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, ev.Type)
	}
	return ts
}

func seqsOf(evs []protocol.Event) []uint64 {
	var s []uint64
	for _, ev := range evs {
		s = append(s, ev.Seq)
	}
	return s
}

// decodeEvent parses one line that `crier event` printed.
func decodeEvent(t *testing.T, line string) protocol.Event {
	t.Helper()
	var ev protocol.Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &ev); err != nil {
		t.Fatalf("event line %q: %v", line, err)
	}
	return ev
}

// wantExit checks that ev is a stopped event with this exit status and
// signal.
func wantExit(t *testing.T, ev protocol.Event, status int, signal string) {
	t.Helper()
	if ev.Type != protocol.EventStopped || ev.ExitStatus == nil || *ev.ExitStatus != status || ev.Signal != signal {
		got := "none"
		if ev.ExitStatus != nil {
			got = strconv.Itoa(*ev.ExitStatus)
		}
		t.Errorf("stopped event %+v: exitStatus %s signal %q, want %d %q", ev, got, ev.Signal, status, signal)
	}
}

// ---------------------------------------------------------------------------
// Running a container to its end and reading what it printed.

// run creates id from bundle, calls whileCreated (when not nil) while it is
// created, starts it, waits for stopped, deletes it, and returns what it
// printed and its stopped event.
func (e *env) run(id, bundle string, whileCreated func()) (string, protocol.Event) {
	e.t.Helper()
	out := e.create(id, bundle)
	sub := e.subscribe(id, true)
	if whileCreated != nil {
		whileCreated()
	}
	e.cliOK("start", id)
	ev := next(e.t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	b, err := os.ReadFile(out)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("container output:\n%s", b)
	return string(b), ev
}

// runOK is run that fails the test unless the container exits 0; it also
// returns the KEY=VALUE lines of what the container printed.
func (e *env) runOK(id, bundle string, whileCreated func()) (string, map[string]string) {
	e.t.Helper()
	out, ev := e.run(id, bundle, whileCreated)
	if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
		e.t.Fatalf("container exited %+v; output:\n%s", ev, out)
	}
	return out, keyValues(out)
}

// runScript runs `sh -c script` in a container configured by edit, expects
// exit status 0, and returns the KEY=VALUE lines it printed.
func (e *env) runScript(script string, edit func(*specs.Spec)) map[string]string {
	e.t.Helper()
	_, kv := e.runOK(e.id(), e.bundle([]string{"sh", "-c", script}, edit), nil)
	return kv
}

// keyValues parses KEY=VALUE lines; a repeated key keeps its last value.
func keyValues(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

// wantKV checks kv[key] == want.
func wantKV(t *testing.T, kv map[string]string, key, want string) {
	t.Helper()
	got, ok := kv[key]
	if !ok {
		t.Errorf("container did not print %s", key)
	} else if got != want {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

// wantKVFields checks that kv[key] holds the words of want, however they
// are spaced.
func wantKVFields(t *testing.T, kv map[string]string, key, want string) {
	t.Helper()
	if got := strings.Join(strings.Fields(kv[key]), " "); got != want {
		t.Errorf("%s = %q, want %q", key, kv[key], want)
	}
}

// readFile returns a file's content without surrounding white space.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// ---------------------------------------------------------------------------
// What is left of a container.

// wantNoStateDir checks that id has no state directory left.
func (e *env) wantNoStateDir(id string) {
	e.t.Helper()
	if _, err := os.Lstat(shim.Dir(e.root, id)); !errors.Is(err, os.ErrNotExist) {
		e.t.Errorf("state dir of %s after delete: %v", id, err)
	}
}

// cgroupDirsOf lists the cgroup directories named after id that crier made
// at its default path, /<id>, in every hierarchy.
func cgroupDirsOf(id string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", id))
	return dirs
}

// wantNoCgroups checks that id has no cgroup directory left.
func wantNoCgroups(t *testing.T, id string) {
	t.Helper()
	if dirs := cgroupDirsOf(id); len(dirs) > 0 {
		t.Errorf("cgroups of %s left: %v", id, dirs)
	}
}

// assertGone checks that nothing of container id is left: no state dir, no
// cgroup, no entry in list, no state.
func (e *env) assertGone(id string) {
	e.t.Helper()
	e.wantNoStateDir(id)
	wantNoCgroups(e.t, id)
	if r := e.cliRun("state", id); r.code == 0 {
		e.t.Errorf("state %s succeeded: %s%s", id, r.stdout, r.stderr)
	}
	if r := e.cliRun("list", "-q"); strings.Contains(r.stdout+r.stderr, id) {
		e.t.Errorf("list shows %s: %s%s", id, r.stdout, r.stderr)
	}
	// Temporary state directories of a failed create count too.
	entries, _ := os.ReadDir(e.root)
	for _, ent := range entries {
		e.t.Errorf("state root holds %s", ent.Name())
	}
}

// ---------------------------------------------------------------------------
// Processes.

// procState returns the state letter of /proc/PID/stat (R, S, Z...), or 0
// when there is no such process.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 {
		return b[i+2]
	}
	return 0
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	s := procState(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// openPidfd returns a pidfd for pid, closed when t ends.
func openPidfd(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// pidfdExited waits up to d for the process behind pidfd to exit and
// reports whether it did. d == 0 only looks.
func pidfdExited(pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		if n > 0 {
			return true
		}
		if ms == 0 {
			return false
		}
	}
}

// killShim SIGKILLs the container's shim and waits until it is gone.
func killShim(t *testing.T, st *shim.State) {
	t.Helper()
	if !container.Alive(st.ShimPid, st.ShimStart) {
		t.Fatalf("shim %d is not running before the test kills it", st.ShimPid)
	}
	fd := openPidfd(t, st.ShimPid)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("SIGKILL shim: %v", err)
	}
	if !pidfdExited(fd, hangDeadline) {
		t.Fatalf("shim %d survived SIGKILL", st.ShimPid)
	}
}

// eachInotifyEvent calls fn with the mask and the name (NULs trimmed) of
// each inotify event in buf, what one read of an inotify descriptor gave.
func eachInotifyEvent(buf []byte, fn func(mask uint32, name string)) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		start := off + unix.SizeofInotifyEvent
		fn(ev.Mask, strings.TrimRight(string(buf[start:start+int(ev.Len)]), "\x00"))
		off = start + int(ev.Len)
	}
}
