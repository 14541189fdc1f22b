package container

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// children lists this process's children, zombies included.
func children(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range tasks {
		b, _ := os.ReadFile(p)
		pids = append(pids, strings.Fields(string(b))...)
	}
	slices.Sort(pids)
	return pids
}

// fileOwner is the owner of name as seen through the mount tree dir, which
// need not be attached anywhere.
func fileOwner(t *testing.T, dir *os.File, name string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, 0); err != nil {
		t.Fatalf("stat %s through the tree: %v", name, err)
	}
	return st.Uid, st.Gid
}

// TestIDMappedTree makes detached idmapped trees, as Create does, and looks
// at a file's owner through them without attaching them anywhere; the
// user namespace helpers are gone once each call returns.
func TestIDMappedTree(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "f"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	ids := func(c, h, n uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: c, HostID: h, Size: n}}
	}
	tests := []struct {
		name       string
		uids, gids []specs.LinuxIDMapping
		uid, gid   uint32
	}{
		{"shift", ids(1000, 5000, 2), ids(1000, 5000, 2), 5000, 5001},
		{"apart", ids(1000, 7, 1), ids(1001, 9, 1), 7, 9},
		{"unmapped", ids(0, 5000, 10), ids(0, 5000, 10), 65534, 65534},
	}
	before := children(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := usernsWithMappings(tt.uids, tt.gids, "test", sealedSelf(t))
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			tree, err := idmappedTree(src, false, false, ns)
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			if uid, gid := fileOwner(t, tree, "f"); uid != tt.uid || gid != tt.gid {
				t.Errorf("owner %d:%d through the tree, want %d:%d", uid, gid, tt.uid, tt.gid)
			}
		})
	}
	if after := children(t); !slices.Equal(before, after) {
		t.Errorf("children %v after, %v before: a helper was left", after, before)
	}
}

func TestIDMappedTreeErrors(t *testing.T) {
	needRoot(t)
	ns, err := usernsWithMappings(
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}, "test", sealedSelf(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	tests := []struct {
		src  string
		want string
	}{
		{"/nonexistent-crier", "open_tree /nonexistent-crier: no such file"},
		{"/proc/sys", "/proc/sys: its filesystem (proc) does not support idmapped mounts"},
	}
	for _, tt := range tests {
		tree, err := idmappedTree(tt.src, false, false, ns)
		if err == nil {
			tree.Close()
			t.Errorf("%s: idmapped, want an error", tt.src)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.src, err, tt.want)
		}
	}
	// The kernel's own checks, for what validIDMappings would have caught.
	_, err = usernsWithMappings(
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 5, HostID: 2000, Size: 10}},
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}, "test", sealedSelf(t))
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("overlapping mapping: %v, want EINVAL", err)
	}
}

func TestIDMapTreesFor(t *testing.T) {
	spec := &specs.Spec{Mounts: make([]specs.Mount, 4)}
	file := func() *os.File {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := file(), file()
	defer closeFiles([]*os.File{a, b})
	trees, err := mountTreesFor(&initConfig{Spec: spec, Trees: []int{3, 1}}, []*os.File{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if want := []*os.File{nil, b, nil, a}; !slices.Equal(trees, want) {
		t.Errorf("trees %v, want %v", trees, want)
	}
	if trees, err := mountTreesFor(&initConfig{Spec: spec}, nil); err != nil || len(trees) != 4 {
		t.Errorf("no idmapped mounts: %v, %v", trees, err)
	}
	for _, bad := range [][]int{{1}, {1, 1}, {0, 4}} {
		fs := []*os.File{file(), file()}
		if _, err := mountTreesFor(&initConfig{Spec: spec, Trees: bad}, fs); err == nil {
			t.Errorf("Trees %v for 2 files: no error", bad)
		}
		for _, f := range fs {
			if err := f.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Trees %v: a file was left open", bad)
			}
		}
	}
}
