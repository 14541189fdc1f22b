package cgroup

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// freezeTarget makes a cgroup with a busy child in it, in the v1 freezer
// hierarchy or the v2 one (key "" of Paths), and removes both at the end.
func freezeTarget(t *testing.T, key, root string) (*Cgroup, *exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(root); err != nil {
		t.Skipf("no %s here: %v", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("crier-freeze-test-%x", rand.Uint64()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cgroup{Paths: map[string]string{key: dir}}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		c.Thaw()
		cmd.Wait()
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	return c, cmd
}

func TestFreezeThaw(t *testing.T) {
	for _, tc := range []struct {
		name, key, root, file, frozen, thawed string
	}{
		{"v1", "freezer", "/sys/fs/cgroup/freezer", "freezer.state", "FROZEN", "THAWED"},
		{"v2", "", "/sys/fs/cgroup/unified", "cgroup.events", "populated 1\nfrozen 1", "populated 1\nfrozen 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := freezeTarget(t, tc.key, tc.root)
			dir := c.Paths[tc.key]
			if frozen, err := c.Frozen(); err != nil || frozen {
				t.Fatalf("Frozen() = %v, %v before Freeze", frozen, err)
			}
			if err := c.Freeze(); err != nil {
				t.Fatal(err)
			}
			// The kernel says frozen only once every task has stopped.
			if got, err := readFile(dir, tc.file); err != nil || got != tc.frozen {
				t.Errorf("after Freeze %s = %q, %v; want %q", tc.file, got, err, tc.frozen)
			}
			if frozen, err := c.Frozen(); err != nil || !frozen {
				t.Errorf("Frozen() = %v, %v after Freeze", frozen, err)
			}
			if err := c.Thaw(); err != nil {
				t.Fatal(err)
			}
			if got, err := readFile(dir, tc.file); err != nil || got != tc.thawed {
				t.Errorf("after Thaw %s = %q, %v; want %q", tc.file, got, err, tc.thawed)
			}
			// Thawing what is not frozen changes nothing.
			if err := c.Thaw(); err != nil {
				t.Errorf("second Thaw: %v", err)
			}
		})
	}
}

func TestFreezeNoFreezer(t *testing.T) {
	c := &Cgroup{Paths: map[string]string{"memory": "/nonexistent"}}
	for name, err := range map[string]error{"Freeze": c.Freeze(), "Thaw": c.Thaw()} {
		if !errors.Is(err, ErrNoFreezer) {
			t.Errorf("%s: %v, want ErrNoFreezer", name, err)
		}
	}
}

func TestFreezeGoneCgroup(t *testing.T) {
	c := &Cgroup{Paths: map[string]string{"freezer": "/sys/fs/cgroup/freezer/crier-no-such-cgroup"}}
	if err := c.Freeze(); err == nil {
		t.Error("Freeze of a missing cgroup succeeded")
	}
}

// BenchmarkThawNotFrozen: what every delete's teardown now pays to thaw a
// cgroup that is not frozen (one read of freezer.state).
func BenchmarkThawNotFrozen(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := filepath.Join("/sys/fs/cgroup/freezer", fmt.Sprintf("crier-freeze-bench-%x", rand.Uint64()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Skip(err)
	}
	defer os.Remove(dir)
	c := &Cgroup{Paths: map[string]string{"freezer": dir}}
	for b.Loop() {
		if err := c.Thaw(); err != nil {
			b.Fatal(err)
		}
	}
}
