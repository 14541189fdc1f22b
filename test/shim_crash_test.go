package test

import (
	"fmt"
	"os"
	"path/filepath"
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
	hooked := filepath.Join(e.dir, "hooked")
	if err := unix.Mkfifo(hooked, 0o600); err != nil {
		t.Fatal(err)
	}
	// The hook reports its pid, then blocks until the test kills it: it
	// outlives the shim.
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
			Path: "/bin/sh",
			Args: []string{"sh", "-c", fmt.Sprintf("echo $$ > %s; exec sleep 1000", hooked)},
		}}}
	})
	create := e.cliStart(nil, "create", "--bundle", b, id)
	line := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(hooked) // returns once the hook has written and closed
		line <- string(b)
	}()
	var hookPid int
	select {
	case l := <-line:
		if _, err := fmt.Sscan(l, &hookPid); err != nil {
			t.Fatalf("hook wrote %q", l)
		}
	case <-time.After(hangDeadline):
		t.Fatal("the createRuntime hook never ran")
	}
	hook := openPidfd(t, hookPid)
	t.Cleanup(func() {
		unix.PidfdSendSignal(hook, unix.SIGKILL, nil, 0)
		if !pidfdExited(hook, hangDeadline) {
			t.Errorf("hook %d survived SIGKILL", hookPid)
		}
	})
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
