package test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// This file runs a real container for every cgroup resource of the spec and
// checks the value in the cgroup file on the host while the container
// exists, the same value as the container sees it through its cgroup
// namespace, and that the cgroups are gone after delete. Where the host
// lacks a controller or a file, the case expects create to fail with one
// line naming it instead.
//
// The expectations depend on the host: v1 (legacy or hybrid) or pure v2,
// which file the block I/O weight goes to, which hierarchies are mounted.
// cgroupHostInfo finds out, without asking crier.

// cgroupHost is what the test knows of this host's cgroups.
type cgroupHost struct {
	// v2 is a pure cgroup v2 host: limits go to the unified hierarchy.
	v2 bool
	// mounts maps a v1 controller (or name=...) or "" for cgroup2 to where
	// its hierarchy is mounted; the first mount of a hierarchy wins.
	mounts map[string]string
	// roots maps the same keys to the mounted part of the hierarchy.
	roots map[string]string
	// own maps the same keys to this process's cgroup, which the shim
	// inherits (relative cgroupsPaths are below it).
	own map[string]string
	// v2Controllers are those available in the root of the v2 hierarchy.
	v2Controllers []string
	// disk is a whole disk's major:minor, for per-device block I/O rules.
	disk string
	// blkioWeight is the v1 file that a blkio weight goes to: CFQ's
	// blkio.weight or BFQ's blkio.bfq.weight; "" when neither exists.
	blkioWeight string
}

// cgroupIsV1Key tells the controllers and name=... among the options of a
// v1 hierarchy's mount from its other options.
func cgroupIsV1Key(opt string) bool {
	switch opt {
	case "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer",
		"net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return strings.HasPrefix(opt, "name=")
}

// cgroupHostInfo reads this host's cgroup layout from /proc and /sys.
func cgroupHostInfo(t *testing.T) *cgroupHost {
	t.Helper()
	h := &cgroupHost{mounts: map[string]string{}, roots: map[string]string{}, own: map[string]string{}}
	for line := range strings.SplitSeq(readFile(t, "/proc/self/mountinfo"), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		var keys []string
		switch f[sep+1] {
		case "cgroup2":
			keys = []string{""}
		case "cgroup":
			for opt := range strings.SplitSeq(f[sep+3], ",") {
				if cgroupIsV1Key(opt) {
					keys = append(keys, opt)
				}
			}
		}
		for _, k := range keys {
			if _, seen := h.mounts[k]; !seen {
				h.mounts[k], h.roots[k] = f[4], f[3]
			}
		}
	}
	for line := range strings.SplitSeq(readFile(t, "/proc/self/cgroup"), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			h.own[""] = parts[2]
			continue
		}
		for ctl := range strings.SplitSeq(parts[1], ",") {
			h.own[ctl] = parts[2]
		}
	}
	h.v2 = true
	for k := range h.mounts {
		if k != "" && !strings.HasPrefix(k, "name=") {
			h.v2 = false
		}
	}
	if dir, ok := h.mounts[""]; ok {
		h.v2Controllers = strings.Fields(readFile(t, filepath.Join(dir, "cgroup.controllers")))
	}
	// Prefer a real disk to loop and RAM devices.
	devs, _ := filepath.Glob("/sys/block/*/dev")
	for _, p := range devs {
		name := filepath.Base(filepath.Dir(p))
		virtual := strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram")
		if h.disk == "" || !virtual {
			h.disk = readFile(t, p)
		}
		if !virtual {
			break
		}
	}
	if dir, ok := h.mounts["blkio"]; ok {
		switch {
		case cgFileExists(filepath.Join(dir, "blkio.weight")):
			h.blkioWeight = "blkio.weight"
		case cgFileExists(filepath.Join(dir, "blkio.bfq.io_service_bytes")):
			// BFQ has no weight file in the root cgroup, only below it.
			h.blkioWeight = "blkio.bfq.weight"
		}
	}
	return h
}

func cgFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// has reports whether the host mounts hierarchy key (a v1 controller, or ""
// for cgroup2).
func (h *cgroupHost) has(key string) bool {
	_, ok := h.mounts[key]
	return ok
}

// dir is where the spec says cgroupsPath p ends up in hierarchy key: below
// the mount point for an absolute path, below this process's own cgroup
// for a relative one (as seen in the mounted part of the hierarchy).
func (h *cgroupHost) dir(key, p string) string {
	if !path.IsAbs(p) {
		p = path.Join("/", h.own[key], p)
		if root := h.roots[key]; root != "/" {
			p = strings.TrimPrefix(p, root)
		}
	}
	return filepath.Join(h.mounts[key], p)
}

// insideDir is where the container sees its cgroup of hierarchy key: the
// same layout under /sys/fs/cgroup, its own cgroup at the top (cgroup
// namespace).
func (h *cgroupHost) insideDir(key string) string {
	return filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(h.mounts[key], "/sys/fs/cgroup"))
}

// limitsKey is the hierarchy that holds controller ctl's files: ctl itself
// on a v1 host, the unified one on v2.
func (h *cgroupHost) limitsKey(ctl string) string {
	if h.v2 {
		return ""
	}
	return ctl
}

// cgroupCheck is one value a container's cgroup file must hold.
type cgroupCheck struct {
	key  string // the hierarchy: a v1 controller or "" for cgroup2
	file string
	want string // a line the file holds (for most files, all of it)
	// optional: the kernel may lack the file; crier then skips it.
	optional bool
}

// cgroupCase is one configuration and what it must do on this host.
type cgroupCase struct {
	name string
	// path is linux.cgroupsPath for container id; nil means none.
	path func(id string) string
	set  func(r *specs.LinuxResources)
	// checks are made on the host and in the container; without wantErr
	// the container must be created.
	checks []cgroupCheck
	// sees is what the container's process sees of the limits, beyond
	// its cgroup files.
	sees []cgroupSees
	// wantErr: create must fail with one line holding every one of these.
	wantErr []string
}

// cgroupSees is a shell command the container runs and what it must print.
type cgroupSees struct {
	cmd, want string
}

// cgRef returns a pointer to v, for the spec's optional fields.
func cgRef[T any](v T) *T { return &v }

// diskMajorMinor splits h.disk.
func (h *cgroupHost) diskMajorMinor() (int64, int64) {
	maj, min, _ := strings.Cut(h.disk, ":")
	a, _ := strconv.ParseInt(maj, 10, 64)
	b, _ := strconv.ParseInt(min, 10, 64)
	return a, b
}

// cgroupCases builds the table for host h. Each case says what happens on
// a v1 (legacy or hybrid) host and on a v2 one.
func cgroupCases(h *cgroupHost) []cgroupCase {
	const (
		mib       = int64(1 << 20)
		unlimited = "9223372036854771712" // a v1 limit of -1, page-aligned
	)
	major, minor := h.diskMajorMinor()
	throttle := func(rate uint64) []specs.LinuxThrottleDevice {
		return []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: rate}}
	}
	v1v2 := func(v1, v2 []cgroupCheck) []cgroupCheck {
		if h.v2 {
			return v2
		}
		return v1
	}
	errIf := func(cond bool, wants ...string) []string {
		if cond {
			return wants
		}
		return nil
	}
	// The real-time budget of a new cgroup is zero and a child's cannot
	// exceed its parent's: a cgroup right below the root, which has the
	// host's budget, can take some without crier having to hand it down.
	topLevel := func(id string) string { return "/" + id + "-top" }

	cases := []cgroupCase{
		{
			name: "memory limit reservation swap",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](64 * mib), Reservation: cgRef[int64](32 * mib), Swap: cgRef[int64](128 * mib)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.limit_in_bytes", want: strconv.FormatInt(64*mib, 10)},
				{key: "memory", file: "memory.soft_limit_in_bytes", want: strconv.FormatInt(32*mib, 10)},
				{key: "memory", file: "memory.memsw.limit_in_bytes", want: strconv.FormatInt(128*mib, 10)},
			}, []cgroupCheck{
				{key: "", file: "memory.max", want: strconv.FormatInt(64*mib, 10)},
				{key: "", file: "memory.low", want: strconv.FormatInt(32*mib, 10)},
				// v2 counts swap alone: memory+swap minus memory.
				{key: "", file: "memory.swap.max", want: strconv.FormatInt(64*mib, 10)},
			}),
		},
		{
			name: "memory unlimited",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](-1), Swap: cgRef[int64](-1)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.limit_in_bytes", want: unlimited},
				{key: "memory", file: "memory.memsw.limit_in_bytes", want: unlimited},
			}, []cgroupCheck{
				{key: "", file: "memory.max", want: "max"},
				{key: "", file: "memory.swap.max", want: "max"},
			}),
		},
		{
			name: "memory swap below limit",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](128 * mib), Swap: cgRef[int64](64 * mib)}
			},
			wantErr: []string{"below the memory limit"},
		},
		{
			name: "memory swap without limit",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Swap: cgRef[int64](64 * mib)}
			},
			wantErr: []string{"needs a memory limit"},
		},
		{
			// As in runc, and on v2: zero means no memory+swap limit.
			name: "memory swap zero",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](64 * mib), Swap: cgRef[int64](0)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.limit_in_bytes", want: strconv.FormatInt(64*mib, 10)},
				{key: "memory", file: "memory.memsw.limit_in_bytes", want: unlimited},
			}, []cgroupCheck{
				{key: "", file: "memory.max", want: strconv.FormatInt(64*mib, 10)},
				{key: "", file: "memory.swap.max", want: "max"},
			}),
		},
		{
			name: "memory swappiness and OOM killer",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Swappiness: cgRef[uint64](17), DisableOOMKiller: cgRef[bool](true)}
			},
			// v2 has neither; the spec lets a runtime ignore them there.
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.swappiness", want: "17"},
				{key: "memory", file: "memory.oom_control", want: "oom_kill_disable 1"},
			}, nil),
		},
		{
			name: "memory OOM killer left on",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](64 * mib), DisableOOMKiller: cgRef[bool](false)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.oom_control", want: "oom_kill_disable 0"},
			}, nil),
		},
		{
			// Kernels since 6.1 keep memory.kmem.limit_in_bytes but ignore
			// what is written to it; the TCP limit still works on v1.
			name: "memory kernel and kernelTCP",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Kernel: cgRef[int64](256 * mib), KernelTCP: cgRef[int64](16 * mib)}
			},
			checks: v1v2(kernelTCPCheck(h, 16*mib), nil),
		},
		{
			name: "memory useHierarchy",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{UseHierarchy: cgRef[bool](true)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "memory", file: "memory.use_hierarchy", want: "1", optional: true},
			}, nil),
		},
		{
			// Recent kernels' v1 memory cgroups are always hierarchical
			// and refuse to be made flat.
			name: "memory useHierarchy off",
			set: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{UseHierarchy: cgRef[bool](false)}
			},
			wantErr: errIf(!h.v2, "useHierarchy false", "memory.use_hierarchy is 1"),
		},
		{
			name: "cpu shares quota period",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Shares: cgRef[uint64](512), Quota: cgRef[int64](25000), Period: cgRef[uint64](50000)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "cpu", file: "cpu.shares", want: "512"},
				{key: "cpu", file: "cpu.cfs_quota_us", want: "25000"},
				{key: "cpu", file: "cpu.cfs_period_us", want: "50000"},
			}, []cgroupCheck{
				{key: "", file: "cpu.weight", want: "20"},
				{key: "", file: "cpu.max", want: "25000 50000"},
			}),
		},
		{
			// docker 20.10 sends "cpu": {"shares": 0} and "blockIO":
			// {"weight": 0}; runc reads a zero there, and in the other
			// fields below, as "not set", and so must crier: writing
			// them fails (blkio.weight without BFQ) or sets the minimum.
			name: "zero values mean unset",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Shares: cgRef[uint64](0), Quota: cgRef[int64](0), Period: cgRef[uint64](0)}
				r.BlockIO = &specs.LinuxBlockIO{Weight: cgRef[uint16](0), LeafWeight: cgRef[uint16](0)}
				r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](0), Reservation: cgRef[int64](0), DisableOOMKiller: cgRef(false)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "cpu", file: "cpu.shares", want: "1024"},
				{key: "cpu", file: "cpu.cfs_quota_us", want: "-1"},
				{key: "cpu", file: "cpu.cfs_period_us", want: "100000"},
				{key: "memory", file: "memory.limit_in_bytes", want: unlimited},
			}, []cgroupCheck{
				{key: "", file: "cpu.weight", want: "100"},
				{key: "", file: "cpu.max", want: "max 100000"},
				{key: "", file: "memory.max", want: "max"},
			}),
		},
		{
			name: "cpu burst",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Quota: cgRef[int64](50000), Period: cgRef[uint64](100000), Burst: cgRef[uint64](10000)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "cpu", file: "cpu.cfs_burst_us", want: "10000"},
			}, []cgroupCheck{
				{key: "", file: "cpu.max.burst", want: "10000"},
			}),
		},
		{
			name: "cpu idle",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Idle: cgRef[int64](1)}
			},
			checks: []cgroupCheck{{key: h.limitsKey("cpu"), file: "cpu.idle", want: "1"}},
		},
		{
			name: "cpu quota unlimited",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Quota: cgRef[int64](-1)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "cpu", file: "cpu.cfs_quota_us", want: "-1"},
			}, []cgroupCheck{
				{key: "", file: "cpu.max", want: "max 100000"},
			}),
		},
		{
			name: "cpu realtime",
			path: topLevel,
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{RealtimePeriod: cgRef[uint64](500000), RealtimeRuntime: cgRef[int64](1000)}
			},
			checks: v1v2([]cgroupCheck{
				{key: "cpu", file: "cpu.rt_period_us", want: "500000"},
				{key: "cpu", file: "cpu.rt_runtime_us", want: "1000"},
			}, nil),
			wantErr: errIf(h.v2, "realtime"),
		},
		{
			name: "cpuset cpus mems",
			set: func(r *specs.LinuxResources) {
				r.CPU = &specs.LinuxCPU{Cpus: "0", Mems: "0"}
			},
			checks: []cgroupCheck{
				{key: h.limitsKey("cpuset"), file: "cpuset.cpus", want: "0"},
				{key: h.limitsKey("cpuset"), file: "cpuset.mems", want: "0"},
			},
			sees: []cgroupSees{
				{"grep Cpus_allowed_list: /proc/self/status | cut -f2", "0"},
				{"grep Mems_allowed_list: /proc/self/status | cut -f2", "0"},
			},
		},
		{
			name: "pids",
			set: func(r *specs.LinuxResources) {
				r.Pids = &specs.LinuxPids{Limit: cgRef[int64](42)}
			},
			checks: []cgroupCheck{{key: h.limitsKey("pids"), file: "pids.max", want: "42"}},
		},
		{
			name: "pids unlimited",
			set: func(r *specs.LinuxResources) {
				r.Pids = &specs.LinuxPids{Limit: cgRef[int64](-1)}
			},
			checks: []cgroupCheck{{key: h.limitsKey("pids"), file: "pids.max", want: "max"}},
		},
		{
			name: "blkio throttles",
			set: func(r *specs.LinuxResources) {
				r.BlockIO = &specs.LinuxBlockIO{
					ThrottleReadBpsDevice:   throttle(1 << 20),
					ThrottleWriteBpsDevice:  throttle(2 << 20),
					ThrottleReadIOPSDevice:  throttle(100),
					ThrottleWriteIOPSDevice: throttle(200),
				}
			},
			checks: v1v2([]cgroupCheck{
				{key: "blkio", file: "blkio.throttle.read_bps_device", want: h.disk + " 1048576"},
				{key: "blkio", file: "blkio.throttle.write_bps_device", want: h.disk + " 2097152"},
				{key: "blkio", file: "blkio.throttle.read_iops_device", want: h.disk + " 100"},
				{key: "blkio", file: "blkio.throttle.write_iops_device", want: h.disk + " 200"},
			}, []cgroupCheck{
				{key: "", file: "io.max", want: h.disk + " rbps=1048576 wbps=2097152 riops=100 wiops=200"},
			}),
		},
	}
	cases = append(cases, blkioWeightCases(h, major, minor)...)
	cases = append(cases, []cgroupCase{
		{
			name: "hugetlb",
			set: func(r *specs.LinuxResources) {
				r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: uint64(8 * mib)}}
			},
			checks: hugetlbCheck(h, strconv.FormatInt(8*mib, 10)),
			wantErr: errIf(!h.has("hugetlb") && !slices.Contains(h.v2Controllers, "hugetlb"),
				"hugetlb"),
		},
		{
			name: "rdma",
			set: func(r *specs.LinuxResources) {
				r.Rdma = map[string]specs.LinuxRdma{"mlx5_1": {HcaHandles: cgRef[uint32](3), HcaObjects: cgRef[uint32](10000)}}
			},
			// No test host is expected to have the device; the controller
			// alone does not make the write succeed.
			wantErr: []string{"rdma"},
		},
		{
			name: "network classID",
			set: func(r *specs.LinuxResources) {
				r.Network = &specs.LinuxNetwork{ClassID: cgRef[uint32](0x100001)}
			},
			checks:  []cgroupCheck{{key: "net_cls", file: "net_cls.classid", want: strconv.Itoa(0x100001)}},
			wantErr: errIf(!h.has("net_cls"), "net_cls"),
		},
		{
			name: "network priorities",
			set: func(r *specs.LinuxResources) {
				r.Network = &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 5}}}
			},
			checks:  []cgroupCheck{{key: "net_prio", file: "net_prio.ifpriomap", want: "lo 5"}},
			wantErr: errIf(!h.has("net_prio"), "net_prio"),
		},
	}...)
	cases = append(cases, unifiedCases(h)...)
	return cases
}

// kernelTCPCheck expects the TCP buffer limit where the kernel has the file.
func kernelTCPCheck(h *cgroupHost, limit int64) []cgroupCheck {
	if !cgFileExists(filepath.Join(h.mounts["memory"], "memory.kmem.tcp.limit_in_bytes")) {
		return nil
	}
	return []cgroupCheck{{key: "memory", file: "memory.kmem.tcp.limit_in_bytes", want: strconv.FormatInt(limit, 10)}}
}

// hugetlbCheck expects the 2MB page limit in the hierarchy that has the
// controller: v1's own, or v2's (a hybrid host may have hugetlb only there).
func hugetlbCheck(h *cgroupHost, limit string) []cgroupCheck {
	switch {
	case !h.v2 && h.has("hugetlb"):
		return []cgroupCheck{
			{key: "hugetlb", file: "hugetlb.2MB.limit_in_bytes", want: limit},
			{key: "hugetlb", file: "hugetlb.2MB.rsvd.limit_in_bytes", want: limit, optional: true},
		}
	case slices.Contains(h.v2Controllers, "hugetlb"):
		// The spec asks for the reservation limit where the kernel has it.
		return []cgroupCheck{
			{key: "", file: "hugetlb.2MB.max", want: limit},
			{key: "", file: "hugetlb.2MB.rsvd.max", want: limit, optional: true},
		}
	}
	return nil
}

// blkioWeightCases: the weight goes to whichever weight file the kernel has
// (CFQ's blkio.weight is gone from recent kernels, BFQ's remains); a
// per-device weight works only on a device whose scheduler supports it,
// and leaf weights existed only in CFQ.
func blkioWeightCases(h *cgroupHost, major, minor int64) []cgroupCase {
	weight := func(r *specs.LinuxResources) {
		r.BlockIO = &specs.LinuxBlockIO{Weight: cgRef[uint16](300)}
	}
	weightDevice := func(r *specs.LinuxResources) {
		r.BlockIO = &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{
			LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Weight: cgRef[uint16](300)}}}
	}
	leaf := func(r *specs.LinuxResources) {
		r.BlockIO = &specs.LinuxBlockIO{Weight: cgRef[uint16](300), LeafWeight: cgRef[uint16](200)}
	}
	if h.v2 {
		// io.weight exists only with the iocost controller, io.bfq.weight
		// only with BFQ: whether they work depends on the kernel and disk.
		return nil
	}
	if h.blkioWeight == "" {
		return []cgroupCase{{name: "blkio weight", set: weight, wantErr: []string{"blkio.weight"}}}
	}
	cases := []cgroupCase{
		{name: "blkio weight", set: weight, checks: []cgroupCheck{{key: "blkio", file: h.blkioWeight, want: "300"}}},
		{name: "blkio leaf weight", set: leaf, checks: []cgroupCheck{
			{key: "blkio", file: h.blkioWeight, want: "300"},
			{key: "blkio", file: "blkio.leaf_weight", want: "200", optional: true},
		}},
	}
	if h.blkioWeight == "blkio.bfq.weight" && !blkioDiskOnBFQ(h.disk) {
		cases = append(cases, cgroupCase{name: "blkio weight device", set: weightDevice,
			wantErr: []string{"blkio.bfq.weight_device", h.disk, "I/O scheduler is bfq"}})
	} else {
		cases = append(cases, cgroupCase{name: "blkio weight device", set: weightDevice,
			checks: []cgroupCheck{{key: "blkio", file: h.blkioWeight + "_device", want: h.disk + " 300"}}})
	}
	return cases
}

// blkioDiskOnBFQ reports whether the disk major:minor uses the BFQ I/O
// scheduler, which per-device BFQ weights need.
func blkioDiskOnBFQ(disk string) bool {
	devs, _ := filepath.Glob("/sys/block/*/dev")
	for _, p := range devs {
		if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) == disk {
			s, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "queue", "scheduler"))
			return strings.Contains(string(s), "[bfq]")
		}
	}
	return false
}

// unifiedCases: linux.resources.unified writes cgroup v2 files. A hybrid
// host has a v2 hierarchy too, and crier writes them there, enabling the
// controllers they need; a key of a controller that is bound to v1 cannot
// be set there and is an error naming it. A host with no v2 hierarchy at
// all refuses unified.
func unifiedCases(h *cgroupHost) []cgroupCase {
	descendants := func(r *specs.LinuxResources) {
		r.Unified = map[string]string{"cgroup.max.descendants": "5"}
	}
	if !h.has("") {
		return []cgroupCase{{name: "unified", set: descendants, wantErr: []string{"unified", "cgroup v2"}}}
	}
	cases := []cgroupCase{
		{name: "unified core file", set: descendants, checks: []cgroupCheck{{key: "", file: "cgroup.max.descendants", want: "5"}}},
	}
	if h.v2 {
		return append(cases, cgroupCase{
			name: "unified overrides converted value",
			set: func(r *specs.LinuxResources) {
				r.Pids = &specs.LinuxPids{Limit: cgRef[int64](42)}
				r.Unified = map[string]string{"pids.max": "17"}
			},
			checks: []cgroupCheck{{key: "", file: "pids.max", want: "17"}},
		})
	}
	if slices.Contains(h.v2Controllers, "hugetlb") {
		cases = append(cases, cgroupCase{
			name:   "unified hugetlb on hybrid",
			set:    func(r *specs.LinuxResources) { r.Unified = map[string]string{"hugetlb.2MB.max": "4194304"} },
			checks: []cgroupCheck{{key: "", file: "hugetlb.2MB.max", want: "4194304"}},
		})
	}
	cases = append(cases, cgroupCase{
		name:    "unified key outside the cgroup",
		set:     func(r *specs.LinuxResources) { r.Unified = map[string]string{"../cgroup.max.depth": "1"} },
		wantErr: []string{`invalid cgroup file name "../cgroup.max.depth"`},
	})
	return append(cases, cgroupCase{
		name: "unified v1 controller on hybrid",
		set:  func(r *specs.LinuxResources) { r.Unified = map[string]string{"memory.max": "67108864"} },
		// "invalid configuration": runc's words (cgroups.bats "runc run
		// (cgroup v1 + unified resources should fail)").
		wantErr: []string{"invalid configuration", `"memory.max"`, "memory controller", "cgroup v1"},
	})
}

// TestCgroupResources runs a container for every resource in the table.
func TestCgroupResources(t *testing.T) {
	t.Parallel()
	h := cgroupHostInfo(t)
	t.Logf("host: v2=%v mounts=%v v2 controllers=%v disk=%s blkio weight file=%q", h.v2, h.mounts, h.v2Controllers, h.disk, h.blkioWeight)
	for _, tc := range cgroupCases(h) {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			runCgroupCase(t, h, tc)
		})
	}
}

// runCgroupCase creates the container of tc, checks its cgroup files on
// the host and in the container, and that its cgroups are gone after
// delete; or, with tc.wantErr, that create fails as it should and leaves
// no cgroup.
func runCgroupCase(t *testing.T, h *cgroupHost, tc cgroupCase) {
	e := newEnv(t)
	id := e.id()
	cgroupsPath := ""
	if tc.path != nil {
		cgroupsPath = tc.path(id)
	}
	script := ""
	for i, c := range tc.checks {
		script += fmt.Sprintf("echo c%d=\"$(tr '\\n' ';' < %s)\"\n", i, filepath.Join(h.insideDir(c.key), c.file))
	}
	for i, c := range tc.sees {
		script += fmt.Sprintf("echo s%d=\"$(%s)\"\n", i, c.cmd)
	}
	script += "echo ready\nexec sleep 1000"
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = cgroupsPath
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		tc.set(s.Linux.Resources)
	})
	if tc.wantErr != nil {
		out := e.createFails(id, b)
		t.Logf("create: %s", strings.TrimSpace(out))
		wantOneLine(t, "create", out, tc.wantErr...)
		e.assertGone(id)
		if cgroupsPath != "" {
			wantCgroupDirsGone(t, h, cgroupsPath)
		}
		return
	}
	r := e.createPiped(id, b)
	sub := e.subscribe(id, true)
	pid := next(t, sub, protocol.EventCreated).Pid
	st := e.shimState(id)
	if st.Cgroup == nil {
		t.Fatal("the shim's state has no cgroup")
	}
	paths := st.Cgroup.Paths
	skip := map[int]bool{}
	for i, c := range tc.checks {
		dir, ok := paths[c.key]
		if !ok {
			t.Errorf("%s: the container has no %q cgroup (paths %v)", c.file, c.key, paths)
			continue
		}
		if c.optional && !cgFileExists(filepath.Join(dir, c.file)) {
			t.Logf("this kernel has no %s", c.file)
			skip[i] = true
			continue
		}
		if got := cgroupFileLines(t, filepath.Join(dir, c.file)); !slices.Contains(got, c.want) {
			t.Errorf("host %s = %q, want a line %q", filepath.Join(dir, c.file), got, c.want)
		}
		if procs := cgroupFileLines(t, filepath.Join(dir, "cgroup.procs")); !slices.Contains(procs, strconv.Itoa(pid)) {
			t.Errorf("%s/cgroup.procs = %v, want pid %d in it", dir, procs, pid)
		}
	}
	e.cliOK("start", id)
	kv := keyValues(r.until(t, "ready"))
	for i, c := range tc.checks {
		if skip[i] {
			continue
		}
		got := strings.Split(strings.TrimSuffix(kv[fmt.Sprintf("c%d", i)], ";"), ";")
		if !slices.Contains(got, c.want) {
			t.Errorf("container %s = %q, want a line %q", filepath.Join(h.insideDir(c.key), c.file), got, c.want)
		}
	}
	for i, c := range tc.sees {
		if got := kv[fmt.Sprintf("s%d", i)]; got != c.want {
			t.Errorf("container: %s printed %q, want %q", c.cmd, got, c.want)
		}
	}
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	for key, dir := range paths {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q cgroup %s after delete: %v", key, dir, err)
		}
	}
	if cgroupsPath != "" {
		wantCgroupDirsGone(t, h, cgroupsPath)
	}
	wantNoCgroups(t, id)
}

// cgroupFileLines reads a cgroup file as its lines.
func cgroupFileLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// wantCgroupDirsGone checks that no hierarchy has cgroupsPath, nor the
// first directory of it, which the container brought into being.
func wantCgroupDirsGone(t *testing.T, h *cgroupHost, cgroupsPath string) {
	t.Helper()
	first := strings.SplitN(strings.TrimPrefix(cgroupsPath, "/"), "/", 2)[0]
	if path.IsAbs(cgroupsPath) {
		first = "/" + first
	}
	for key := range h.mounts {
		for _, p := range []string{cgroupsPath, first} {
			if dir := h.dir(key, p); cgFileExists(dir) {
				t.Errorf("%s left after delete", dir)
			}
		}
	}
}

// TestCgroupPaths: a default, an absolute and a relative cgroupsPath end up
// where the spec says in every mounted hierarchy, with the limits in them,
// and are removed on delete with the parents the container made. A
// controller the host lacks (net_cls here, usually) is no error when the
// config does not ask for it.
func TestCgroupPaths(t *testing.T) {
	t.Parallel()
	h := cgroupHostInfo(t)
	tests := []struct {
		name string
		path func(id string) string
		want func(id string) string // the cgroup path, "" for the default
		// parent is made before the container (in every hierarchy) and
		// must outlive it: delete removes only what the container made.
		parent func(id string) string
	}{
		{"default", func(string) string { return "" }, func(id string) string { return "/" + id }, nil},
		{"absolute", func(id string) string { return "/" + id + "-abs/ctr" }, nil, nil},
		{"relative", func(id string) string { return id + "-rel/ctr" }, nil, nil},
		{"absolute in an existing parent", func(id string) string { return "/" + id + "-pre/ctr" }, nil,
			func(id string) string { return "/" + id + "-pre" }},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			cgroupsPath := tt.path(id)
			want := cgroupsPath
			if tt.want != nil {
				want = tt.want(id)
			}
			if tt.parent != nil {
				for key := range h.mounts {
					dir := h.dir(key, tt.parent(id))
					if err := os.Mkdir(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						e.cleanup() // a failed test's container is still in it
						if err := os.Remove(dir); err != nil {
							t.Errorf("the parent made before the container: %v", err)
						}
					})
				}
			}
			b := e.bundle([]string{"sh", "-c", `echo pids="$(cat ` + filepath.Join(h.insideDir(h.limitsKey("pids")), "pids.max") +
				`)"; echo ready; exec sleep 1000`},
				func(s *specs.Spec) {
					s.Linux.CgroupsPath = cgroupsPath
					s.Linux.Resources.Pids = &specs.LinuxPids{Limit: cgRef[int64](33)}
				})
			r := e.createPiped(id, b)
			sub := e.subscribe(id, true)
			pid := next(t, sub, protocol.EventCreated).Pid
			paths := e.shimState(id).Cgroup.Paths
			for key := range h.mounts {
				wantDir := h.dir(key, want)
				if paths[key] != wantDir {
					t.Errorf("%q cgroup = %q, want %q", key, paths[key], wantDir)
				}
				if procs := cgroupFileLines(t, filepath.Join(wantDir, "cgroup.procs")); !slices.Contains(procs, strconv.Itoa(pid)) {
					t.Errorf("%s/cgroup.procs = %v, want pid %d", wantDir, procs, pid)
				}
			}
			for key := range paths {
				if !h.has(key) {
					t.Errorf("the container has a %q cgroup, which this host does not mount", key)
				}
			}
			if got := readFile(t, filepath.Join(paths[h.limitsKey("pids")], "pids.max")); got != "33" {
				t.Errorf("pids.max = %q, want 33", got)
			}
			e.cliOK("start", id)
			wantKV(t, keyValues(r.until(t, "ready")), "pids", "33")
			e.cliOK("kill", id, "KILL")
			next(t, sub, protocol.EventStopped)
			e.cliOK("delete", id)
			if cgroupsPath != "" && tt.parent == nil {
				wantCgroupDirsGone(t, h, cgroupsPath)
			}
			for key := range h.mounts {
				if dir := h.dir(key, want); cgFileExists(dir) {
					t.Errorf("%s left after delete", dir)
				}
				if tt.parent != nil && !cgFileExists(h.dir(key, tt.parent(id))) {
					t.Errorf("delete removed %s, which the container did not make", h.dir(key, tt.parent(id)))
				}
			}
		})
	}
}
