package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rtTree writes a fake cpu hierarchy: each directory (relative to a
// temporary root) gets cpu.rt_runtime_us and cpu.rt_period_us.
func rtTree(t *testing.T, dirs map[string][2]int64) string {
	t.Helper()
	root := t.TempDir()
	for d, v := range dirs {
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"cpu.rt_runtime_us", "cpu.rt_period_us"} {
			if err := os.WriteFile(filepath.Join(p, name), []byte(strconv.FormatInt(v[i], 10)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestRTRatio(t *testing.T) {
	tests := []struct {
		runtime, period, want int64
	}{
		{950000, 1000000, 996147},
		{0, 1000000, 0},
		{-1, 1000000, 1 << 20},
		{10000, 0, 0},
	}
	for _, tt := range tests {
		if got := rtRatio(tt.runtime, tt.period); got != tt.want {
			t.Errorf("rtRatio(%d, %d) = %d, want %d", tt.runtime, tt.period, got, tt.want)
		}
	}
	// rtRuntimeFor is the least runtime reaching a ratio, whatever the period.
	for _, period := range []int64{1000000, 500000, 333333, 7} {
		for _, r := range []int64{1, 10000, 123457, 950000} {
			ratio := rtRatio(r, 1000000)
			got := rtRuntimeFor(ratio, period)
			if rtRatio(got, period) < ratio || (got > 0 && rtRatio(got-1, period) >= ratio) {
				t.Errorf("rtRuntimeFor(%d, %d) = %d: not the least runtime with that ratio", ratio, period, got)
			}
		}
	}
}

func TestGrantRealtime(t *testing.T) {
	const sec = 1000000
	u := func(v uint64) *uint64 { return &v }
	i := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		tree    map[string][2]int64
		leaf    string
		created []string // relative to the root
		shared  bool
		cpu     specs.LinuxCPU
		want    map[string]int64 // runtime after the call
		wantErr string
	}{
		{
			name: "shared parent sized for its children",
			tree: map[string][2]int64{
				".": {950000, sec}, "crier": {0, sec}, "crier/other": {10000, sec}, "crier/c1": {0, sec},
			},
			leaf: "crier/c1", shared: true,
			cpu: specs.LinuxCPU{RealtimeRuntime: i(10000)},
			// 19999, not 20000: the least the kernel takes, as it sums
			// floor(runtime<<20/period) of the children.
			want: map[string]int64{"crier": 19999, "crier/other": 10000, "crier/c1": 10000, ".": 950000},
		},
		{
			name: "parent with enough already is left alone",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {500000, sec}, "crier/c1": {0, sec}},
			leaf: "crier/c1", shared: true,
			cpu:  specs.LinuxCPU{RealtimeRuntime: i(10000)},
			want: map[string]int64{"crier": 500000},
		},
		{
			name: "every parent crier created, top down",
			tree: map[string][2]int64{
				".": {950000, sec}, "a": {0, sec}, "a/b": {0, sec}, "a/b/c": {0, sec}, "a/x": {30000, sec},
			},
			leaf: "a/b/c", created: []string{"a", "a/b", "a/b/c"},
			cpu:  specs.LinuxCPU{RealtimeRuntime: i(20000)},
			want: map[string]int64{"a": 50000, "a/b": 20000, "a/b/c": 20000},
		},
		{
			name: "a parent crier did not create is not touched",
			tree: map[string][2]int64{".": {950000, sec}, "a": {40000, sec}, "a/b": {0, sec}, "a/b/c": {0, sec}},
			leaf: "a/b/c", created: []string{"a/b", "a/b/c"},
			cpu:  specs.LinuxCPU{RealtimeRuntime: i(20000)},
			want: map[string]int64{"a": 40000, "a/b": 20000},
		},
		{
			name: "the container's period counts",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {0, 500000}, "crier/c1": {0, sec}},
			leaf: "crier/c1", shared: true,
			cpu:  specs.LinuxCPU{RealtimeRuntime: i(10000), RealtimePeriod: u(100000)},
			want: map[string]int64{"crier": 50000},
		},
		{
			name: "the leaf's own period when the config has none",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {0, sec}, "crier/c1": {0, 100000}},
			leaf: "crier/c1", shared: true,
			cpu:  specs.LinuxCPU{RealtimeRuntime: i(10000)},
			want: map[string]int64{"crier": 100000},
		},
		{
			name: "not enough above",
			tree: map[string][2]int64{".": {15000, sec}, "sys": {10000, sec}, "crier": {0, sec}, "crier/c1": {0, sec}},
			leaf: "crier/c1", shared: true,
			cpu:     specs.LinuxCPU{RealtimeRuntime: i(10000)},
			want:    map[string]int64{"crier": 0},
			wantErr: "has not enough real-time runtime left",
		},
		{
			name: "not enough in a parent crier may not raise",
			tree: map[string][2]int64{".": {950000, sec}, "a": {5000, sec}, "a/c1": {0, sec}},
			leaf: "a/c1", created: []string{"a/c1"},
			cpu:     specs.LinuxCPU{RealtimeRuntime: i(10000)},
			wantErr: "has not enough real-time runtime left",
		},
		{
			name: "no realtimeRuntime: nothing to do",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {0, sec}, "crier/c1": {0, sec}},
			leaf: "crier/c1", shared: true,
			cpu:  specs.LinuxCPU{RealtimePeriod: u(100000)},
			want: map[string]int64{"crier": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := rtTree(t, tt.tree)
			c := &Cgroup{Paths: map[string]string{"cpu": filepath.Join(root, tt.leaf)}, SharedParent: tt.shared}
			for _, d := range tt.created {
				c.Created = append(c.Created, filepath.Join(root, d))
			}
			err := c.grantRealtime(&tt.cpu)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("grantRealtime: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
			wantRT(t, root, tt.want)
		})
	}
}

func TestRTManagedAncestors(t *testing.T) {
	c := &Cgroup{Created: []string{"/cg/cpu/a", "/cg/cpu/a/b", "/cg/cpu/a/b/c"}}
	if got, want := c.rtManagedAncestors("/cg/cpu/a/b/c"), []string{"/cg/cpu/a/b", "/cg/cpu/a"}; !slices.Equal(got, want) {
		t.Errorf("created: %v, want %v", got, want)
	}
	c = &Cgroup{SharedParent: true}
	if got, want := c.rtManagedAncestors("/cg/cpu/crier/c1"), []string{"/cg/cpu/crier"}; !slices.Equal(got, want) {
		t.Errorf("shared: %v, want %v", got, want)
	}
	c = &Cgroup{Created: []string{"/cg/cpu/x/c1"}}
	if got := c.rtManagedAncestors("/cg/cpu/x/c1"); len(got) != 0 {
		t.Errorf("none: %v", got)
	}
}

func TestReleaseRealtime(t *testing.T) {
	const sec = 1000000
	tests := []struct {
		name    string
		tree    map[string][2]int64 // after the container's own cgroup went
		leaf    string
		created []string
		shared  bool
		want    map[string]int64
	}{
		{
			name: "shared parent keeps what the others hold",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {30000, sec}, "crier/other": {10000, sec}},
			leaf: "crier/c1", shared: true,
			want: map[string]int64{"crier": 10000, "crier/other": 10000, ".": 950000},
		},
		{
			name: "shared parent with no one left",
			tree: map[string][2]int64{".": {950000, sec}, "crier": {30000, sec}, "crier/plain": {0, sec}},
			leaf: "crier/c1", shared: true,
			want: map[string]int64{"crier": 0},
		},
		{
			name: "created parents, nearest first",
			tree: map[string][2]int64{".": {950000, sec}, "a": {50000, sec}, "a/b": {20000, sec}, "a/x": {30000, sec}},
			leaf: "a/b/c", created: []string{"a", "a/b", "a/b/c"},
			want: map[string]int64{"a/b": 0, "a": 30000},
		},
		{
			name: "a parent crier did not create is not touched",
			tree: map[string][2]int64{".": {950000, sec}, "a": {50000, sec}},
			leaf: "a/c1", created: []string{"a/c1"},
			want: map[string]int64{"a": 50000},
		},
		{
			name: "unlimited is left alone",
			tree: map[string][2]int64{".": {-1, sec}, "crier": {-1, sec}},
			leaf: "crier/c1", shared: true,
			want: map[string]int64{"crier": -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := rtTree(t, tt.tree)
			c := &Cgroup{Paths: map[string]string{"cpu": filepath.Join(root, tt.leaf)}, SharedParent: tt.shared}
			for _, d := range tt.created {
				c.Created = append(c.Created, filepath.Join(root, d))
			}
			c.releaseRealtime()
			wantRT(t, root, tt.want)
		})
	}
}

func TestDropRealtime(t *testing.T) {
	root := rtTree(t, map[string][2]int64{"crier": {20000, 1000000}, "crier/c1": {10000, 1000000}})
	c := &Cgroup{Paths: map[string]string{"cpu": filepath.Join(root, "crier/c1")}, SharedParent: true}
	c.dropRealtime()
	for d, want := range map[string]int64{"crier/c1": 0, "crier": 20000} {
		if got, _, err := readRT(filepath.Join(root, d)); err != nil || got != want {
			t.Errorf("%s: runtime %d (%v), want %d", d, got, err, want)
		}
	}
}

// wantRT checks the rt_runtime_us of each directory under root.
func wantRT(t *testing.T, root string, want map[string]int64) {
	t.Helper()
	for d, w := range want {
		got, _, err := readRT(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: runtime %d, want %d", d, got, w)
		}
	}
}
