package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// prepareV2 enables the available controllers in every ancestor of
// leaf, as runc does, so that the leaf has their files for limits and
// statistics, and then checks the leaf has every controller in need.
func prepareV2(leaf string, need []string) error {
	enableV2(leaf, nil)
	avail, err := readFile(leaf, "cgroup.controllers")
	if err != nil {
		return err
	}
	have := strings.Fields(avail)
	for _, n := range need {
		if !slices.Contains(have, n) {
			return fmt.Errorf("cgroup: the config sets %s limits but the %s controller is not available in %s", n, n, leaf)
		}
	}
	return nil
}

// enableV2 enables the controllers in only (all available ones when
// only is nil) in every ancestor of leaf where they are available.
func enableV2(leaf string, only []string) {
	var chain []string
	for d := filepath.Dir(leaf); d != "/" && fileExists(filepath.Join(d, "cgroup.controllers")); d = filepath.Dir(d) {
		chain = append(chain, d)
	}
	for _, dir := range slices.Backward(chain) {
		avail, _ := readFile(dir, "cgroup.controllers")
		enabled, _ := readFile(dir, "cgroup.subtree_control")
		on := strings.Fields(enabled)
		for ctl := range strings.FieldsSeq(avail) {
			if !slices.Contains(on, ctl) && (only == nil || slices.Contains(only, ctl)) {
				// Best effort: a cgroup with processes of its own refuses
				// (EBUSY); the caller reports what is still missing.
				_ = writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+ctl)
			}
		}
	}
}

// unifiedControllers lists the controllers that the unified keys
// belong to: the part of each file name before the first dot, except the
// core "cgroup." files, which every cgroup has.
func unifiedControllers(unified map[string]string) []string {
	var ctls []string
	for k := range unified {
		if ctl, _, ok := strings.Cut(k, "."); ok && ctl != "cgroup" && !slices.Contains(ctls, ctl) {
			ctls = append(ctls, ctl)
		}
	}
	slices.Sort(ctls)
	return ctls
}

// checkUnified fails, naming the key and its controller, when the v2
// directory dir lacks the file of a unified key: the controller is not
// enabled there, or (on a hybrid host, whose v1 hierarchies are v1paths)
// bound to cgroup v1. Without this the error would be a bare ENOENT.
func checkUnified(dir string, unified map[string]string, v1paths map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(unified)) {
		if k == "" || strings.Contains(k, "/") || fileExists(filepath.Join(dir, k)) {
			continue // bad names are writeAll's to refuse
		}
		ctl, _, _ := strings.Cut(k, ".")
		v1name := ctl
		if ctl == "io" {
			v1name = "blkio"
		}
		if _, ok := v1paths[v1name]; ok {
			// runc refuses unified keys on any v1 host with "invalid
			// configuration" (cgroups.bats reads it); crier takes those
			// of controllers the v2 hierarchy has, and says the same
			// words for the others.
			return fmt.Errorf("cgroup: invalid configuration: unified key %q is for the %s controller, which this hybrid host has in cgroup v1, not in the v2 hierarchy (%s)", k, ctl, dir)
		}
		return fmt.Errorf("cgroup: unified key %q: no such file in %s (is the %s controller available in cgroup v2?)", k, dir, ctl)
	}
	return nil
}

// setV2 applies r to the v2 directory dir.
func setV2(dir string, r *specs.LinuxResources) error {
	mem, err := v2MemoryWrites(r.Memory)
	if err != nil {
		return err
	}
	cpu, err := v2CPUWrites(r.CPU)
	if err != nil {
		return err
	}
	if err := checkUnified(dir, r.Unified, nil); err != nil {
		return err
	}
	ws := slices.Concat(mem, cpu,
		cpusetWrites(r.CPU),
		pidsWrites(r.Pids),
		v2IOWrites(r.BlockIO),
		hugetlbWrites(r.HugepageLimits, true),
		rdmaWrites(r.Rdma),
		// Last, so that explicit unified keys override converted values.
		unifiedWrites(r.Unified))
	if err := writeAll(dir, ws); err != nil {
		return err
	}
	// Device rules are an eBPF program on v2 (cgroup_devices_bpf_linux.go).
	// Only a pure v2 host gets here: a hybrid one applies them through the
	// v1 devices controller in setV1, and one mechanism is enough.
	return setV2Devices(dir, r.Devices)
}

// v2MemoryWrites converts m for v2. Kernel memory, swappiness, the
// OOM killer switch and use_hierarchy have no v2 equivalent and are
// ignored, as the spec allows.
func v2MemoryWrites(m *specs.LinuxMemory) ([]fileWrite, error) {
	if m == nil {
		return nil, nil
	}
	var ws []fileWrite
	if m.Limit != nil {
		ws = append(ws, fileWrite{"memory.max", v2Limit(*m.Limit), false})
	}
	if m.Reservation != nil {
		ws = append(ws, fileWrite{"memory.low", v2Limit(*m.Reservation), false})
	}
	swap, err := swapMax(m.Swap, m.Limit)
	if err != nil {
		return nil, err
	}
	if swap != "" {
		ws = append(ws, fileWrite{"memory.swap.max", swap, false})
	}
	return ws, nil
}

// v2Limit formats a byte limit, negative meaning none.
func v2Limit(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// swapMax converts the spec's memory+swap limit to memory.swap.max,
// which counts swap alone; "" means leave it alone. Like runc, an unlimited
// memory limit with no swap setting makes swap unlimited too.
func swapMax(swap, limit *int64) (string, error) {
	switch {
	case swap == nil:
		if limit != nil && *limit == -1 {
			return "max", nil
		}
		return "", nil
	case *swap == -1:
		return "max", nil
	case *swap == 0:
		return "", nil
	case limit == nil || *limit <= 0:
		return "", errors.New("cgroup: a swap limit needs a memory limit on cgroup v2")
	case *swap < *limit:
		return "", fmt.Errorf("cgroup: memory+swap limit %d is below the memory limit %d", *swap, *limit)
	}
	return strconv.FormatInt(*swap-*limit, 10), nil
}

// v2CPUWrites converts the cpu controller part of c for v2.
func v2CPUWrites(c *specs.LinuxCPU) ([]fileWrite, error) {
	if c == nil {
		return nil, nil
	}
	if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
		return nil, errors.New("cgroup: realtime CPU limits are not supported on cgroup v2")
	}
	var ws []fileWrite
	if c.Shares != nil && *c.Shares != 0 {
		ws = append(ws, fileWrite{"cpu.weight", strconv.FormatUint(cpuWeight(*c.Shares), 10), false})
	}
	if c.Quota != nil || c.Period != nil {
		ws = append(ws, fileWrite{"cpu.max", cpuMax(c.Quota, c.Period), false})
	}
	if c.Burst != nil {
		ws = append(ws, fileWrite{"cpu.max.burst", strconv.FormatUint(*c.Burst, 10), false})
	}
	if c.Idle != nil {
		ws = append(ws, fileWrite{"cpu.idle", strconv.FormatInt(*c.Idle, 10), false})
	}
	return ws, nil
}

// cpuWeight maps v1 shares [2, 262144] onto v2 weight [1, 10000].
func cpuWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// cpuMax formats cpu.max: "max" for no quota, and the period only
// when one is given (the kernel keeps the current one otherwise).
func cpuMax(quota *int64, period *uint64) string {
	s := "max"
	if quota != nil && *quota > 0 {
		s = strconv.FormatInt(*quota, 10)
	}
	if period != nil && *period != 0 {
		s += " " + strconv.FormatUint(*period, 10)
	}
	return s
}

// v2IOWrites converts b for v2: weights are rescaled to io.weight's
// range and throttles become io.max lines. Leaf weights have no v2
// equivalent.
func v2IOWrites(b *specs.LinuxBlockIO) []fileWrite {
	if b == nil {
		return nil
	}
	var ws []fileWrite
	if b.Weight != nil {
		ws = append(ws, fileWrite{"io.weight", strconv.FormatUint(ioWeight(*b.Weight), 10), false})
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			ws = append(ws, fileWrite{"io.weight", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, ioWeight(*d.Weight)), false})
		}
	}
	throttles := []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for _, d := range t.devs {
			ws = append(ws, fileWrite{"io.max", fmt.Sprintf("%d:%d %s=%d", d.Major, d.Minor, t.key, d.Rate), false})
		}
	}
	return ws
}

// ioWeight maps a v1 blkio weight [10, 1000] onto v2 io.weight
// [1, 10000], as runc does.
func ioWeight(w uint16) uint64 {
	v := uint64(min(max(w, 10), 1000))
	return 1 + (v-10)*9999/990
}
