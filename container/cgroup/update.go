package cgroup

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FieldError is a value of an update that the kernel would refuse, or
// that would leave the cgroup half changed. Field is the resource's JSON
// path (cpu.period, devices[2].access), so that the CLI can name the flag
// it came from instead.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Limits of the kernel's CFS bandwidth control (kernel/sched/core.c): a
// period between 1ms and 1s, a quota of at least 1ms.
const (
	minCFSPeriod = 1000
	maxCFSPeriod = 1000000
	minCFSQuota  = 1000
)

// ValidateUpdate checks every value of an update before anything is
// written, so that a bad one changes nothing: a write the kernel refuses
// halfway through would leave the earlier ones applied. Zero is "not set"
// where runc reads it so (withZeroAsUnset) and is not checked.
func ValidateUpdate(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for i, d := range r.Devices {
		if err := validateDeviceRule(d); err != nil {
			return &FieldError{fmt.Sprintf("devices[%d].%s", i, err.Field), err.Msg}
		}
	}
	checks := []func(*specs.LinuxResources) *FieldError{validateCPU, validateMemory, validateBlkio}
	for _, check := range checks {
		if err := check(r); err != nil {
			return err
		}
	}
	return nil
}

// validateDeviceRule checks a device cgroup rule as runc does: a type of
// a (all), b or c, and an access of r, w and m, each at most once.
func validateDeviceRule(d specs.LinuxDeviceCgroup) *FieldError {
	switch d.Type {
	case "", "a", "b", "c":
	default:
		return &FieldError{"type", fmt.Sprintf("%q is not a (all), b (block) or c (char)", d.Type)}
	}
	if err := ValidateDeviceAccess(d.Access); err != nil {
		return &FieldError{"access", err.Error()}
	}
	return nil
}

// ValidateDeviceAccess checks a device access string: r, w and m, each
// at most once, in any order; empty means all three.
func ValidateDeviceAccess(access string) error {
	seen := map[rune]bool{}
	for _, c := range access {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return fmt.Errorf("%q is not a device access: only r, w and m, each at most once", access)
		}
		seen[c] = true
	}
	return nil
}

func validateCPU(r *specs.LinuxResources) *FieldError {
	c := r.CPU
	if c == nil {
		return nil
	}
	if p := c.Period; p != nil && *p != 0 && (*p < minCFSPeriod || *p > maxCFSPeriod) {
		return &FieldError{"cpu.period", fmt.Sprintf("%d is out of range: %d to %d microseconds", *p, minCFSPeriod, maxCFSPeriod)}
	}
	if q := c.Quota; q != nil && *q != 0 && *q != -1 && *q < minCFSQuota {
		return &FieldError{"cpu.quota", fmt.Sprintf("%d is out of range: -1 (no limit) or at least %d microseconds", *q, minCFSQuota)}
	}
	if q := c.RealtimeRuntime; q != nil && *q < -1 {
		return &FieldError{"cpu.realtimeRuntime", fmt.Sprintf("%d is out of range: -1 (no limit) or at least 0", *q)}
	}
	if i := c.Idle; i != nil && *i != 0 && *i != 1 {
		return &FieldError{"cpu.idle", fmt.Sprintf("%d is not 0 or 1", *i)}
	}
	for _, l := range []struct{ field, value string }{{"cpu.cpus", c.Cpus}, {"cpu.mems", c.Mems}} {
		if l.value == "" {
			continue
		}
		if _, err := parseList(l.value); err != nil {
			return &FieldError{l.field, err.Error()}
		}
	}
	return nil
}

func validateMemory(r *specs.LinuxResources) *FieldError {
	m := r.Memory
	if m == nil {
		return nil
	}
	for _, v := range []struct {
		field string
		value *int64
	}{{"memory.limit", m.Limit}, {"memory.reservation", m.Reservation}, {"memory.swap", m.Swap}} {
		if v.value != nil && *v.value < -1 {
			return &FieldError{v.field, fmt.Sprintf("%d is out of range: -1 (no limit) or a number of bytes", *v.value)}
		}
	}
	if m.Limit != nil && m.Swap != nil && *m.Limit > 0 && *m.Swap > 0 && *m.Swap < *m.Limit {
		return &FieldError{"memory.swap", fmt.Sprintf("the memory+swap limit %d is below the memory limit %d", *m.Swap, *m.Limit)}
	}
	if m.Limit != nil && *m.Limit == -1 && m.Swap != nil && *m.Swap > 0 {
		return &FieldError{"memory.swap", fmt.Sprintf("a memory+swap limit (%d) needs a memory limit, not an unlimited one", *m.Swap)}
	}
	if s := m.Swappiness; s != nil && *s > 100 {
		return &FieldError{"memory.swappiness", fmt.Sprintf("%d is out of range: 0 to 100", *s)}
	}
	return nil
}

func validateBlkio(r *specs.LinuxResources) *FieldError {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	for _, w := range []struct {
		field string
		value *uint16
	}{{"blockIO.weight", b.Weight}, {"blockIO.leafWeight", b.LeafWeight}} {
		if w.value != nil && *w.value != 0 && (*w.value < 10 || *w.value > 1000) {
			return &FieldError{w.field, fmt.Sprintf("%d is out of range: 10 to 1000", *w.value)}
		}
	}
	return nil
}

// parseList parses a cpuset list such as "0-3,5" into its members.
func parseList(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b-a > 1<<16 {
			return nil, fmt.Errorf("%q is not a list such as 0-3,5", s)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// fileReader reads a file of the container's cgroup: in the hierarchy of
// v1 controller ctl, or in the unified one on a v2 host.
type fileReader func(ctl, file string) (string, error)

// withCurrent returns the update r completed with what the cgroup holds
// where one file takes two settings or the kernel ties two together, so
// that the fields the update leaves out keep their values, as runc's
// update does from the config it saved:
//
//   - v2 cpu.max holds quota and period: a new period alone keeps the quota;
//   - v2 memory.swap.max counts swap alone and is set from the memory+swap
//     limit minus the memory limit, so a new swap limit alone needs the
//     current memory limit;
//   - an unlimited memory limit without a swap setting lifts the swap
//     limit too (runc), or v1 would refuse a memsw below the limit.
//
// r has been through withZeroAsUnset; it is not modified.
func withCurrent(r *specs.LinuxResources, v2 bool, read fileReader) (*specs.LinuxResources, error) {
	out := *r
	if c := r.CPU; c != nil && v2 && c.Period != nil && c.Quota == nil {
		s, err := read("cpu", "cpu.max")
		if err != nil {
			return nil, err
		}
		quota := int64(-1)
		if f := strings.Fields(s); len(f) > 0 && f[0] != "max" {
			if quota, err = strconv.ParseInt(f[0], 10, 64); err != nil {
				return nil, fmt.Errorf("cgroup: parse cpu.max %q: %w", s, err)
			}
		}
		cpu := *c
		cpu.Quota = &quota
		out.CPU = &cpu
	}
	if m := r.Memory; m != nil {
		mem := *m
		if v2 && m.Swap != nil && *m.Swap > 0 && m.Limit == nil {
			s, err := read("memory", "memory.max")
			if err != nil {
				return nil, err
			}
			if s != "max" {
				limit, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("cgroup: parse memory.max %q: %w", s, err)
				}
				mem.Limit = &limit
			}
		}
		if m.Limit != nil && *m.Limit == -1 && m.Swap == nil {
			swapFile := "memory.memsw.limit_in_bytes"
			if v2 {
				swapFile = "memory.swap.max"
			}
			if _, err := read("memory", swapFile); err == nil {
				unlimited := int64(-1)
				mem.Swap = &unlimited
			}
		}
		out.Memory = &mem
	}
	return &out, nil
}
