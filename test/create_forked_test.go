package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/shim"
)

// On amd64 `crier create` forks before its Go runtime starts, and the fork
// is the shim (internal/prefork); the process the caller waits for exits
// with the code the fork reports.

// TestCreateShimDiesBeforeReport: a shim killed while it creates (here in
// a createRuntime hook) makes create fail with one line, not hang; and
// delete --force then leaves nothing.
func TestCreateShimDiesBeforeReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	// The hook is the rootfs's sleep, so that its command line names the
	// bundle: the test finds it, and the leak check would.
	timeout := 60
	hook := specs.Hook{Path: filepath.Join(b, "rootfs", "bin", "sleep"), Args: []string{"sleep", "61.4242"}, Timeout: &timeout}
	editBundle(t, b, func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{hook}} })
	var stderr bytes.Buffer
	p := e.cliStart(func(c *exec.Cmd) { c.Stderr = &stderr }, "create", "--bundle", b, id)
	// The hook runs once the ID is claimed: the state file names the shim.
	var st *shim.State
	deadline := time.Now().Add(hangDeadline)
	for {
		var err error
		if st, err = shim.ReadState(shim.Dir(e.root, id)); err == nil && len(processesMatching("sleep\x0061.4242")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the createRuntime hook never ran (state: %v)", err)
		}
		time.Sleep(10 * time.Millisecond) // nothing to wait on: the hook is the shim's child
	}
	killShim(t, st)
	r := p.wait()
	if r.code != 1 {
		t.Errorf("create exited %d after its shim was killed, want 1 (stderr %q)", r.code, stderr.String())
	}
	wantOneLine(t, "create", stderr.String(), "report")
	// The hook outlives the shim that ran it; it is no container's.
	for _, line := range processesMatching("sleep\x0061.4242") {
		var pid int
		if _, err := fmt.Sscanf(line, "process %d", &pid); err == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("create panicked: %s", stderr.String())
	}
}

// TestCreateStderrClosedAfterCreate: once the container has exited,
// nothing but it held create's stderr, so a caller reading it to its end
// (containerd's shim, `$(crier create ... 2>&1)`) gets EOF then, not at
// delete. The forked create kept a copy for its error message for the
// shim's life, which cost every `ctr run --rm` some 150 ms.
func TestCreateStderrClosedAfterCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"true"}, nil)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := e.cliStart(func(c *exec.Cmd) { c.Stdout, c.Stderr = w, w }, "create", "--bundle", b, id)
	w.Close()
	p.waitOK()
	// A client connection held open keeps the shim from re-executing
	// (which closes whatever it holds, close-on-exec) while we look.
	c := e.dial(id)
	e.cliOK("start", id)
	e.waitStopped(id)
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("reading create's output: %v", err)
		}
	// Well below the shim's 30 s limit for a silent connection, after
	// which it would re-exec and so let go of everything anyway.
	case <-time.After(5 * time.Second):
		t.Errorf("create's stdout and stderr still open 5s after the container stopped: the shim holds them")
	}
	c.Close()
	e.cliOK("delete", id)
}
