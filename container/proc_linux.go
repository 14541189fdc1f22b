package container

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// StartTime returns the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat). A pid and its start time together name one
// process even after the pid is reused.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
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
