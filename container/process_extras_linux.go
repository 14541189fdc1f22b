package container

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// This file handles linux.personality, process.ioPriority and
// process.scheduler (and validates linux.memoryPolicy, which
// mempolicy_linux.go applies). All three are attributes of the calling thread, which
// execve keeps: applyProcessExtras sets them on init's locked thread, the
// one that execs the user's process, while it is still root and before
// capabilities are dropped (real-time classes need CAP_SYS_NICE or
// CAP_SYS_ADMIN).

// Execution domains of personality(2), from linux/personality.h.
const (
	perLinux   = 0x0000
	perLinux32 = 0x0008
)

// I/O priorities of ioprio_set(2), from linux/ioprio.h, which x/sys/unix
// does not define.
const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioClassRT    = 1
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
	ioprioNrLevels   = 8 // levels 0 (highest) to 7 (lowest)
)

// Limits of sched_setattr(2) that the kernel checks.
const (
	schedMinNice      = -20
	schedMaxNice      = 19
	schedMaxRTPrio    = 99      // MAX_RT_PRIO - 1
	schedDLMinRuntime = 1 << 10 // 1 << DL_SCALE nanoseconds
	schedDLMaxBit     = 1 << 63 // deadline and period must stay below it
)

// validateProcessExtras checks linux.personality, process.ioPriority and
// process.scheduler the way applyProcessExtras uses them. Each error is one
// line, starts with the field's path and names the bad value.
func validateProcessExtras(spec *specs.Spec) error {
	if spec.Linux != nil && spec.Linux.Personality != nil {
		if _, err := personalityValue(spec.Linux.Personality); err != nil {
			return fmt.Errorf("linux.personality: %w", err)
		}
	}
	if spec.Linux != nil && spec.Linux.MemoryPolicy != nil {
		if _, err := parseMemoryPolicy(spec.Linux.MemoryPolicy); err != nil {
			return fmt.Errorf("linux.memoryPolicy: %w", err)
		}
	}
	p := spec.Process
	if p == nil {
		return nil
	}
	if err := validateExecCPUAffinity(p.ExecCPUAffinity); err != nil {
		return fmt.Errorf("process.%w", err)
	}
	if p.IOPriority != nil {
		if _, err := ioprioValue(p.IOPriority); err != nil {
			return fmt.Errorf("process.ioPriority: %w", err)
		}
	}
	if p.Scheduler != nil {
		if _, err := schedAttr(p.Scheduler); err != nil {
			return fmt.Errorf("process.scheduler: %w", err)
		}
	}
	return nil
}

// applyProcessExtras sets the personality, I/O priority and scheduling
// attributes of the calling thread. It runs in the init stage on the
// locked thread that execs the user's process, as root and before
// capabilities are dropped, after the last fork (a SCHED_DEADLINE thread
// cannot fork).
func applyProcessExtras(spec *specs.Spec) error {
	if spec.Linux != nil && spec.Linux.Personality != nil {
		v, err := personalityValue(spec.Linux.Personality)
		if err != nil {
			return fmt.Errorf("linux.personality: %w", err)
		}
		// personality(2) returns the previous persona; it cannot fail
		// for a valid domain, but check anyway.
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, v, 0, 0); e != 0 {
			return fmt.Errorf("personality %s: %w", spec.Linux.Personality.Domain, e)
		}
	}
	p := spec.Process
	if p == nil {
		return nil
	}
	if p.IOPriority != nil {
		v, err := ioprioValue(p.IOPriority)
		if err != nil {
			return fmt.Errorf("process.ioPriority: %w", err)
		}
		// who 0 is the calling thread.
		if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, v); e != 0 {
			return fmt.Errorf("ioprio_set %s priority %d: %w", p.IOPriority.Class, p.IOPriority.Priority, e)
		}
	}
	if p.Scheduler != nil {
		attr, err := schedAttr(p.Scheduler)
		if err != nil {
			return fmt.Errorf("process.scheduler: %w", err)
		}
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			return fmt.Errorf("sched_setattr %s: %w%s", p.Scheduler.Policy, err, schedHint(attr.Policy, err))
		}
	}
	return nil
}

// schedHint explains the sched_setattr failures that the config alone
// does not: they depend on the host.
func schedHint(policy uint32, err error) string {
	rt := policy == unix.SCHED_FIFO || policy == unix.SCHED_RR
	switch {
	case rt && errors.Is(err, unix.EPERM):
		// With RT group scheduling (cgroup v1 cpu.rt_runtime_us) a
		// cgroup without real-time runtime refuses real-time tasks.
		return " (the container's cpu cgroup has no real-time runtime: see linux.resources.cpu.realtimeRuntime)"
	case policy == unix.SCHED_DEADLINE && errors.Is(err, unix.EINVAL):
		return " (period outside /proc/sys/kernel/sched_deadline_period_{min,max}_us?)"
	case policy == unix.SCHED_DEADLINE && errors.Is(err, unix.EBUSY):
		return " (not enough deadline bandwidth left on the CPUs)"
	}
	return ""
}

// personalityValue returns the persona for personality(2).
func personalityValue(p *specs.LinuxPersonality) (uintptr, error) {
	var v uintptr
	switch p.Domain {
	case specs.PerLinux:
		v = perLinux
	case specs.PerLinux32:
		v = perLinux32
	case "":
		return 0, errors.New("domain is missing")
	default:
		return 0, fmt.Errorf("unknown domain %q (LINUX or LINUX32)", p.Domain)
	}
	if len(p.Flags) > 0 {
		// The spec defines no flag yet; ignoring one would run the
		// container with a persona it did not ask for.
		return 0, fmt.Errorf("unknown flag %q (the runtime spec defines none)", p.Flags[0])
	}
	return v, nil
}

// ioprioValue returns the ioprio_set(2) value: class and level.
func ioprioValue(p *specs.LinuxIOPriority) (uintptr, error) {
	var class uintptr
	switch p.Class {
	case specs.IOPRIO_CLASS_RT:
		class = ioprioClassRT
	case specs.IOPRIO_CLASS_BE:
		class = ioprioClassBE
	case specs.IOPRIO_CLASS_IDLE:
		class = ioprioClassIdle
	case "":
		return 0, errors.New("class is missing")
	default:
		return 0, fmt.Errorf("unknown class %q (IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)", p.Class)
	}
	if p.Priority < 0 || p.Priority >= ioprioNrLevels {
		return 0, fmt.Errorf("priority %d outside [0, %d]", p.Priority, ioprioNrLevels-1)
	}
	return class<<ioprioClassShift | uintptr(p.Priority), nil
}

// schedPolicy returns the number of a spec scheduling policy.
func schedPolicy(p specs.LinuxSchedulerPolicy) (uint32, error) {
	switch p {
	case specs.SchedOther:
		return unix.SCHED_NORMAL, nil
	case specs.SchedFIFO:
		return unix.SCHED_FIFO, nil
	case specs.SchedRR:
		return unix.SCHED_RR, nil
	case specs.SchedBatch:
		return unix.SCHED_BATCH, nil
	case specs.SchedIdle:
		return unix.SCHED_IDLE, nil
	case specs.SchedDeadline:
		return unix.SCHED_DEADLINE, nil
	case specs.SchedISO:
		return 0, fmt.Errorf("policy %s is not supported by Linux", p)
	case "":
		return 0, errors.New("policy is missing")
	}
	return 0, fmt.Errorf("unknown policy %q", p)
}

// schedFlag returns the sched_attr flag of a spec scheduling flag.
func schedFlag(f specs.LinuxSchedulerFlag) (uint64, error) {
	switch f {
	case specs.SchedFlagResetOnFork:
		return unix.SCHED_FLAG_RESET_ON_FORK, nil
	case specs.SchedFlagReclaim:
		return unix.SCHED_FLAG_RECLAIM, nil
	case specs.SchedFlagDLOverrun:
		return unix.SCHED_FLAG_DL_OVERRUN, nil
	case specs.SchedFlagKeepPolicy:
		return unix.SCHED_FLAG_KEEP_POLICY, nil
	case specs.SchedFlagKeepParams:
		return unix.SCHED_FLAG_KEEP_PARAMS, nil
	case specs.SchedFlagUtilClampMin:
		return unix.SCHED_FLAG_UTIL_CLAMP_MIN, nil
	case specs.SchedFlagUtilClampMax:
		return unix.SCHED_FLAG_UTIL_CLAMP_MAX, nil
	}
	return 0, fmt.Errorf("unknown flag %q", f)
}

// schedAttr checks a process.scheduler as sched_setattr(2) would and
// builds its argument. The util clamp values, which the spec has no field
// for, stay 0.
func schedAttr(s *specs.Scheduler) (*unix.SchedAttr, error) {
	policy, err := schedPolicy(s.Policy)
	if err != nil {
		return nil, err
	}
	attr := &unix.SchedAttr{Policy: policy, Nice: s.Nice}
	for _, f := range s.Flags {
		v, err := schedFlag(f)
		if err != nil {
			return nil, err
		}
		attr.Flags |= v
	}
	if s.Nice < schedMinNice || s.Nice > schedMaxNice {
		return nil, fmt.Errorf("nice %d outside [%d, %d]", s.Nice, schedMinNice, schedMaxNice)
	}
	rt := policy == unix.SCHED_FIFO || policy == unix.SCHED_RR
	switch {
	case rt && (s.Priority < 1 || s.Priority > schedMaxRTPrio):
		return nil, fmt.Errorf("priority %d outside [1, %d] for %s", s.Priority, schedMaxRTPrio, s.Policy)
	case !rt && s.Priority != 0:
		return nil, fmt.Errorf("priority %d is only for %s and %s, not %s", s.Priority, specs.SchedFIFO, specs.SchedRR, s.Policy)
	}
	attr.Priority = uint32(s.Priority)
	if policy != unix.SCHED_DEADLINE {
		if s.Runtime != 0 || s.Deadline != 0 || s.Period != 0 {
			return nil, fmt.Errorf("runtime %d, deadline %d and period %d are only for %s, not %s",
				s.Runtime, s.Deadline, s.Period, specs.SchedDeadline, s.Policy)
		}
		return attr, nil
	}
	switch {
	case s.Deadline == 0:
		return nil, fmt.Errorf("deadline is missing (%s needs runtime <= deadline <= period)", s.Policy)
	case s.Deadline&schedDLMaxBit != 0 || s.Period&schedDLMaxBit != 0:
		return nil, fmt.Errorf("deadline %d or period %d is 2^63 or more", s.Deadline, s.Period)
	case s.Runtime < schedDLMinRuntime:
		return nil, fmt.Errorf("runtime %d below the kernel's minimum of %d ns", s.Runtime, schedDLMinRuntime)
	case s.Runtime > s.Deadline:
		return nil, fmt.Errorf("runtime %d above deadline %d", s.Runtime, s.Deadline)
	case s.Period != 0 && s.Period < s.Deadline:
		return nil, fmt.Errorf("period %d below deadline %d", s.Period, s.Deadline)
	}
	attr.Runtime, attr.Deadline, attr.Period = s.Runtime, s.Deadline, s.Period
	return attr, nil
}
