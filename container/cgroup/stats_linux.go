package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of cpuacct.stat: the kernel exports clock ticks to
// user space at USER_HZ, which is 100 on every Linux architecture.
const userHZ = 100

// Stats reads the container's resource usage from its cgroup files, v1
// or v2. A file the kernel lacks (no swap accounting, an older kernel, a
// controller not mounted) leaves its counters at zero; a cgroup that is
// gone is an error that wraps fs.ErrNotExist.
func (c *Cgroup) Stats() (*Stats, error) {
	sr := &statReader{}
	var s Stats
	if unifiedMode(c.Paths) {
		dir := c.Paths[""]
		if !dirExists(dir) {
			return nil, fmt.Errorf("cgroup: %s: %w", dir, fs.ErrNotExist)
		}
		sr.v2CPU(dir, &s.CPU)
		sr.v2Memory(dir, &s.Memory)
		sr.pids(dir, &s.Pids)
		sr.v2IO(dir, &s.Blkio)
	} else {
		if !c.anyDir() {
			return nil, fmt.Errorf("cgroup: no directory of the container is left: %w", fs.ErrNotExist)
		}
		if dir, ok := c.Paths["cpuacct"]; ok {
			sr.v1CPUAcct(dir, &s.CPU.Usage)
		}
		if dir, ok := c.Paths["cpu"]; ok {
			sr.throttling(dir, "throttled_time", 1, &s.CPU.Throttling)
		}
		if dir, ok := c.Paths["memory"]; ok {
			sr.v1Memory(dir, &s.Memory)
		}
		if dir, ok := c.Paths["pids"]; ok {
			sr.pids(dir, &s.Pids)
		}
		if dir, ok := c.Paths["blkio"]; ok {
			sr.v1Blkio(dir, &s.Blkio)
		}
	}
	if sr.err != nil {
		return nil, sr.err
	}
	return &s, nil
}

// anyDir reports whether one of the container's directories exists.
func (c *Cgroup) anyDir() bool {
	for _, d := range c.Paths {
		if dirExists(d) {
			return true
		}
	}
	return false
}

// statReader reads cgroup files for Stats, keeping the first error; a
// missing file is no error.
type statReader struct{ err error }

// read returns the trimmed content of dir/file, or "" and false when it
// does not exist.
func (sr *statReader) read(dir, file string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
		return "", false // a counter this kernel does not keep
	}
	if err != nil {
		sr.fail(fmt.Errorf("cgroup: %w", err))
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func (sr *statReader) fail(err error) {
	if sr.err == nil {
		sr.err = err
	}
}

// uint reads a file holding one number; "max" is maxValue.
func (sr *statReader) uint(dir, file string, maxValue uint64) uint64 {
	s, ok := sr.read(dir, file)
	if !ok {
		return 0
	}
	return sr.parse(dir, file, s, maxValue)
}

func (sr *statReader) parse(dir, file, s string, maxValue uint64) uint64 {
	if s == "max" {
		return maxValue
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// v1 reports some unlimited values as -1.
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return maxValue
		}
		sr.fail(fmt.Errorf("cgroup: parse %s: %q is not a number", filepath.Join(dir, file), s))
	}
	return v
}

// keyed reads a file of "key value" lines (cpu.stat, memory.stat,
// memory.events).
func (sr *statReader) keyed(dir, file string) map[string]uint64 {
	s, ok := sr.read(dir, file)
	if !ok {
		return nil
	}
	m := map[string]uint64{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		m[k] = sr.parse(dir, file, strings.TrimSpace(v), math.MaxUint64)
	}
	return m
}

// list reads a file of numbers separated by blanks (cpuacct.usage_percpu).
func (sr *statReader) list(dir, file string) []uint64 {
	s, ok := sr.read(dir, file)
	if !ok {
		return nil
	}
	var out []uint64
	for f := range strings.FieldsSeq(s) {
		out = append(out, sr.parse(dir, file, f, math.MaxUint64))
	}
	return out
}

func (sr *statReader) pids(dir string, p *PidsStats) {
	p.Current = sr.uint(dir, "pids.current", 0)
	p.Limit = sr.uint(dir, "pids.max", 0)
}

// throttling reads cpu.stat's CFS counters; the throttled time is in
// throttledKey, in units of scale nanoseconds.
func (sr *statReader) throttling(dir, throttledKey string, scale uint64, t *Throttling) {
	st := sr.keyed(dir, "cpu.stat")
	t.Periods = st["nr_periods"]
	t.ThrottledPeriods = st["nr_throttled"]
	t.ThrottledTime = st[throttledKey] * scale
}

// v1CPUAcct reads the cpuacct controller's CPU times.
func (sr *statReader) v1CPUAcct(dir string, u *CPUUsage) {
	u.Total = sr.uint(dir, "cpuacct.usage", 0)
	u.Percpu = sr.list(dir, "cpuacct.usage_percpu")
	u.PercpuKernel = sr.list(dir, "cpuacct.usage_percpu_sys")
	u.PercpuUser = sr.list(dir, "cpuacct.usage_percpu_user")
	st := sr.keyed(dir, "cpuacct.stat")
	u.User = st["user"] * (1e9 / userHZ)
	u.Kernel = st["system"] * (1e9 / userHZ)
}

// v1Memory reads the v1 memory controller: memsw counts memory and swap
// together, as runc reports swap on both versions.
func (sr *statReader) v1Memory(dir string, m *MemoryStats) {
	entry := func(prefix string) MemoryEntry {
		return MemoryEntry{
			Limit:   sr.uint(dir, prefix+"limit_in_bytes", math.MaxUint64),
			Usage:   sr.uint(dir, prefix+"usage_in_bytes", 0),
			Max:     sr.uint(dir, prefix+"max_usage_in_bytes", 0),
			Failcnt: sr.uint(dir, prefix+"failcnt", 0),
		}
	}
	m.Usage = entry("memory.")
	m.Swap = entry("memory.memsw.")
	m.Kernel = entry("memory.kmem.")
	m.KernelTCP = entry("memory.kmem.tcp.")
	m.Raw = sr.keyed(dir, "memory.stat")
	m.Cache = m.Raw["cache"]
}

// v1Blkio reads the bytes and operations per device: the proportional
// (CFQ or BFQ) scheduler's counters where it keeps them, else the
// throttling layer's, which counts every I/O.
func (sr *statReader) v1Blkio(dir string, b *BlkioStats) {
	for _, f := range []struct {
		name string
		dst  *[]BlkioEntry
	}{
		{"io_service_bytes_recursive", &b.IoServiceBytesRecursive},
		{"io_serviced_recursive", &b.IoServicedRecursive},
	} {
		*f.dst = sr.blkioFile(dir, "blkio."+f.name)
		if len(*f.dst) == 0 {
			*f.dst = sr.blkioFile(dir, "blkio.throttle."+f.name)
		}
	}
}

// blkioFile parses "MAJ:MIN Op value" lines; the closing "Total value"
// line, which names no device, is skipped.
func (sr *statReader) blkioFile(dir, file string) []BlkioEntry {
	s, ok := sr.read(dir, file)
	if !ok {
		return nil
	}
	var out []BlkioEntry
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		major, minor, ok := parseDevice(f[0])
		if !ok {
			sr.fail(fmt.Errorf("cgroup: parse %s: bad line %q", filepath.Join(dir, file), line))
			return nil
		}
		out = append(out, BlkioEntry{Major: major, Minor: minor, Op: f[1], Value: sr.parse(dir, file, f[2], 0)})
	}
	return out
}

// parseDevice parses "MAJ:MIN".
func parseDevice(s string) (major, minor uint64, ok bool) {
	a, b, found := strings.Cut(s, ":")
	major, err1 := strconv.ParseUint(a, 10, 64)
	minor, err2 := strconv.ParseUint(b, 10, 64)
	return major, minor, found && err1 == nil && err2 == nil
}

// v2CPU reads cpu.stat, whose times are in microseconds. v2 keeps no
// per-CPU times.
func (sr *statReader) v2CPU(dir string, c *CPUStats) {
	st := sr.keyed(dir, "cpu.stat")
	c.Usage.Total = st["usage_usec"] * 1000
	c.Usage.User = st["user_usec"] * 1000
	c.Usage.Kernel = st["system_usec"] * 1000
	sr.throttling(dir, "throttled_usec", 1000, &c.Throttling)
}

// v2Memory reads the v2 memory controller. v2 counts swap apart from
// memory; like runc, swap is reported as memory plus swap, as on v1.
func (sr *statReader) v2Memory(dir string, m *MemoryStats) {
	events := sr.keyed(dir, "memory.events")
	m.Usage = MemoryEntry{
		Limit:   sr.uint(dir, "memory.max", math.MaxUint64),
		Usage:   sr.uint(dir, "memory.current", 0),
		Max:     sr.uint(dir, "memory.peak", 0),
		Failcnt: events["max"],
	}
	if _, ok := sr.read(dir, "memory.swap.current"); ok {
		swapLimit := sr.uint(dir, "memory.swap.max", math.MaxUint64)
		m.Swap = MemoryEntry{
			Limit: addSat(swapLimit, m.Usage.Limit),
			Usage: sr.uint(dir, "memory.swap.current", 0) + m.Usage.Usage,
			Max:   sr.uint(dir, "memory.swap.peak", 0),
		}
	}
	m.Raw = sr.keyed(dir, "memory.stat")
	m.Cache = m.Raw["file"]
}

// addSat adds without wrapping past the largest value ("max").
func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// v2IO reads io.stat: per device, "rbytes=N wbytes=N rios=N wios=N ...".
func (sr *statReader) v2IO(dir string, b *BlkioStats) {
	s, ok := sr.read(dir, "io.stat")
	if !ok {
		return
	}
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		major, minor, ok := parseDevice(f[0])
		if !ok {
			sr.fail(fmt.Errorf("cgroup: parse %s: bad line %q", filepath.Join(dir, "io.stat"), line))
			return
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			e := BlkioEntry{Major: major, Minor: minor, Value: sr.parse(dir, "io.stat", v, 0)}
			switch k {
			case "rbytes", "wbytes":
				e.Op = ioOp(k)
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, e)
			case "rios", "wios":
				e.Op = ioOp(k)
				b.IoServicedRecursive = append(b.IoServicedRecursive, e)
			}
		}
	}
}

// ioOp names the operation of an io.stat key as v1 does.
func ioOp(key string) string {
	if key[0] == 'r' {
		return "Read"
	}
	return "Write"
}
