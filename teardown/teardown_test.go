package teardown

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/internal/statedirtest"
	"github.com/crier-runtime/crier/statedir"
)

// stateDir makes ROOT/c1 with a state file in it.
func stateDir(t *testing.T) (string, *statedir.Dir) {
	t.Helper()
	root := statedirtest.New(t, "c1")
	d := statedir.At(root, "c1")
	if err := d.WriteState(&statedir.State{}); err != nil {
		t.Fatal(err)
	}
	return root, d
}

// hook records the state it reads on its stdin in out.
func hook(out string) specs.Hook {
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + out}}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestRunRemovesAndRunsHooks: the poststop hooks get the stopped state;
// a failing one is a warning; the directory goes.
func TestRunRemovesAndRunsHooks(t *testing.T) {
	root, d := stateDir(t)
	out := filepath.Join(t.TempDir(), "state")
	var warnings []error
	err := Run(&Remains{
		Poststop: []specs.Hook{hook(out), {Path: "/bin/false"}},
		State:    &specs.State{Version: specs.Version, ID: "c1", Status: specs.StateStopped},
		Dir:      d,
		Warn:     func(err error) { warnings = append(warnings, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), `"id":"c1"`) || !strings.Contains(string(b), `"status":"stopped"`) {
		t.Errorf("the hook read %q", b)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "poststop hook #1") {
		t.Errorf("warnings %v", warnings)
	}
	if exists(filepath.Join(root, "c1")) {
		t.Error("state directory left")
	}
}

// TestRunCgroupFails: a cgroup that cannot be removed stops the teardown,
// keeping the directory for the next try; a caller that must finish is
// warned and the rest goes on.
func TestRunCgroupFails(t *testing.T) {
	for _, mustFinish := range []bool{false, true} {
		t.Run(fmt.Sprint("MustFinish=", mustFinish), func(t *testing.T) {
			root, d := stateDir(t)
			// Not below a cgroup: Destroy refuses it.
			cg := &cgroup.Cgroup{Paths: map[string]string{"": t.TempDir()}}
			out := filepath.Join(t.TempDir(), "state")
			var warnings []error
			err := Run(&Remains{
				Cgroup: cg, Poststop: []specs.Hook{hook(out)}, State: &specs.State{ID: "c1"}, Dir: d,
				Warn: func(err error) { warnings = append(warnings, err) }, MustFinish: mustFinish,
			})
			refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "not below a cgroup") }
			if mustFinish {
				if err != nil || len(warnings) != 1 || !refused(warnings[0]) || !exists(out) || exists(filepath.Join(root, "c1")) {
					t.Errorf("err %v, warnings %v, hook ran %v, directory left %v", err, warnings, exists(out), exists(filepath.Join(root, "c1")))
				}
				return
			}
			if !refused(err) || len(warnings) != 0 || exists(out) || !exists(filepath.Join(root, "c1", statedir.StateFile)) {
				t.Errorf("err %v, warnings %v, hook ran %v, directory kept %v", err, warnings, exists(out), exists(filepath.Join(root, "c1")))
			}
		})
	}
}

// TestSignalCgroup signals the members a cgroup lists, but never this
// process.
func TestSignalCgroup(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	dir := t.TempDir()
	procs := fmt.Sprintf("%d\n%d\n", os.Getpid(), cmd.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SignalCgroup(&cgroup.Cgroup{Paths: map[string]string{"": dir}}, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("member: %v, want killed", err)
	}
	if err := SignalCgroup(&cgroup.Cgroup{Paths: map[string]string{"": filepath.Join(dir, "gone")}}, unix.SIGKILL); err == nil {
		t.Error("a cgroup with no directory left was signalled")
	}
}
