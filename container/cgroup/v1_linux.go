package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// checkV1 fails, before anything is created, if a controller the
// config needs is not mounted. Hugepage limits may also go to the v2
// hierarchy of a hybrid host (prepareHybrid checks that one).
func checkV1(paths map[string]string, need []string) error {
	for _, n := range need {
		if _, ok := paths[n]; !ok && !hugetlbOnV2(paths, n) {
			return fmt.Errorf("cgroup: the config sets %s limits but this host has no %s controller mounted", n, n)
		}
	}
	return nil
}

// initCpuset fills empty cpuset.cpus and cpuset.mems in dir and its
// ancestors from their parents, top down: a v1 cpuset cgroup starts with
// both empty and refuses processes until they are set.
func initCpuset(dir string) error {
	parent := filepath.Dir(dir)
	if parent == dir || !fileExists(filepath.Join(parent, "cpuset.cpus")) {
		return nil // the hierarchy root
	}
	cpus, err := readFile(dir, "cpuset.cpus")
	if err != nil {
		return err
	}
	mems, err := readFile(dir, "cpuset.mems")
	if err != nil {
		return err
	}
	if cpus != "" && mems != "" {
		return nil
	}
	if err := initCpuset(parent); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		if f.value != "" {
			continue
		}
		pv, err := readFile(parent, f.name)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, f.name), pv); err != nil {
			return err
		}
	}
	return nil
}

// hugetlbOnV2 reports whether controller ctl is hugetlb and goes to
// the v2 hierarchy of a hybrid host because no v1 hierarchy has it. The
// spec allows converting v1 settings for a controller that is on v2, and
// hugetlb is the same controller with other file names; a kernel leaves it
// to v2 when no v1 hierarchy mounts it.
func hugetlbOnV2(paths map[string]string, ctl string) bool {
	_, v1 := paths["hugetlb"]
	_, v2 := paths[""]
	return ctl == "hugetlb" && !v1 && v2
}

// prepareHybrid readies the v2 hierarchy of a hybrid host for what
// the config puts in it, unified keys and hugepage limits without a v1
// hugetlb hierarchy: it enables their controllers in the ancestors, and
// only theirs, as enabling one changes the hierarchy for every cgroup in
// it. It fails, naming the controller, when one cannot be had.
func prepareHybrid(paths map[string]string, r *specs.LinuxResources) error {
	leaf, ok := paths[""]
	if !ok || r == nil {
		return nil
	}
	ctls := unifiedControllers(r.Unified)
	hugetlb := len(r.HugepageLimits) > 0 && hugetlbOnV2(paths, "hugetlb")
	if hugetlb && !slices.Contains(ctls, "hugetlb") {
		ctls = append(ctls, "hugetlb")
	}
	if len(ctls) == 0 {
		return nil
	}
	enableV2(leaf, ctls)
	if hugetlb {
		avail, err := readFile(leaf, "cgroup.controllers")
		if err != nil {
			return err
		}
		if !slices.Contains(strings.Fields(avail), "hugetlb") {
			return fmt.Errorf("cgroup: the config sets hugetlb limits but this host has no hugetlb controller in cgroup v1 nor in the v2 hierarchy (%s)", leaf)
		}
	}
	return checkUnified(leaf, r.Unified, paths)
}

// setV1 applies r to the v1 hierarchies in paths.
func setV1(paths map[string]string, r *specs.LinuxResources) error {
	if m := r.Memory; m != nil {
		if err := setV1Memory(paths["memory"], m); err != nil {
			return err
		}
	}
	bfq := blkioBFQ(paths)
	for _, g := range v1Groups(paths, r, bfq) {
		if len(g.writes) == 0 {
			continue
		}
		dir, ok := paths[g.key]
		if !ok {
			if g.key == "" {
				return errors.New("cgroup: the config sets unified resources but this host has no cgroup v2 hierarchy")
			}
			return checkV1(paths, []string{g.key})
		}
		if err := writeAll(dir, g.writes); err != nil {
			if g.key == "blkio" && errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("%w: a per-device weight needs a device whose I/O scheduler is %s", err, blkioScheduler(bfq))
			}
			return err
		}
	}
	return nil
}

// v1Group is the writes that go to one hierarchy: the one with the v1
// controller key, or the v2 one for "".
type v1Group struct {
	key    string
	writes []fileWrite
}

// v1Groups converts r, but for memory (setV1Memory), into the writes of
// each hierarchy, in the order they are made.
func v1Groups(paths map[string]string, r *specs.LinuxResources, bfq bool) []v1Group {
	hugetlb := v1Group{"hugetlb", hugetlbWrites(r.HugepageLimits, false)}
	if hugetlbOnV2(paths, "hugetlb") {
		hugetlb = v1Group{"", hugetlbWrites(r.HugepageLimits, true)}
	}
	return []v1Group{
		{"cpu", v1CPUWrites(r.CPU)},
		{"cpuset", cpusetWrites(r.CPU)},
		{"pids", pidsWrites(r.Pids)},
		{"blkio", v1BlkioWrites(r.BlockIO, bfq)},
		hugetlb,
		{"net_cls", netClsWrites(r.Network)},
		{"net_prio", netPrioWrites(r.Network)},
		{"rdma", rdmaWrites(r.Rdma)},
		{"devices", deviceWrites(r.Devices)},
		// Unified keys go to the v2 hierarchy of a hybrid host.
		{"", unifiedWrites(r.Unified)},
	}
}

// blkioBFQ reports whether the blkio hierarchy in paths has only the BFQ
// scheduler's weight files.
func blkioBFQ(paths map[string]string) bool {
	dir, ok := paths["blkio"]
	return ok && !fileExists(filepath.Join(dir, "blkio.weight")) &&
		fileExists(filepath.Join(dir, "blkio.bfq.weight"))
}

// blkioScheduler names the I/O scheduler whose weight files the v1
// blkio controller has.
func blkioScheduler(bfq bool) string {
	if bfq {
		return "bfq"
	}
	return "cfq"
}

// setV1Memory applies m in the v1 memory directory dir, ordering the
// limit and memory+swap writes so that memsw never drops below the limit.
func setV1Memory(dir string, m *specs.LinuxMemory) error {
	cur := int64(-1)
	if m.Swap != nil && *m.Swap > 0 {
		s, err := readFile(dir, "memory.limit_in_bytes")
		if err != nil {
			return err
		}
		if cur, err = strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, "memory.limit_in_bytes"), err)
		}
		if err := v1SwapCheck(*m.Swap, m.Limit, cur); err != nil {
			return err
		}
	}
	if m.UseHierarchy != nil && !*m.UseHierarchy {
		if err := v1FlatCheck(dir); err != nil {
			return err
		}
	}
	return writeAll(dir, v1MemoryWrites(m, cur))
}

// v1FlatCheck refuses, before the kernel does with a bare EINVAL,
// useHierarchy false for the memory cgroup dir whose parent is
// hierarchical: the kernel keeps a hierarchical parent's children
// hierarchical (and on recent kernels every memory cgroup is).
func v1FlatCheck(dir string) error {
	parent := filepath.Dir(dir)
	if !fileExists(filepath.Join(parent, "memory.use_hierarchy")) {
		return nil
	}
	v, err := readFile(parent, "memory.use_hierarchy")
	if err != nil {
		return err
	}
	if v == "1" {
		return fmt.Errorf("cgroup: memory useHierarchy false cannot be set: the parent %s is hierarchical (memory.use_hierarchy is 1)", parent)
	}
	return nil
}

// v1SwapCheck refuses, before the kernel does with a bare EINVAL, a
// memory+swap limit swap (> 0) below the memory limit the cgroup would
// have: limit, or curLimit when the config sets none. A negative limit
// means none.
func v1SwapCheck(swap int64, limit *int64, curLimit int64) error {
	switch {
	case limit == nil && swap < curLimit:
		return fmt.Errorf("cgroup: a memory+swap limit (%d) needs a memory limit at or below it (the cgroup's is %d)", swap, curLimit)
	case limit != nil && *limit < 0:
		return fmt.Errorf("cgroup: a memory+swap limit (%d) needs a memory limit, not an unlimited one", swap)
	case limit != nil && swap < *limit:
		return fmt.Errorf("cgroup: memory+swap limit %d is below the memory limit %d", swap, *limit)
	}
	return nil
}

// v1MemoryWrites converts m for a v1 memory cgroup whose current
// limit is curLimit. memory.memsw.limit_in_bytes must stay at or above
// memory.limit_in_bytes at every step, so when both change the swap limit
// goes first if it is not below the current limit.
func v1MemoryWrites(m *specs.LinuxMemory, curLimit int64) []fileWrite {
	if m == nil {
		return nil
	}
	var ws []fileWrite
	i64 := func(file string, v *int64, optional bool) {
		if v != nil {
			ws = append(ws, fileWrite{file, strconv.FormatInt(*v, 10), optional})
		}
	}
	i64("memory.soft_limit_in_bytes", m.Reservation, false)
	// A swap of 0 sets nothing, as on v2 and in runc: the kernel would
	// refuse memsw below the memory limit.
	swap := m.Swap
	if swap != nil && *swap == 0 {
		swap = nil
	}
	if m.Limit != nil && swap != nil && (*swap == -1 || *swap >= curLimit) {
		i64("memory.memsw.limit_in_bytes", swap, false)
		i64("memory.limit_in_bytes", m.Limit, false)
	} else {
		i64("memory.limit_in_bytes", m.Limit, false)
		i64("memory.memsw.limit_in_bytes", swap, false)
	}
	// Kernel memory limits are gone from recent kernels.
	i64("memory.kmem.limit_in_bytes", m.Kernel, true)
	i64("memory.kmem.tcp.limit_in_bytes", m.KernelTCP, true)
	if m.Swappiness != nil {
		ws = append(ws, fileWrite{"memory.swappiness", strconv.FormatUint(*m.Swappiness, 10), false})
	}
	if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		ws = append(ws, fileWrite{"memory.oom_control", "1", false})
	}
	if m.UseHierarchy != nil {
		ws = append(ws, fileWrite{"memory.use_hierarchy", flagValue(*m.UseHierarchy), true})
	}
	return ws
}

// v1CPUWrites converts the cpu controller part of c for v1. Periods
// go before the quotas they bound.
func v1CPUWrites(c *specs.LinuxCPU) []fileWrite {
	if c == nil {
		return nil
	}
	var ws []fileWrite
	if c.Shares != nil {
		ws = append(ws, fileWrite{"cpu.shares", strconv.FormatUint(*c.Shares, 10), false})
	}
	if c.Period != nil {
		ws = append(ws, fileWrite{"cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10), false})
	}
	if c.Quota != nil {
		ws = append(ws, fileWrite{"cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10), false})
	}
	if c.Burst != nil {
		ws = append(ws, fileWrite{"cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10), false})
	}
	if c.RealtimePeriod != nil {
		ws = append(ws, fileWrite{"cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10), false})
	}
	if c.RealtimeRuntime != nil {
		ws = append(ws, fileWrite{"cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10), false})
	}
	if c.Idle != nil {
		ws = append(ws, fileWrite{"cpu.idle", strconv.FormatInt(*c.Idle, 10), false})
	}
	return ws
}

// v1BlkioWrites converts b for v1. With bfq the kernel has only the
// BFQ scheduler's weight files; leaf weights existed only for CFQ.
func v1BlkioWrites(b *specs.LinuxBlockIO, bfq bool) []fileWrite {
	if b == nil {
		return nil
	}
	weight, weightDevice := "blkio.weight", "blkio.weight_device"
	if bfq {
		weight, weightDevice = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	var ws []fileWrite
	if b.Weight != nil {
		ws = append(ws, fileWrite{weight, strconv.Itoa(int(*b.Weight)), false})
	}
	if b.LeafWeight != nil {
		ws = append(ws, fileWrite{"blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)), true})
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			ws = append(ws, fileWrite{weightDevice, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight), false})
		}
		if d.LeafWeight != nil {
			ws = append(ws, fileWrite{"blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight), true})
		}
	}
	throttles := []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for _, d := range t.devs {
			ws = append(ws, fileWrite{t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate), false})
		}
	}
	return ws
}

// netClsWrites converts the class ID of n (v1 only).
func netClsWrites(n *specs.LinuxNetwork) []fileWrite {
	if n == nil || n.ClassID == nil {
		return nil
	}
	return []fileWrite{{"net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10), false}}
}

// netPrioWrites converts the interface priorities of n (v1 only);
// the kernel takes one interface per write.
func netPrioWrites(n *specs.LinuxNetwork) []fileWrite {
	if n == nil {
		return nil
	}
	var ws []fileWrite
	for _, p := range n.Priorities {
		ws = append(ws, fileWrite{"net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority), false})
	}
	return ws
}

// deviceWrites converts v1 device rules, in order, since later rules
// refine earlier ones.
func deviceWrites(devs []specs.LinuxDeviceCgroup) []fileWrite {
	var ws []fileWrite
	for _, d := range devs {
		if file, rule, ok := deviceRule(d); ok {
			ws = append(ws, fileWrite{file, rule, false})
		}
	}
	return ws
}

// deviceRule formats d as a v1 rule such as "c 1:3 rwm" and names the
// file it goes to. A missing type means all devices ("a") and a missing or
// negative major or minor means any ("*"). The access is read as runc
// reads it (deviceAccess); ok is false for a "b" or "c" rule left with
// none, which changes nothing (the kernel would refuse it). The kernel
// ignores the access of an "a" rule.
func deviceRule(d specs.LinuxDeviceCgroup) (file, rule string, ok bool) {
	file = "devices.deny"
	if d.Allow {
		file = "devices.allow"
	}
	typ, access := d.Type, deviceAccess(d.Access)
	if typ == "" || typ == "a" {
		typ, access = "a", "rwm"
	}
	if access == "" {
		return "", "", false
	}
	num := func(n *int64) string {
		if n == nil || *n < 0 {
			return "*"
		}
		return strconv.FormatInt(*n, 10)
	}
	return file, fmt.Sprintf("%s %s:%s %s", typ, num(d.Major), num(d.Minor), access), true
}
