package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// These tests fake cgroup directories with plain files: what they check is
// which file crier picks and which error it gives, not the kernel.

// testFiles makes dir and the files in it.
func testFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupUnifiedControllers(t *testing.T) {
	tests := []struct {
		unified map[string]string
		want    []string
	}{
		{nil, nil},
		{map[string]string{"cgroup.max.descendants": "5"}, nil},
		{map[string]string{"memory.max": "1", "memory.high": "1", "hugetlb.2MB.max": "1", "cgroup.freeze": "0"}, []string{"hugetlb", "memory"}},
		{map[string]string{"io.max": "8:0 rbps=1"}, []string{"io"}},
		{map[string]string{"nodot": "1"}, nil},
	}
	for _, tt := range tests {
		if got := unifiedControllers(tt.unified); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("unifiedControllers(%v) = %q, want %q", tt.unified, got, tt.want)
		}
	}
}

func TestCgroupCheckUnified(t *testing.T) {
	dir := t.TempDir()
	testFiles(t, dir, map[string]string{"cgroup.max.descendants": "max", "hugetlb.2MB.max": "max"})
	hybrid := map[string]string{"": dir, "memory": "/sys/fs/cgroup/memory/x", "blkio": "/sys/fs/cgroup/blkio/x"}
	tests := []struct {
		name    string
		unified map[string]string
		v1      map[string]string
		wants   []string // in the error; none means no error
	}{
		{"present files", map[string]string{"cgroup.max.descendants": "5", "hugetlb.2MB.max": "1"}, hybrid, nil},
		{"controller bound to v1", map[string]string{"memory.max": "1"}, hybrid, []string{`"memory.max"`, "memory controller", "cgroup v1", dir}},
		{"io is blkio on v1", map[string]string{"io.max": "8:0 rbps=1"}, hybrid, []string{`"io.max"`, "io controller", "cgroup v1"}},
		{"not available", map[string]string{"pids.max": "1"}, hybrid, []string{`"pids.max"`, "pids controller", dir}},
		{"pure v2", map[string]string{"memory.max": "1"}, nil, []string{`"memory.max"`, "memory controller", dir}},
	}
	for _, tt := range tests {
		err := checkUnified(dir, tt.unified, tt.v1)
		if tt.wants == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
		if tt.v1 == nil && strings.Contains(err.Error(), "cgroup v1") {
			t.Errorf("%s: error %q blames cgroup v1 on a v2 host", tt.name, err)
		}
	}
}

func TestCgroupHugetlbPlacement(t *testing.T) {
	tests := []struct {
		name   string
		paths  map[string]string
		onV2   bool
		errors bool // checkV1 refuses hugepage limits
	}{
		{"v1 hugetlb", map[string]string{"hugetlb": "/h", "memory": "/m", "": "/u"}, false, false},
		{"hybrid without v1 hugetlb", map[string]string{"memory": "/m", "": "/u"}, true, false},
		{"v1 only, no hugetlb", map[string]string{"memory": "/m"}, false, true},
	}
	for _, tt := range tests {
		if got := hugetlbOnV2(tt.paths, "hugetlb"); got != tt.onV2 {
			t.Errorf("%s: hugetlbOnV2 = %v, want %v", tt.name, got, tt.onV2)
		}
		if hugetlbOnV2(tt.paths, "memory") {
			t.Errorf("%s: hugetlbOnV2 takes memory for hugetlb", tt.name)
		}
		err := checkV1(tt.paths, []string{"hugetlb"})
		if (err != nil) != tt.errors {
			t.Errorf("%s: checkV1 = %v, want error %v", tt.name, err, tt.errors)
		}
	}
}

// TestCgroupSetV1Hugetlb: hugepage limits go to v1's hugetlb hierarchy when
// there is one, else to the v2 hierarchy of a hybrid host with v2 names,
// reservation limits included.
func TestCgroupSetV1Hugetlb(t *testing.T) {
	r := &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}
	tests := []struct {
		name  string
		v1    bool
		files []string // that hold the limit afterwards, relative to the fake root
	}{
		{"v1 hierarchy", true, []string{"hugetlb/hugetlb.2MB.limit_in_bytes", "hugetlb/hugetlb.2MB.rsvd.limit_in_bytes"}},
		{"v2 of a hybrid host", false, []string{"unified/hugetlb.2MB.max", "unified/hugetlb.2MB.rsvd.max"}},
	}
	for _, tt := range tests {
		root := t.TempDir()
		paths := map[string]string{"": filepath.Join(root, "unified")}
		testFiles(t, paths[""], map[string]string{"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max"})
		if tt.v1 {
			paths["hugetlb"] = filepath.Join(root, "hugetlb")
			testFiles(t, paths["hugetlb"], map[string]string{"hugetlb.2MB.limit_in_bytes": "0", "hugetlb.2MB.rsvd.limit_in_bytes": "0"})
		}
		if err := setV1(paths, r); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for _, f := range tt.files {
			if got, _ := os.ReadFile(filepath.Join(root, f)); string(got) != "4194304" {
				t.Errorf("%s: %s = %q, want 4194304", tt.name, f, got)
			}
		}
		if tt.v1 {
			if got, _ := os.ReadFile(filepath.Join(paths[""], "hugetlb.2MB.max")); string(got) != "max" {
				t.Errorf("%s: the v2 file was written too: %q", tt.name, got)
			}
		}
	}
}

// TestCgroupEnableV2: every ancestor gets the controllers asked for, where
// available, and no others; nil asks for all (a pure v2 host).
func TestCgroupEnableV2(t *testing.T) {
	tests := []struct {
		name  string
		avail string
		only  []string
		want  string // what each subtree_control was last written
	}{
		{"only hugetlb", "cpu hugetlb io", []string{"hugetlb"}, "+hugetlb"},
		{"unavailable", "cpu io", []string{"hugetlb"}, ""},
		{"all", "cpu hugetlb io", nil, "+io"},
	}
	for _, tt := range tests {
		root := filepath.Join(t.TempDir(), "root")
		mid := filepath.Join(root, "mid")
		leaf := filepath.Join(mid, "leaf")
		for _, d := range []string{root, mid} {
			testFiles(t, d, map[string]string{"cgroup.controllers": tt.avail, "cgroup.subtree_control": ""})
		}
		testFiles(t, leaf, map[string]string{"cgroup.controllers": ""})
		enableV2(leaf, tt.only)
		for _, d := range []string{root, mid} {
			if got, _ := os.ReadFile(filepath.Join(d, "cgroup.subtree_control")); string(got) != tt.want {
				t.Errorf("%s: %s/cgroup.subtree_control = %q, want %q", tt.name, d, got, tt.want)
			}
		}
		if got, _ := os.ReadFile(filepath.Join(leaf, "cgroup.subtree_control")); len(got) != 0 {
			t.Errorf("%s: the leaf's subtree_control was written: %q", tt.name, got)
		}
	}
}

func TestCgroupV1SwapCheck(t *testing.T) {
	const unlimited = 9223372036854771712
	limit := func(v int64) *int64 { return &v }
	tests := []struct {
		swap     int64
		limit    *int64
		curLimit int64
		want     string // in the error; "" for none
	}{
		{200, limit(100), unlimited, ""},
		{100, limit(100), unlimited, ""},
		{50, limit(100), unlimited, "below the memory limit 100"},
		{200, limit(-1), unlimited, "not an unlimited one"},
		{200, nil, unlimited, "needs a memory limit"},
		{200, nil, 100, ""},
		{50, nil, 100, "the cgroup's is 100"},
	}
	for _, tt := range tests {
		err := v1SwapCheck(tt.swap, tt.limit, tt.curLimit)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("v1SwapCheck(%d, %v, %d) = %v, want %q", tt.swap, tt.limit, tt.curLimit, err, tt.want)
		}
	}
}

// TestCgroupV1MemorySwapZero: a swap of 0 writes nothing, as on v2.
func TestCgroupV1MemorySwapZero(t *testing.T) {
	limit, swap := int64(100<<20), int64(0)
	ws := v1MemoryWrites(&specs.LinuxMemory{Limit: &limit, Swap: &swap}, -1)
	if want := []fileWrite{{"memory.limit_in_bytes", "104857600", false}}; !reflect.DeepEqual(ws, want) {
		t.Errorf("got %+v, want %+v", ws, want)
	}
}

func TestCgroupV1FlatCheck(t *testing.T) {
	tests := []struct {
		name   string
		parent map[string]string // files of the parent
		errors bool
	}{
		{"hierarchical parent", map[string]string{"memory.use_hierarchy": "1\n"}, true},
		{"flat parent", map[string]string{"memory.use_hierarchy": "0\n"}, false},
		{"no such file", nil, false},
	}
	for _, tt := range tests {
		parent := t.TempDir()
		testFiles(t, parent, tt.parent)
		err := v1FlatCheck(filepath.Join(parent, "ctr"))
		if (err != nil) != tt.errors || err != nil && !strings.Contains(err.Error(), parent) {
			t.Errorf("%s: %v, want error %v naming %s", tt.name, err, tt.errors, parent)
		}
	}
}
