// Command exitstamp is the container process of crier's exit-notification
// benchmark. It sleeps for the duration given as its argument, then writes
// CLOCK_MONOTONIC in nanoseconds to its standard output and exits at once,
// so that the benchmark can tell how long after the exit each subscriber
// learnt of it. It is built statically (CGO_ENABLED=0) and copied into the
// busybox rootfs; CLOCK_MONOTONIC is the same inside the container (no time
// namespace) and on the host.
package main

import (
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) > 1 {
		if d, err := time.ParseDuration(os.Args[1]); err == nil {
			time.Sleep(d)
		}
	}
	var ts syscall.Timespec
	// CLOCK_MONOTONIC is 1.
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	b := strconv.AppendInt(nil, ts.Nano(), 10)
	b = append(b, '\n')
	syscall.Write(1, b)
	syscall.Exit(0)
}
