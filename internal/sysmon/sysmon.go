package sysmon

import (
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/rawfile"
)

// slow is the monitor thread's timer slack while slowed, in ns: its
// sleeps may then end anywhere within a millisecond of the 20 µs asked.
const slow = "1000000"

// Tuning is what Slow changed, for Restore to undo. The zero Tuning
// changed nothing.
type Tuning struct {
	slack []byte // the calling thread's timer slack when Slow ran, in ns
}

// Slow gives this process's runtime monitor thread a long timer slack, if
// it can tell which thread that is (monitorThread), and says what it did.
// Call it early in main or a package init, before the process makes
// threads of its own: the monitor is told apart by its thread id. It
// fails quietly: a process whose monitor keeps its tick runs as before.
func Slow() Tuning {
	tids := threads()
	pid := os.Getpid()
	if !slices.Contains(tids, pid) {
		var err error
		if pid, err = procSelf(); err != nil {
			return Tuning{}
		}
	}
	tid, ok := monitorThread(pid, tids)
	if !ok {
		return Tuning{}
	}
	own, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return Tuning{}
	}
	if writeSlack(tid, []byte(slow)) != nil {
		return Tuning{}
	}
	return Tuning{slack: []byte(strconv.Itoa(own))}
}

// Restore gives every thread of the process the main thread's timer slack
// as Slow found it, the monitor and the threads it started meanwhile
// included. It does nothing for a Tuning that changed nothing, and may be
// called more than once.
func (t Tuning) Restore() {
	if t.slack == nil {
		return
	}
	for _, tid := range threads() {
		writeSlack(tid, t.slack)
	}
}

// writeSlack sets thread tid's timer slack, on create's path
// (internal/rawfile).
func writeSlack(tid int, slack []byte) error { return rawfile.Write(slackFile(tid), slack) }

// procSelf is this process's pid as /proc names it, where that is not
// os.Getpid(): the init stage runs in a new pid namespace (pid 1 there)
// but still sees the host's /proc until it enters the container's root.
func procSelf() (int, error) {
	s, err := os.Readlink("/proc/self")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// threads lists this process's thread ids, as /proc names them.
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
// process's own threads, and by root). The kernel has the file only in
// /proc/TID, not in /proc/self/task/TID.
func slackFile(tid int) string { return "/proc/" + strconv.Itoa(tid) + "/timerslack_ns" }

// monitorThread returns the monitor thread among a process's threads: the
// runtime starts it first of all, before any package's init (another
// thread or two follow before main, for the goroutines the runtime starts
// meanwhile), and thread ids are handed out in increasing order until they
// wrap around. So it is the thread with the lowest id above the main
// thread's, or, when every other id is below it (they wrapped), the lowest
// of all.
func monitorThread(pid int, tids []int) (int, bool) {
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
