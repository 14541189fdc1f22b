package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Time namespaces (time_namespaces(7)) from a multi-threaded Go parent,
// without cgo. What this kernel does (checked on 6.18):
//
//   - unshare(CLONE_NEWTIME) is allowed in a multi-threaded process and
//     changes only the calling thread's time_for_children; the thread
//     itself stays in its time namespace.
//   - The new namespace's offsets are written through
//     /proc/<tid>/timens_offsets of that thread, which shows and sets its
//     time_for_children namespace. /proc/thread-self/timens_offsets and
//     /proc/self/task/<tid>/timens_offsets do not exist (the file is only
//     in the per-process directory), and /proc/self/timens_offsets is the
//     main thread's, whose namespace is frozen: EACCES.
//   - A child forked from that thread ends up in the new namespace: at
//     fork without CLONE_VM (os/exec with a new user namespace), at execve
//     with CLONE_VM|CLONE_VFORK (os/exec otherwise), with or without other
//     CLONE_NEW* flags.
//   - Once a process is in the namespace its offsets are frozen: a second
//     write fails with EACCES. So they are written before the fork.
//   - Joining an existing time namespace with setns(2) fails with EUSERS
//     in a multi-threaded process (timens_install wants a single-threaded
//     mm): "path" for a time namespace is joined by init's pre-runtime
//     entry point, before the Go runtime starts (nsenter_linux.go).

// Clock names of linux.timeOffsets, as timens_offsets spells them.
const (
	timeClockMonotonic = "monotonic"
	timeClockBoottime  = "boottime"
)

// timeNamespaceSupported reports whether the kernel has time namespaces
// (Linux 5.6 or later built with CONFIG_TIME_NS).
func timeNamespaceSupported() bool {
	_, err := os.Lstat("/proc/self/ns/time")
	return err == nil
}

// validateTimeOffsets checks linux.timeOffsets: known clock names and
// nanoseconds below a second. Whether the resulting clock stays positive
// is for the kernel to say (ERANGE) when they are written.
func validateTimeOffsets(offsets map[string]specs.LinuxTimeOffset) error {
	for name, off := range offsets {
		if name != timeClockMonotonic && name != timeClockBoottime {
			return fmt.Errorf("linux.timeOffsets: unknown clock %q (monotonic or boottime)", name)
		}
		if off.Nanosecs >= 1e9 {
			return fmt.Errorf("linux.timeOffsets: %s nanosecs %d is not below 1000000000", name, off.Nanosecs)
		}
	}
	return nil
}

// validateTimeNamespace checks the time entry of linux.namespaces and
// linux.timeOffsets together: offsets need a new time namespace (a joined
// one has its offsets already), and a new one needs a kernel with time
// namespaces.
func validateTimeNamespace(l *specs.Linux) error {
	var ns *specs.LinuxNamespace
	for i := range l.Namespaces {
		if l.Namespaces[i].Type == specs.TimeNamespace {
			ns = &l.Namespaces[i]
		}
	}
	switch {
	case ns == nil && len(l.TimeOffsets) > 0:
		return errors.New("linux.timeOffsets: set without a time namespace in linux.namespaces")
	case ns == nil:
		return nil
	case ns.Path != "" && len(l.TimeOffsets) > 0:
		return errors.New("linux.timeOffsets: set for a joined time namespace, whose offsets are already set")
	case ns.Path != "":
		return nil
	case !timeNamespaceSupported():
		return errors.New("linux.namespaces: this kernel has no time namespaces")
	}
	return validateTimeOffsets(l.TimeOffsets)
}

// timeOffsetsText formats offsets as timens_offsets lines, in a fixed
// order.
func timeOffsetsText(offsets map[string]specs.LinuxTimeOffset) string {
	names := make([]string, 0, len(offsets))
	for name := range offsets {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s %d %d\n", name, offsets[name].Secs, offsets[name].Nanosecs)
	}
	return b.String()
}

// writeTimeOffsets sets the clock offsets of the time namespace that pid's
// children will be in, through /proc/pid/timens_offsets. pid may be a
// thread id: that is how a thread that unshared CLONE_NEWTIME reaches its
// own new namespace. It must run before any process is in the namespace;
// the kernel refuses changes after that (EACCES).
func writeTimeOffsets(pid int, offsets map[string]specs.LinuxTimeOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	if err := validateTimeOffsets(offsets); err != nil {
		return err
	}
	path := fmt.Sprintf("/proc/%d/timens_offsets", pid)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("time offsets: %w", err)
	}
	// One write: the kernel applies all lines of a write or none.
	text := timeOffsetsText(offsets)
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		line := strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", ", ")
		if errors.Is(err, unix.ERANGE) {
			return fmt.Errorf("time offsets %s: a clock would be negative or too large: %w", line, err)
		}
		return fmt.Errorf("time offsets %s: %w", line, err)
	}
	return nil
}

// unshareTimeNamespace gives the calling thread's future children a new
// time namespace with offsets. The caller must be on a locked thread that
// it never unlocks: any child forked from the thread afterwards, by any
// goroutine the Go runtime would put there, lands in the namespace.
func unshareTimeNamespace(offsets map[string]specs.LinuxTimeOffset) error {
	if err := validateTimeOffsets(offsets); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return os.NewSyscallError("unshare CLONE_NEWTIME", err)
	}
	return writeTimeOffsets(unix.Gettid(), offsets)
}

// forkInNewTimeNamespace runs fork on a throwaway OS thread whose children
// go into a new time namespace with offsets, so that the child fork
// starts is in it. As with inNamespaces, the thread is never unlocked and
// the Go runtime discards it when fork returns. To combine with joined
// namespaces, call unshareTimeNamespace on inNamespaces' thread instead
// (after the setns calls): a second throwaway thread would not have
// joined them.
func forkInNewTimeNamespace(offsets map[string]specs.LinuxTimeOffset, fork func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unshareTimeNamespace(offsets); err != nil {
			errc <- err
			return
		}
		errc <- fork()
	}()
	return <-errc
}
