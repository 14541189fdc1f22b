package cgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sample /proc/self/mountinfo texts. The hybrid one is the layout of a
// systemd hybrid host with cpu and cpuacct mounted apart.
const (
	testMountinfoHybrid = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`
	testMountinfoV2 = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
99 22 0:26 / /mnt/other\040cg rw,relatime shared:4 - cgroup2 cgroup2 rw
`
	testMountinfoComounted = `32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
`
)

func TestCgroupParseMounts(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []mountedHierarchy
	}{
		{"hybrid", testMountinfoHybrid, []mountedHierarchy{
			{"/", "/sys/fs/cgroup/cpu", []string{"cpu"}},
			{"/", "/sys/fs/cgroup/cpuacct", []string{"cpuacct"}},
			{"/", "/sys/fs/cgroup/memory", []string{"memory"}},
			{"/", "/sys/fs/cgroup/pids", []string{"pids"}},
			{"/", "/sys/fs/cgroup/systemd", []string{"name=systemd"}},
			{"/", "/sys/fs/cgroup/unified", []string{""}},
		}},
		{"v2", testMountinfoV2, []mountedHierarchy{
			{"/", "/sys/fs/cgroup", []string{""}},
			{"/", "/mnt/other cg", []string{""}},
		}},
		{"comounted", testMountinfoComounted, []mountedHierarchy{
			{"/", "/sys/fs/cgroup/cpu,cpuacct", []string{"cpu", "cpuacct"}},
			{"/docker/abc", "/sys/fs/cgroup/memory", []string{"memory"}},
		}},
		{"none", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMounts(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseMounts("31 23 0:28 / /sys rw - tmpfs\n"); err == nil {
		t.Error("malformed line: no error")
	}
}

func TestCgroupParseProcCgroup(t *testing.T) {
	text := "12:cpu,cpuacct:/a\n1:name=systemd:/user.slice\n0::/b:c\n"
	got, err := parseProcCgroup(text)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/a", "cpuacct": "/a", "name=systemd": "/user.slice", "": "/b:c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseProcCgroup("garbage\n"); err == nil {
		t.Error("malformed line: no error")
	}
}

func TestCgroupPaths(t *testing.T) {
	const ownHybrid = "9:name=systemd:/user.slice\n4:memory:/mem/self\n3:pids:/\n2:cpuacct:/\n1:cpu:/c\n0::/init.scope\n"
	tests := []struct {
		name, mountinfo, own, id, cgroupsPath string
		want                                  map[string]string // nil: error expected
	}{
		{"empty", testMountinfoHybrid, ownHybrid, "ctr", "", map[string]string{
			"cpu":          "/sys/fs/cgroup/cpu/ctr",
			"cpuacct":      "/sys/fs/cgroup/cpuacct/ctr",
			"memory":       "/sys/fs/cgroup/memory/ctr",
			"pids":         "/sys/fs/cgroup/pids/ctr",
			"name=systemd": "/sys/fs/cgroup/systemd/ctr",
			"":             "/sys/fs/cgroup/unified/ctr",
		}},
		{"absolute", testMountinfoV2, "0::/x\n", "ctr", "/a/../b/c", map[string]string{
			"": "/sys/fs/cgroup/b/c",
		}},
		{"relative", testMountinfoHybrid, ownHybrid, "ctr", "sub/ctr", map[string]string{
			"cpu":          "/sys/fs/cgroup/cpu/c/sub/ctr",
			"cpuacct":      "/sys/fs/cgroup/cpuacct/sub/ctr",
			"memory":       "/sys/fs/cgroup/memory/mem/self/sub/ctr",
			"pids":         "/sys/fs/cgroup/pids/sub/ctr",
			"name=systemd": "/sys/fs/cgroup/systemd/user.slice/sub/ctr",
			"":             "/sys/fs/cgroup/unified/init.scope/sub/ctr",
		}},
		{"relative below mount root", testMountinfoComounted, "2:cpu,cpuacct:/\n1:memory:/docker/abc/x\n", "ctr", "y", map[string]string{
			"cpu":     "/sys/fs/cgroup/cpu,cpuacct/y",
			"cpuacct": "/sys/fs/cgroup/cpu,cpuacct/y",
			"memory":  "/sys/fs/cgroup/memory/x/y",
		}},
		{"relative outside mount root", testMountinfoComounted, "2:cpu,cpuacct:/\n1:memory:/other\n", "ctr", "y", nil},
		{"relative without own entry", testMountinfoV2, "1:memory:/\n", "ctr", "y", nil},
		{"hierarchy root", testMountinfoV2, "0::/\n", "ctr", "/", nil},
		{"relative climbing to root", testMountinfoV2, "0::/a\n", "ctr", "..", nil},
		{"bad id", testMountinfoV2, "0::/\n", "../x", "", nil},
		{"no hierarchy", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/\n", "ctr", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := parseMounts(tt.mountinfo)
			if err != nil {
				t.Fatal(err)
			}
			own, err := parseProcCgroup(tt.own)
			if err != nil {
				t.Fatal(err)
			}
			got, err := containerDirs(mounts, own, tt.id, tt.cgroupsPath)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCgroupUnifiedMode(t *testing.T) {
	tests := []struct {
		keys []string
		want bool
	}{
		{[]string{""}, true},
		{[]string{"", "name=systemd"}, true},
		{[]string{"", "memory", "name=systemd"}, false},
		{[]string{"memory"}, false},
	}
	for _, tt := range tests {
		paths := make(map[string]string)
		for _, k := range tt.keys {
			paths[k] = "/x"
		}
		if got := unifiedMode(paths); got != tt.want {
			t.Errorf("unifiedMode(%q) = %v, want %v", tt.keys, got, tt.want)
		}
	}
}

func TestCgroupCPUConversions(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tt := range []struct{ shares, want uint64 }{
		{0, 1}, {2, 1}, {1024, 39}, {262144, 10000}, {1 << 40, 10000},
	} {
		if got := cpuWeight(tt.shares); got != tt.want {
			t.Errorf("cpuWeight(%d) = %d, want %d", tt.shares, got, tt.want)
		}
	}
	for _, tt := range []struct {
		quota  *int64
		period *uint64
		want   string
	}{
		{i64(50000), u64(100000), "50000 100000"},
		{i64(-1), u64(100000), "max 100000"},
		{i64(0), nil, "max"},
		{nil, u64(20000), "max 20000"},
		{i64(3000), nil, "3000"},
	} {
		if got := cpuMax(tt.quota, tt.period); got != tt.want {
			t.Errorf("cpuMax = %q, want %q", got, tt.want)
		}
	}
}

func TestCgroupSwapMax(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tt := range []struct {
		swap, limit *int64
		want        string
		err         bool
	}{
		{nil, nil, "", false},
		{nil, i64(-1), "max", false},
		{nil, i64(100), "", false},
		{i64(-1), i64(100), "max", false},
		{i64(0), i64(100), "", false},
		{i64(300), i64(100), "200", false},
		{i64(100), i64(100), "0", false},
		{i64(50), i64(100), "", true},
		{i64(300), nil, "", true},
		{i64(300), i64(-1), "", true},
	} {
		got, err := swapMax(tt.swap, tt.limit)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("swapMax(%v, %v) = %q, %v; want %q, error %v", tt.swap, tt.limit, got, err, tt.want, tt.err)
		}
	}
}

func TestCgroupLimitConversions(t *testing.T) {
	for _, tt := range []struct {
		limit int64
		want  string
	}{{-1, "max"}, {-2, "max"}, {0, "1"}, {100, "100"}} {
		if got := pidsMax(tt.limit); got != tt.want {
			t.Errorf("pidsMax(%d) = %q, want %q", tt.limit, got, tt.want)
		}
	}
	for _, tt := range []struct {
		w    uint16
		want uint64
	}{{10, 1}, {500, 4950}, {1000, 10000}, {0, 1}, {5000, 10000}} {
		if got := ioWeight(tt.w); got != tt.want {
			t.Errorf("ioWeight(%d) = %d, want %d", tt.w, got, tt.want)
		}
	}
	if got, want := v2Limit(-1), "max"; got != want {
		t.Errorf("v2Limit(-1) = %q, want %q", got, want)
	}
}

func TestCgroupV2Writes(t *testing.T) {
	limit, swap, shares, quota, period, pids := int64(1<<20), int64(3<<20), uint64(1024), int64(50000), uint64(100000), int64(10)
	weight := uint16(500)
	r := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		CPU:     &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0-1"},
		Pids:    &specs.LinuxPids{Limit: &pids},
		BlockIO: &specs.LinuxBlockIO{Weight: &weight},
		Unified: map[string]string{"memory.high": "2000000"},
	}
	mem, err := v2MemoryWrites(r.Memory)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := v2CPUWrites(r.CPU)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Concat(mem, cpu, cpusetWrites(r.CPU), pidsWrites(r.Pids),
		v2IOWrites(r.BlockIO), unifiedWrites(r.Unified))
	want := []fileWrite{
		{"memory.max", "1048576", false},
		{"memory.swap.max", "2097152", false},
		{"cpu.weight", "39", false},
		{"cpu.max", "50000 100000", false},
		{"cpuset.cpus", "0-1", false},
		{"pids.max", "10", false},
		{"io.weight", "4950", false},
		{"memory.high", "2000000", false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	rt := int64(1000)
	if _, err := v2CPUWrites(&specs.LinuxCPU{RealtimeRuntime: &rt}); err == nil {
		t.Error("realtime on v2: no error")
	}
}

func TestCgroupV1MemoryWrites(t *testing.T) {
	limit, swap, kernel := int64(100<<20), int64(200<<20), int64(1<<20)
	oom := true
	m := &specs.LinuxMemory{Limit: &limit, Swap: &swap, Kernel: &kernel, DisableOOMKiller: &oom}
	tests := []struct {
		name     string
		curLimit int64
		first    string
	}{
		// Raising: memsw first, or the new limit would exceed the old memsw.
		{"raise", 50 << 20, "memory.memsw.limit_in_bytes"},
		// Lowering from unlimited: limit first.
		{"lower", 9223372036854771712, "memory.limit_in_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := v1MemoryWrites(m, tt.curLimit)
			if len(ws) != 4 || ws[0].file != tt.first {
				t.Fatalf("got %+v, want 4 writes starting with %s", ws, tt.first)
			}
			if ws[2] != (fileWrite{"memory.kmem.limit_in_bytes", "1048576", true}) {
				t.Errorf("kernel write = %+v", ws[2])
			}
			if ws[3] != (fileWrite{"memory.oom_control", "1", false}) {
				t.Errorf("oom write = %+v", ws[3])
			}
		})
	}
}

func TestCgroupDeviceRule(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		dev        specs.LinuxDeviceCgroup
		file, rule string
	}{
		{specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}, "devices.deny", "a *:* rwm"},
		{specs.LinuxDeviceCgroup{Allow: false}, "devices.deny", "a *:* rwm"},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}, "devices.allow", "c 1:3 rwm"},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Minor: i64(-1), Access: "rw"}, "devices.allow", "c 136:* rw"},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(-1), Access: "m"}, "devices.allow", "b *:* m"},
		// Access as runc reads it: a set of r, w and m, other letters ignored.
		{specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: i64(1), Minor: i64(11), Access: "rwa"}, "devices.deny", "c 1:11 rw"},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "mwrw"}, "devices.allow", "c 1:3 rwm"},
		{specs.LinuxDeviceCgroup{Allow: false, Type: "a", Access: "x"}, "devices.deny", "a *:* rwm"},
		// Nothing left of the access: no rule at all.
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "a"}, "", ""},
	}
	for _, tt := range tests {
		file, rule, _ := deviceRule(tt.dev)
		if file != tt.file || rule != tt.rule {
			t.Errorf("deviceRule(%+v) = %s %q, want %s %q", tt.dev, file, rule, tt.file, tt.rule)
		}
	}
}

func TestCgroupRequiredControllers(t *testing.T) {
	limit, classID := int64(1), uint32(7)
	oomOff := false
	r := &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: &limit, DisableOOMKiller: &oomOff},
		CPU:            &specs.LinuxCPU{Cpus: "0"},
		BlockIO:        &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{Rate: 1}}},
		Network:        &specs.LinuxNetwork{ClassID: &classID},
		Devices:        []specs.LinuxDeviceCgroup{{Allow: false}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1}},
	}
	if got, want := requiredControllers(r, false), []string{"memory", "cpuset", "blkio", "hugetlb", "net_cls", "devices"}; !reflect.DeepEqual(got, want) {
		t.Errorf("v1: got %q, want %q", got, want)
	}
	if got, want := requiredControllers(r, true), []string{"memory", "cpuset", "io", "hugetlb", "net_cls"}; !reflect.DeepEqual(got, want) {
		t.Errorf("v2: got %q, want %q", got, want)
	}
	if got := requiredControllers(nil, false); got != nil {
		t.Errorf("nil resources: got %q", got)
	}
}

func TestCgroupWriteAllRejectsPaths(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"../x", "a/b", "..", ""} {
		if err := writeAll(dir, []fileWrite{{name, "1", false}}); err == nil {
			t.Errorf("file %q: no error", name)
		}
	}
	// Optional files that are missing are skipped; others are an error
	// naming the path, as cgroup files are never created.
	if err := writeAll(dir, []fileWrite{{"memory.kmem.limit_in_bytes", "1", true}}); err != nil {
		t.Errorf("optional missing file: %v", err)
	}
	err := writeAll(dir, []fileWrite{{"pids.max", "1", false}})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "pids.max")) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestCgroupJSON(t *testing.T) {
	c := &Cgroup{Paths: map[string]string{"": "/sys/fs/cgroup/crier/x"}, Created: []string{"/sys/fs/cgroup/crier"}}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Cgroup
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, c) {
		t.Errorf("round trip: got %+v, want %+v", back, c)
	}
}

// apply is Prepare and Limit, then moves the existing process pid into the
// directories: what the tests need to put a child of theirs in a cgroup
// (crier forks init into its cgroups instead: ForkInto). With r == nil
// only placement happens. On error apply removes the directories it
// created (a directory still holding pid cannot be removed and stays in
// Created for Destroy).
func (c *Cgroup) apply(pid int, r *specs.LinuxResources) error {
	if err := c.Prepare(r); err != nil {
		return err
	}
	if err := c.Limit(r); err != nil {
		c.removeCreated()
		return err
	}
	for _, dir := range uniqueDirs(c.Paths) {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			c.removeCreated()
			return err
		}
	}
	return nil
}

// startSleep starts a child for the root-only tests and makes sure it is
// gone when the test ends.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func TestCgroupApplyDestroy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	c, err := New("unused", fmt.Sprintf("/crier-test-%x/ctr", rand.Uint64()))
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t)
	limit, pidsLimit := int64(64<<20), int64(32)
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
		Pids:   &specs.LinuxPids{Limit: &pidsLimit},
	}
	if err := c.apply(cmd.Process.Pid, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	if len(c.Created) <= len(uniqueDirs(c.Paths)) {
		t.Errorf("Created = %q: want the leaves and their new parents", c.Created)
	}

	memDir, memFile, pidsDir := c.Paths["memory"], "memory.limit_in_bytes", c.Paths["pids"]
	if unifiedMode(c.Paths) {
		memDir, memFile, pidsDir = c.Paths[""], "memory.max", c.Paths[""]
	}
	for _, f := range []struct{ dir, name, want string }{
		{memDir, memFile, "67108864"},
		{pidsDir, "pids.max", "32"},
	} {
		if got, err := readFile(f.dir, f.name); err != nil || got != f.want {
			t.Errorf("%s/%s = %q, %v; want %q", f.dir, f.name, got, err, f.want)
		}
	}
	pids, err := c.Pids()
	if err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("Pids() = %v, %v; want it to contain %d", pids, err, cmd.Process.Pid)
	}

	cmd.Process.Kill()
	cmd.Wait()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range slices.Concat(slices.Collect(maps.Values(c.Paths)), c.Created) {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after Destroy (%v)", dir, err)
		}
	}
	if err := c.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func TestCgroupApplyMissingController(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	c, err := New("unused", fmt.Sprintf("/crier-test-%x", rand.Uint64()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Paths["net_cls"]; ok {
		t.Skip("this host has net_cls mounted")
	}
	cmd := startSleep(t)
	classID := uint32(0x100001)
	err = c.apply(cmd.Process.Pid, &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: &classID}})
	t.Cleanup(func() { c.Destroy() })
	if err == nil || !strings.Contains(err.Error(), "net_cls") {
		t.Fatalf("apply = %v, want an error naming net_cls", err)
	}
	for _, dir := range c.Paths {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind by a failed apply (%v)", dir, err)
		}
	}
	if len(c.Created) != 0 {
		t.Errorf("Created = %q after a failed apply", c.Created)
	}
}

// As in crier-shim, the main goroutine keeps the main thread, so the
// throwaway threads of ForkInto are never the main one.
func init() { runtime.LockOSThread() }

// TestCgroupForkInto checks that the child is born in every one of the
// container's cgroups, v1 and v2 alike, and that the forking process is left
// where it was, whichever thread the forking goroutine lands on.
func TestCgroupForkInto(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	c, err := New("unused", fmt.Sprintf("/crier-test-%x/ctr", rand.Uint64()))
	if err != nil {
		t.Fatal(err)
	}
	pidsLimit := int64(16)
	r := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pidsLimit}}
	if err := c.Prepare(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread goes when the goroutine ends.
		runtime.LockOSThread()
		_, err := c.ForkInto(cmd.SysProcAttr, func() (int, error) {
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			return cmd.Process.Pid, nil
		})
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := c.Limit(r); err != nil {
		t.Fatal(err)
	}
	pidsDir := c.Paths["pids"]
	if unifiedMode(c.Paths) {
		pidsDir = c.Paths[""]
	}
	if got, err := readFile(pidsDir, "pids.max"); err != nil || got != "16" {
		t.Errorf("pids.max = %q, %v; want 16", got, err)
	}

	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || string(self) != string(before) {
		t.Errorf("this process's cgroups changed from %q to %q (%v)", before, self, err)
	}
	for key, dir := range c.Paths {
		procs, err := readProcs(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(procs, cmd.Process.Pid) {
			t.Errorf("%q hierarchy: %s holds %v, not the child %d", key, dir, procs, cmd.Process.Pid)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyLegacySharedParent: a container an older crier made in its
// default /crier/<id> (SharedParent in its state) is deleted whole, the
// shared parent too, unless another container is still in it.
func TestDestroyLegacySharedParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tt := range []struct {
		name        string
		sibling     bool
		parentStays bool
	}{
		{"last container", false, false},
		{"another still there", true, true},
	} {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			// A parent of this test's own stands for /crier: tests share
			// the machine.
			parent := fmt.Sprintf("/crier-test-%x", rand.Uint64())
			c, err := New("unused", parent+"/c1")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Prepare(nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Destroy() })
			var siblings []string
			if tt.sibling {
				for _, dir := range uniqueDirs(c.Paths) {
					sib := filepath.Join(filepath.Dir(dir), "c2")
					if err := os.Mkdir(sib, 0o755); err != nil {
						t.Fatal(err)
					}
					siblings = append(siblings, sib)
				}
				t.Cleanup(func() {
					for _, sib := range siblings {
						os.Remove(sib)
						os.Remove(filepath.Dir(sib))
					}
				})
			}
			// As an older crier's state file has it: the shared parent is
			// not among the directories this container made.
			legacy := &Cgroup{Paths: c.Paths, SharedParent: true}
			if err := legacy.Destroy(); err != nil {
				t.Fatal(err)
			}
			for _, dir := range uniqueDirs(c.Paths) {
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s still there (%v)", dir, err)
				}
				_, err := os.Stat(filepath.Dir(dir))
				if stays := err == nil; stays != tt.parentStays {
					t.Errorf("parent %s there: %v, want %v", filepath.Dir(dir), stays, tt.parentStays)
				}
			}
		})
	}
}
