package container

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/crier-runtime/crier/internal/rawfile"
)

// StartTime returns the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat). A pid and its start time together name one
// process even after the pid is reused.
func StartTime(pid int) (uint64, error) {
	// On create's path: internal/rawfile.
	p := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := rawfile.Read(p)
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: p, Err: err}
	}
	return parseStartTime(b)
}

func parseStartTime(stat []byte) (uint64, error) {
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	fields := bytes.Fields(stat[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// Alive reports whether the process pid that started at start still exists
// and is not a zombie.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := parseStartTime(b)
	if err != nil || st != start {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	state := bytes.TrimSpace(b[i+1:])
	return len(state) > 0 && state[0] != 'Z' && state[0] != 'X'
}

// Dying reports whether process pid is on its way out: gone, a zombie,
// exiting (PF_EXITING in its flags, field 9 of /proc/PID/stat), or with a
// SIGKILL pending. The OOM killer's victim is all of these in turn; a
// process that is none of them after an OOM kill was not the victim.
func Dying(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), fields[6] field 9 (flags).
	if len(fields) < 7 || fields[0][0] == 'Z' || fields[0][0] == 'X' {
		return true
	}
	const pfExiting = 0x4
	if flags, err := strconv.ParseUint(string(fields[6]), 10, 64); err != nil || flags&pfExiting != 0 {
		return true
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	return killPending(status)
}

// killPending reports whether /proc/PID/status shows SIGKILL pending for
// the thread (SigPnd) or the process (ShdPnd).
func killPending(status []byte) bool {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(k) != "SigPnd" && string(k) != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err == nil && mask&(1<<(9-1)) != 0 {
			return true
		}
	}
	return false
}
