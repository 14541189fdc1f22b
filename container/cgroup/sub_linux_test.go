package cgroup

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSubCgroups(t *testing.T) {
	tests := []struct {
		args []string
		want map[string]string
		err  string
	}{
		{nil, nil, ""},
		{[]string{"sub"}, map[string]string{"": "sub"}, ""},
		{[]string{"memory:a", "cpu,cpuacct:b/c"}, map[string]string{"memory": "a", "cpu": "b/c", "cpuacct": "b/c"}, ""},
		{[]string{"name=systemd:x:y"}, map[string]string{"name=systemd": "x:y"}, ""},
		{[]string{"a", "b"}, nil, "missing <controller>: prefix"},
		{[]string{",cpu:x"}, nil, "empty <controller> prefix"},
		{[]string{"cpu:x", "cpu,memory:y"}, nil, "controller cpu specified multiple times"},
	}
	for _, tt := range tests {
		got, err := ParseSubCgroups(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSubCgroups(%q) = %v, want an error with %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("ParseSubCgroups(%q) = %v, %v, want %v", tt.args, got, err, tt.want)
		}
	}
}

// TestCgroupSub: sub-cgroups stay below the container's directories, must
// exist, and move co-mounted controllers together.
func TestCgroupSub(t *testing.T) {
	root := t.TempDir()
	dir := func(p string) string { return filepath.Join(root, p) }
	for _, d := range []string{"mem/ct/s", "cpu/ct/s", "cpu/ct-sibling", "pids/ct", "u/ct/s"} {
		if err := os.MkdirAll(dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cgroup{Paths: map[string]string{
		"memory": dir("mem/ct"), "cpu": dir("cpu/ct"), "cpuacct": dir("cpu/ct"), "pids": dir("pids/ct"), "": dir("u/ct"),
	}}
	tests := []struct {
		sub  map[string]string
		want map[string]string // changed paths
		err  string
	}{
		{map[string]string{"memory": "s"}, map[string]string{"memory": dir("mem/ct/s")}, ""},
		{map[string]string{"cpu": "/s"}, map[string]string{"cpu": dir("cpu/ct/s"), "cpuacct": dir("cpu/ct/s")}, ""},
		{map[string]string{"memory": "/"}, nil, ""},
		{map[string]string{"memory": "s/../s"}, map[string]string{"memory": dir("mem/ct/s")}, ""},
		{map[string]string{"memory": ".."}, nil, "bad sub cgroup path: .."},
		{map[string]string{"cpu": "../ct-sibling"}, nil, "bad sub cgroup path"},
		{map[string]string{"memory": "nope"}, nil, "no such file or directory"},
		{map[string]string{"rdma": "s"}, nil, "unknown controller rdma"},
		{map[string]string{"cpu": "s", "cpuacct": "/"}, nil, "same hierarchy"},
		{map[string]string{"": "s"}, nil, "no such file or directory"}, // pids has no s
	}
	for _, tt := range tests {
		got, err := c.Sub(tt.sub)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Sub(%v) = %v, want an error with %q", tt.sub, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Sub(%v): %v", tt.sub, err)
			continue
		}
		want := maps.Clone(c.Paths)
		maps.Copy(want, tt.want)
		if !maps.Equal(got.Paths, want) {
			t.Errorf("Sub(%v) = %v, want %v", tt.sub, got.Paths, want)
		}
	}
	if err := os.MkdirAll(dir("pids/ct/s"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := c.Sub(map[string]string{"": "s"})
	if err != nil {
		t.Fatal(err)
	}
	for k, p := range got.Paths {
		if p != filepath.Join(c.Paths[k], "s") {
			t.Errorf("Sub(s): %s -> %s, want below %s", k, p, c.Paths[k])
		}
	}
}
