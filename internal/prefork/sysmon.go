package prefork

import (
	"os"
	"strconv"
)

// C's runtime has one P, so at every system call longer than its 20 µs
// tick, the runtime's monitor thread (sysmon) takes the P back and stays
// at that tick: through all of create, which is mostly system calls, it
// woke every 90 µs beside C (this machine's scheduler puts it on C's CPU)
// and took a tenth of C's time, in `perf sched`. A timer slack of 1 ms on
// that one thread lets its sleeps run long (the kernel may end them
// anywhere in the slack). The threads it starts meanwhile inherit it, so
// once the container is created every thread gets the main thread's
// slack back, before anything the shim starts could inherit it
// (RestoreTimerSlack). Interleaved creates, 40 each, four rounds: 29.46,
// 22.92, 22.59 and 24.17 ms against 32.64, 24.83, 23.63 and 25.08.
//
// A second P would spare sysmon the retakes too, but cost as much
// (docs/performance-notes.md).
const sysmonSlack = "1000000" // ns

// slack is the main thread's timer slack, which C's other threads are
// given back (RestoreTimerSlack); empty when slowSysmon changed nothing.
// Written once, by this package's init.
var slack []byte

// slowSysmon sets sysmonSlack on C's monitor thread, if it can tell
// which one it is (sysmonThread). Threads the monitor starts from then on
// inherit it, until RestoreTimerSlack.
func slowSysmon() {
	tids := threads()
	tid, ok := sysmonThread(os.Getpid(), tids)
	if !ok {
		return
	}
	own, err := os.ReadFile("/proc/self/timerslack_ns")
	if err != nil {
		return
	}
	if os.WriteFile(slackFile(tid), []byte(sysmonSlack), 0) == nil {
		slack = own
	}
}

// RestoreTimerSlack gives every thread of C the main thread's timer slack
// again, once the container is created (shim.Config.Untune). It does
// nothing when slowSysmon did nothing.
func RestoreTimerSlack() {
	if slack == nil {
		return
	}
	for _, tid := range threads() {
		os.WriteFile(slackFile(tid), slack, 0)
	}
}

// threads lists this process's thread ids.
func threads() []int {
	ents, _ := os.ReadDir("/proc/self/task")
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// slackFile is where a thread's timer slack is read and set (by its
// process's own threads, and by root).
func slackFile(tid int) string { return "/proc/" + strconv.Itoa(tid) + "/timerslack_ns" }

// sysmonThread returns the monitor thread among a process's threads: the
// runtime starts it first of all, before any package's init (another
// thread or two follow before this package's init, for the goroutines
// the runtime starts meanwhile), and thread ids are handed out in
// increasing order until they wrap around. So it is the thread with the
// lowest id above the main thread's, or, when every other id is below it
// (they wrapped), the lowest of all.
func sysmonThread(pid int, tids []int) (int, bool) {
	above, below, main := 0, 0, false
	for _, tid := range tids {
		switch {
		case tid == pid:
			main = true
		case tid > pid && (above == 0 || tid < above):
			above = tid
		case tid < pid && (below == 0 || tid < below):
			below = tid
		}
	}
	switch {
	case !main:
		return 0, false
	case above != 0:
		return above, true
	}
	return below, below != 0
}
