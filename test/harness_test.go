package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

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
			out, err := e.crier("delete", "--force", ent.Name())
			if err != nil {
				e.t.Errorf("cleanup of %s: %v: %s", ent.Name(), err, out)
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
		stat, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
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
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

// specFor returns the config `crier spec` writes in dir.
func (e *env) specFor(dir string) *specs.Spec {
	e.t.Helper()
	e.must("spec", "--bundle", dir)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		e.t.Fatal(err)
	}
	return &spec
}

// crier runs the CLI with this env's root and returns its combined output.
func (e *env) crier(args ...string) (string, error) {
	cmd := exec.Command(suite.crier, append([]string{"--root", e.root}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// must runs the CLI and fails the test if it fails.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, err := e.crier(args...)
	if err != nil {
		e.t.Fatalf("crier %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// create runs create with stdio to files and returns the container's
// stdout file, which holds what the container printed once it stopped.
func (e *env) create(id, bundle string, extra ...string) string {
	e.t.Helper()
	outPath := filepath.Join(e.dir, id+".out")
	f, err := os.Create(outPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	args := append([]string{"--root", e.root, "create", "--bundle", bundle}, extra...)
	cmd := exec.Command(suite.crier, append(args, id)...)
	// Files, not pipes: the container keeps its stdio, and os/exec would
	// wait for a pipe's other end to close.
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(outPath)
		e.t.Fatalf("create %s: %v: %s", id, err, b)
	}
	return outPath
}

// state returns the parsed `crier state`.
func (e *env) state(id string) protocol.State {
	e.t.Helper()
	var st protocol.State
	if err := json.Unmarshal([]byte(e.must("state", id)), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

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

// next reads events from c until one of type typ, failing the test on any
// error or after a generous deadline (a hang is a bug, not slowness).
func next(t *testing.T, c *protocol.Client, typ string) protocol.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
