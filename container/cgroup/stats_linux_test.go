package cgroup

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// writeFiles makes dir with the given cgroup files.
func writeFiles(t *testing.T, dir string, files map[string]string) {
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

func TestStatsV1(t *testing.T) {
	root := t.TempDir()
	dir := func(ctl string) string { return filepath.Join(root, ctl, "crier", "c1") }
	writeFiles(t, dir("cpuacct"), map[string]string{
		"cpuacct.usage":             "3000\n",
		"cpuacct.usage_percpu":      "1000 2000 \n",
		"cpuacct.usage_percpu_sys":  "10 20\n",
		"cpuacct.usage_percpu_user": "990 1980\n",
		"cpuacct.stat":              "user 7\nsystem 3\n",
	})
	writeFiles(t, dir("cpu"), map[string]string{"cpu.stat": "nr_periods 4\nnr_throttled 2\nthrottled_time 555\n"})
	writeFiles(t, dir("memory"), map[string]string{
		"memory.usage_in_bytes": "4096\n", "memory.max_usage_in_bytes": "8192\n",
		"memory.limit_in_bytes": "10485760\n", "memory.failcnt": "1\n",
		"memory.memsw.usage_in_bytes": "5000\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.stat": "cache 123\nrss 456\n",
	})
	writeFiles(t, dir("pids"), map[string]string{"pids.current": "2\n", "pids.max": "max\n"})
	writeFiles(t, dir("blkio"), map[string]string{
		"blkio.io_service_bytes_recursive":          "Total 0\n",
		"blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\nTotal 300\n",
		"blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
	})
	c := &Cgroup{Paths: map[string]string{
		"cpuacct": dir("cpuacct"), "cpu": dir("cpu"), "memory": dir("memory"), "pids": dir("pids"),
		"blkio": dir("blkio"), "freezer": dir("freezer"), "": dir("unified"),
	}}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		CPU: CPUStats{
			Usage: CPUUsage{Total: 3000, Percpu: []uint64{1000, 2000}, PercpuKernel: []uint64{10, 20},
				PercpuUser: []uint64{990, 1980}, User: 70000000, Kernel: 30000000},
			Throttling: Throttling{Periods: 4, ThrottledPeriods: 2, ThrottledTime: 555},
		},
		Memory: MemoryStats{
			Cache:  123,
			Usage:  MemoryEntry{Limit: 10485760, Usage: 4096, Max: 8192, Failcnt: 1},
			Swap:   MemoryEntry{Limit: 9223372036854771712, Usage: 5000},
			Raw:    map[string]uint64{"cache": 123, "rss": 456},
			Kernel: MemoryEntry{}, KernelTCP: MemoryEntry{},
		},
		Pids: PidsStats{Current: 2},
		Blkio: BlkioStats{
			IoServiceBytesRecursive: []BlkioEntry{{8, 0, "Read", 100}, {8, 0, "Write", 200}, {8, 0, "Total", 300}},
			IoServicedRecursive:     []BlkioEntry{{8, 0, "Read", 1}, {8, 0, "Write", 2}},
		},
	}
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("got  %+v\nwant %+v", *s, want)
	}
}

func TestStatsV2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "crier", "c1")
	writeFiles(t, dir, map[string]string{
		"cpu.stat":            "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 5\nnr_throttled 1\nthrottled_usec 7\n",
		"memory.current":      "4096\n",
		"memory.max":          "max\n",
		"memory.peak":         "8192\n",
		"memory.events":       "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n",
		"memory.swap.current": "100\n",
		"memory.swap.max":     "1000\n",
		"memory.stat":         "anon 10\nfile 20\n",
		"pids.current":        "3\n",
		"pids.max":            "50\n",
		"io.stat":             "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
	})
	s, err := (&Cgroup{Paths: map[string]string{"": dir}}).Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		CPU: CPUStats{
			Usage:      CPUUsage{Total: 30000, User: 20000, Kernel: 10000},
			Throttling: Throttling{Periods: 5, ThrottledPeriods: 1, ThrottledTime: 7000},
		},
		Memory: MemoryStats{
			Cache: 20,
			Usage: MemoryEntry{Limit: math.MaxUint64, Usage: 4096, Max: 8192, Failcnt: 3},
			Swap:  MemoryEntry{Limit: math.MaxUint64, Usage: 4196},
			Raw:   map[string]uint64{"anon": 10, "file": 20},
		},
		Pids: PidsStats{Current: 3, Limit: 50},
		Blkio: BlkioStats{
			IoServiceBytesRecursive: []BlkioEntry{{8, 0, "Read", 100}, {8, 0, "Write", 200}},
			IoServicedRecursive:     []BlkioEntry{{8, 0, "Read", 1}, {8, 0, "Write", 2}},
		},
	}
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("got  %+v\nwant %+v", *s, want)
	}
}

func TestStatsErrors(t *testing.T) {
	gone := &Cgroup{Paths: map[string]string{"": filepath.Join(t.TempDir(), "gone")}}
	if _, err := gone.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a removed cgroup: got %v, want fs.ErrNotExist", err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pids.current": "lots\n"})
	_, err := (&Cgroup{Paths: map[string]string{"": dir}}).Stats()
	if err == nil || err.Error() != `cgroup: parse `+filepath.Join(dir, "pids.current")+`: "lots" is not a number` {
		t.Errorf("a bad counter: got %v", err)
	}
}
