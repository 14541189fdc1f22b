package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update applies r to the cgroups of an existing container (`crier
// update`), through Limit, so that a value means what it means at create.
// It differs from Limit in three ways:
//
//   - every value is checked first (ValidateUpdate, and the cpuset lists
//     against the parent's), so a refused update changes nothing;
//   - fields r leaves out keep their values where the kernel ties them
//     to the ones r sets (withCurrent);
//   - device rules are checked but not applied, as runc's update does not
//     apply them: on v1 they are a sequence of refinements of the rules the
//     container was created with, which the state does not keep, and on v2
//     a second eBPF program can only narrow the first.
//
// memory.checkBeforeUpdate refuses a memory limit below the current usage.
func (c *Cgroup) Update(r *specs.LinuxResources) error {
	if err := ValidateUpdate(r); err != nil {
		return err
	}
	r = withZeroAsUnset(r)
	if r == nil {
		return nil
	}
	u := *r
	u.Devices = nil
	v2 := unifiedMode(c.Paths)
	merged, err := withCurrent(&u, v2, c.reader(v2))
	if err != nil {
		return err
	}
	if err := c.checkCpuset(merged.CPU, v2); err != nil {
		return err
	}
	if err := c.checkBeforeUpdate(merged.Memory, v2); err != nil {
		return err
	}
	return c.Limit(merged)
}

// reader reads the container's cgroup files: on v2 all in the unified
// directory, on v1 in the hierarchy of the controller.
func (c *Cgroup) reader(v2 bool) fileReader {
	return func(ctl, file string) (string, error) {
		key := ctl
		if v2 {
			key = ""
		}
		dir, ok := c.Paths[key]
		if !ok {
			return "", fmt.Errorf("cgroup: this host has no %s controller mounted: %w", ctl, fs.ErrNotExist)
		}
		return readFile(dir, file)
	}
}

// checkCpuset refuses CPUs or memory nodes that the parent cgroup does not
// have, which the kernel would refuse with a bare EINVAL.
func (c *Cgroup) checkCpuset(cpu *specs.LinuxCPU, v2 bool) error {
	if cpu == nil || (cpu.Cpus == "" && cpu.Mems == "") {
		return nil
	}
	key, suffix := "cpuset", ""
	if v2 {
		key, suffix = "", ".effective"
	}
	dir, ok := c.Paths[key]
	if !ok {
		return errors.New("cgroup: the update sets cpuset limits but this host has no cpuset controller mounted")
	}
	parent := filepath.Dir(dir)
	for _, l := range []struct{ field, file, value string }{
		{"cpu.cpus", "cpuset.cpus", cpu.Cpus}, {"cpu.mems", "cpuset.mems", cpu.Mems},
	} {
		if l.value == "" {
			continue
		}
		have, err := readFile(parent, l.file+suffix)
		if err != nil {
			continue // the write will say what is wrong
		}
		if err := subsetOf(l.value, have); err != nil {
			return &FieldError{l.field, fmt.Sprintf("%s (the parent %s has %q)", err, parent, have)}
		}
	}
	return nil
}

// subsetOf fails when list want names a member that list have lacks.
func subsetOf(want, have string) error {
	w, err := parseList(want)
	if err != nil {
		return err
	}
	h := []int{}
	if have != "" {
		if h, err = parseList(have); err != nil {
			return err
		}
	}
	for _, n := range w {
		if !slices.Contains(h, n) {
			return fmt.Errorf("%q names %d, which is not available", want, n)
		}
	}
	return nil
}

// checkBeforeUpdate implements memory.checkBeforeUpdate: a new limit
// below what the container uses now is refused rather than reclaimed.
func (c *Cgroup) checkBeforeUpdate(m *specs.LinuxMemory, v2 bool) error {
	if m == nil || m.CheckBeforeUpdate == nil || !*m.CheckBeforeUpdate || m.Limit == nil || *m.Limit < 0 {
		return nil
	}
	file := "memory.usage_in_bytes"
	if v2 {
		file = "memory.current"
	}
	s, err := c.reader(v2)("memory", file)
	if err != nil {
		return err
	}
	usage, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("cgroup: parse %s %q: %w", file, s, err)
	}
	if *m.Limit < usage {
		return &FieldError{"memory.limit", fmt.Sprintf("%d is below the current usage %d (memory.checkBeforeUpdate)", *m.Limit, usage)}
	}
	return nil
}
