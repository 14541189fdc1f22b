package container

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CPU affinity. A container's processes must not inherit the mask of
// whoever ran crier (`taskset -c 0 crier run` would pin the container to
// CPU 0 for good: since Linux 6.2 the kernel keeps the mask a process
// asked for and intersects every later cpuset change with it). As runc
// 1.5 does, the init and each exec'd process ask for every CPU just
// before they exec, which the kernel narrows to the container's cpuset.
//
// An exec'd process's process.execCPUAffinity (runtime-spec) overrides
// that: "initial" is the mask the exec stage runs with in the container
// (stage two, from its start; crier's stage one has joined the
// container's cgroups before stage two exists), and "final" the mask the
// process execs with. Without "final" the kernel's mask after the cgroup
// join stays (the initial one, narrowed to the cpuset).

// cpuSetBits is how many CPUs a unix.CPUSet holds (CONFIG_NR_CPUS is at
// most 8192, but sched_setaffinity takes a shorter mask: the CPUs beyond
// it are not asked for).
const cpuSetBits = len(unix.CPUSet{}) * int(unsafe.Sizeof(unix.CPUSet{}[0])) * 8

// ParseCPUList parses a CPU list ("0", "0-3", "1,3-5").
func ParseCPUList(s string) (*unix.CPUSet, error) {
	var set unix.CPUSet
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("CPU list %q is empty", s)
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("CPU list %q: range %s ends before it starts", s, part)
			}
		}
		for c := first; c <= last; c++ {
			set.Set(c)
		}
	}
	return &set, nil
}

func parseCPU(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	if n >= uint64(cpuSetBits) {
		return 0, fmt.Errorf("CPU %d above the highest supported, %d", n, cpuSetBits-1)
	}
	return int(n), nil
}

// CPUMaskString writes a CPU set as a hexadecimal mask ("0x3"), the form
// runc's debug log gives.
func CPUMaskString(set *unix.CPUSet) string {
	var b strings.Builder
	for i := len(set) - 1; i >= 0; i-- {
		switch {
		case b.Len() > 0:
			fmt.Fprintf(&b, "%0*x", int(unsafe.Sizeof(set[i]))*2, set[i])
		case set[i] != 0:
			fmt.Fprintf(&b, "0x%x", set[i])
		}
	}
	if b.Len() == 0 {
		return "0x0"
	}
	return b.String()
}

// validateExecCPUAffinity checks process.execCPUAffinity's lists.
func validateExecCPUAffinity(a *specs.CPUAffinity) error {
	if a == nil {
		return nil
	}
	if a.Initial != "" {
		if _, err := ParseCPUList(a.Initial); err != nil {
			return fmt.Errorf("execCPUAffinity.initial: %w", err)
		}
	}
	if a.Final != "" {
		if _, err := ParseCPUList(a.Final); err != nil {
			return fmt.Errorf("execCPUAffinity.final: %w", err)
		}
	}
	return nil
}

// setAffinity sets the calling thread's CPU mask to a CPU list.
func setAffinity(list, field string) error {
	set, err := ParseCPUList(list)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if err := unix.SchedSetaffinity(0, set); err != nil {
		return fmt.Errorf("%s: sched_setaffinity %s: %w", field, list, err)
	}
	return nil
}

// resetAffinity asks for every CPU for the calling thread: the kernel
// gives it the CPUs of its cpuset (all of them when the cgroup does not
// restrict them). One system call, on the thread that execs the process.
func resetAffinity() error {
	var all unix.CPUSet
	for i := range all {
		all[i] = ^all[i]
	}
	if err := unix.SchedSetaffinity(0, &all); err != nil {
		return fmt.Errorf("reset the CPU affinity: sched_setaffinity: %w", err)
	}
	return nil
}

// execInitialAffinity applies execCPUAffinity.initial, if any, at the
// start of the exec stage in the container.
func execInitialAffinity(p *specs.Process) error {
	if a := p.ExecCPUAffinity; a != nil && a.Initial != "" {
		return setAffinity(a.Initial, "process.execCPUAffinity.initial")
	}
	return nil
}

// execFinalAffinity gives an exec'd process its mask just before execve:
// execCPUAffinity.final, else the kernel's after an initial one, else
// every CPU of the cpuset.
func execFinalAffinity(p *specs.Process) error {
	a := p.ExecCPUAffinity
	switch {
	case a != nil && a.Final != "":
		return setAffinity(a.Final, "process.execCPUAffinity.final")
	case a != nil && a.Initial != "":
		return nil
	}
	return resetAffinity()
}
