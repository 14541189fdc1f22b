package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestShimKilledMidCreate: the shim dies while a createRuntime hook runs,
// after init has joined the container's cgroups but before the state file
// records them. delete --force still removes the cgroups, the state
// directory and every process.
func TestShimKilledMidCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	hooked, gate := filepath.Join(e.dir, "hooked"), filepath.Join(e.dir, "gate")
	for _, p := range []string{hooked, gate} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
			Path: "/bin/sh",
			Args: []string{"sh", "-c", fmt.Sprintf("echo hooked > %s; read x < %s", hooked, gate)},
		}}}
	})
	create := e.cliStart(nil, "create", "--bundle", b, id)
	// Released at the end whatever happens: the hook outlives the shim.
	t.Cleanup(func() {
		if f, err := os.OpenFile(gate, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.WriteString("go\n")
			f.Close()
		}
	})
	line := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(hooked) // returns once the hook has written and closed
		line <- string(b)
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) != "hooked" {
			t.Fatalf("hook wrote %q", l)
		}
	case <-time.After(hangDeadline):
		t.Fatal("the createRuntime hook never ran")
	}
	if len(cgroupDirsOf(id)) == 0 {
		t.Fatalf("no cgroup directories for %s while its hook runs", id)
	}
	st := e.shimState(id)
	if st.Cgroup != nil {
		t.Fatalf("the state file already records the cgroups: the test no longer covers the gap")
	}
	killShim(t, st)
	if r := create.wait(); r.code == 0 {
		t.Errorf("create succeeded although its shim was killed")
	}
	e.cliOK("delete", "--force", id)
	e.wantNoStateDir(id)
	wantNoCgroups(t, id)
}
