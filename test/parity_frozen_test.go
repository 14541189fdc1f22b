package test

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests a cgroupsPath whose cgroup exists already and is frozen
// (cgroups.bats "runc run/create should refuse pre-existing frozen
// cgroup"): create and run -d refuse it at once, in runc's words, rather
// than forking init into it and waiting for good; the cgroup is left as
// it was, and nothing of the container remains.

// frozenCgroup makes the freezer cgroup at path (relative to the
// hierarchy) and freezes it, on a v1 freezer or a v2-only host; it is
// removed when the test ends.
func frozenCgroup(t *testing.T, path string) (dir string) {
	t.Helper()
	file, state := "freezer.state", "FROZEN"
	dir = filepath.Join("/sys/fs/cgroup/freezer", path)
	if _, err := os.Stat("/sys/fs/cgroup/freezer"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			t.Skip("no v1 freezer and not a cgroup v2 host")
		}
		file, state = "cgroup.freeze", "1"
		dir = filepath.Join("/sys/fs/cgroup", path)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the test's frozen cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParityFrozenCgroupRefused(t *testing.T) {
	e := newEnv(t)
	cgroupsPath := "/" + e.id() + "-frozen"
	dir := frozenCgroup(t, cgroupsPath)
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = cgroupsPath
	})
	for _, cmd := range [][]string{
		{"run", "-d", "--bundle", b},
		{"create", "--bundle", b},
	} {
		id := e.id()
		r := e.cliRun(append(cmd, id)...)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1; stderr %q", cmd[0], r.code, r.stderr)
		}
		wantErrorLine(t, cmd[0], r, "container's cgroup unexpectedly frozen")
		wantErrorLine(t, cmd[0], r, dir)
		e.assertGone(id)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the frozen cgroup is gone: %v", err)
	}
}
