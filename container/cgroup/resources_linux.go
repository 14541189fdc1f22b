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
	"golang.org/x/sys/unix"
)

// requiredControllers lists the controllers the resources r need,
// using v2 names (io instead of blkio) when v2 is set. Device rules need no
// controller on v2 (they are eBPF there), and the v1-only memory knobs are
// ignored on v2.
func requiredControllers(r *specs.LinuxResources, v2 bool) []string {
	if r == nil {
		return nil
	}
	var need []string
	add := func(ok bool, name string) {
		if ok && !slices.Contains(need, name) {
			need = append(need, name)
		}
	}
	if m := r.Memory; m != nil {
		add(m.Limit != nil || m.Reservation != nil || m.Swap != nil, "memory")
		add(!v2 && (m.Kernel != nil || m.KernelTCP != nil || m.Swappiness != nil ||
			(m.DisableOOMKiller != nil && *m.DisableOOMKiller) || m.UseHierarchy != nil), "memory")
	}
	if c := r.CPU; c != nil {
		add(c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil || c.Idle != nil ||
			c.RealtimeRuntime != nil || c.RealtimePeriod != nil, "cpu")
		add(c.Cpus != "" || c.Mems != "", "cpuset")
	}
	add(r.Pids != nil && r.Pids.Limit != nil, "pids")
	if b := r.BlockIO; b != nil {
		blkio := "blkio"
		if v2 {
			blkio = "io"
		}
		add(b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
			len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
			len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0, blkio)
	}
	add(len(r.HugepageLimits) > 0, "hugetlb")
	if n := r.Network; n != nil {
		add(n.ClassID != nil, "net_cls")
		add(len(n.Priorities) > 0, "net_prio")
	}
	add(len(r.Rdma) > 0, "rdma")
	add(!v2 && len(r.Devices) > 0, "devices")
	return need
}

// fileWrite is one value to write into one file of a cgroup directory.
type fileWrite struct {
	file     string
	value    string
	optional bool // skip silently when the kernel lacks the file
}

// writeAll performs ws in order in dir. A write the kernel refuses with
// EINVAL is retried once after its partner's (retryAfter) when ws has
// that one later, as runc does: the two are bound together and the old
// value of the partner may be what the kernel refused the first against.
func writeAll(dir string, ws []fileWrite) error {
	var later []fileWrite
	for i, w := range ws {
		if w.file == "" || w.file == "." || w.file == ".." || strings.Contains(w.file, "/") {
			return fmt.Errorf("cgroup: invalid cgroup file name %q", w.file)
		}
		p := filepath.Join(dir, w.file)
		if w.optional && !fileExists(p) {
			continue
		}
		if err := writeFile(p, w.value); err != nil {
			partner := retryAfter(w.file)
			if partner == "" || !errors.Is(err, unix.EINVAL) ||
				!slices.ContainsFunc(ws[i+1:], func(o fileWrite) bool { return o.file == partner }) {
				return err
			}
			later = append(later, w)
			continue
		}
		for _, d := range later {
			if retryAfter(d.file) != w.file {
				continue
			}
			if err := writeFile(filepath.Join(dir, d.file), d.value); err != nil {
				return err
			}
		}
		later = slices.DeleteFunc(later, func(d fileWrite) bool { return retryAfter(d.file) == w.file })
	}
	return nil
}

// retryAfter names the file whose new value may be what a write of file
// needs first: a CFS period or burst shorter than the old quota allows
// within the parent's limit (update.bats "update cpu period in a pod
// cgroup with pod limit set"), a real-time period shorter than the old
// runtime.
func retryAfter(file string) string {
	switch file {
	case "cpu.cfs_period_us", "cpu.cfs_burst_us":
		return "cpu.cfs_quota_us"
	case "cpu.rt_period_us":
		return "cpu.rt_runtime_us"
	}
	return ""
}

// cpusetWrites converts the cpuset part of c; the files are the same
// on v1 and v2.
func cpusetWrites(c *specs.LinuxCPU) []fileWrite {
	if c == nil {
		return nil
	}
	var ws []fileWrite
	if c.Cpus != "" {
		ws = append(ws, fileWrite{"cpuset.cpus", c.Cpus, false})
	}
	if c.Mems != "" {
		ws = append(ws, fileWrite{"cpuset.mems", c.Mems, false})
	}
	return ws
}

// pidsWrites converts p; the file is the same on v1 and v2.
func pidsWrites(p *specs.LinuxPids) []fileWrite {
	if p == nil || p.Limit == nil {
		return nil
	}
	return []fileWrite{{"pids.max", pidsMax(*p.Limit), false}}
}

// pidsMax converts a pids limit: negative means no limit, and 0 means 1,
// as in runc 1.5 (systemd has no TasksMax=0, and runc maps 0 to 1 with
// either driver; the spec leaves 0 undefined).
func pidsMax(limit int64) string {
	if limit < 0 {
		return "max"
	}
	if limit == 0 {
		return "1"
	}
	return strconv.FormatInt(limit, 10)
}

// hugetlbWrites converts hugepage limits. The spec asks for
// reservation limits where the kernel has them, so those are set too.
func hugetlbWrites(limits []specs.LinuxHugepageLimit, v2 bool) []fileWrite {
	limit, rsvd := ".limit_in_bytes", ".rsvd.limit_in_bytes"
	if v2 {
		limit, rsvd = ".max", ".rsvd.max"
	}
	var ws []fileWrite
	for _, l := range limits {
		v := strconv.FormatUint(l.Limit, 10)
		ws = append(ws,
			fileWrite{"hugetlb." + l.Pagesize + limit, v, false},
			fileWrite{"hugetlb." + l.Pagesize + rsvd, v, true})
	}
	return ws
}

// rdmaWrites converts RDMA limits, one device per write; the file is
// the same on v1 and v2.
func rdmaWrites(rdma map[string]specs.LinuxRdma) []fileWrite {
	var ws []fileWrite
	for _, dev := range slices.Sorted(maps.Keys(rdma)) {
		l := rdma[dev]
		line := dev
		if l.HcaHandles != nil {
			line += fmt.Sprintf(" hca_handle=%d", *l.HcaHandles)
		}
		if l.HcaObjects != nil {
			line += fmt.Sprintf(" hca_object=%d", *l.HcaObjects)
		}
		if line != dev {
			ws = append(ws, fileWrite{"rdma.max", line, false})
		}
	}
	return ws
}

// unifiedWrites converts the unified map, in key order.
func unifiedWrites(unified map[string]string) []fileWrite {
	var ws []fileWrite
	for _, k := range slices.Sorted(maps.Keys(unified)) {
		ws = append(ws, fileWrite{k, unified[k], false})
	}
	return ws
}

// flagValue formats a flag for a cgroup file.
func flagValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
