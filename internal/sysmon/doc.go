// Package sysmon quiets the Go runtime's monitor thread in a short-lived
// crier process that does its work one system call after another on one
// P: create's fork until the container is created, and the init stage
// until it runs the first hook.
//
// With one P, the runtime's monitor thread (sysmon) takes the P back at
// every system call longer than its 20 µs tick, and because it keeps
// finding one to retake it stays at that tick. Through all of create, which
// is mostly system calls (mounts, cgroup writes, socket messages), it woke
// every 80–90 µs, on the very CPU of the thread doing the work (this
// machine's scheduler packs a woken task onto its waker's CPU), and took a
// tenth of that thread's time in `perf sched`. The runtime has no knob for
// the tick. A timer slack of 1 ms on that one thread lets the kernel end
// its sleeps anywhere within the millisecond, so it wakes about once a
// millisecond instead (docs/performance-notes.md has the figures).
//
// Threads the monitor starts while slowed inherit its slack, and a process
// forked from one of them would too; so before the caller starts anything
// that is not its own (a hook, the container's process, another program),
// it gives every thread the main thread's slack back (Tuning.Restore).
// The process that is finally exec'd into the container's process is the
// main thread's, whose slack this package never changes.
package sysmon
