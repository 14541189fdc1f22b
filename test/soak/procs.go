package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/pidfd"
)

// statFields returns the fields of /proc/PID/stat after the command name:
// [0] is the state letter, [1] the parent's pid.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// pids lists the processes there are now.
func pids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// childOf returns a live child of ppid, or 0. The create CLI has one
// child: the shim it starts.
func childOf(ppid int) int {
	want := strconv.Itoa(ppid)
	for _, pid := range pids() {
		if f := statFields(pid); len(f) > 1 && f[1] == want && f[0] != "Z" {
			return pid
		}
	}
	return 0
}

// cmdline is args as /proc/PID/cmdline holds them.
func cmdline(args []string) []byte {
	var b []byte
	for _, a := range args {
		b = append(append(b, a...), 0)
	}
	return b
}

// runningLine returns a live process that runs the command line line, or 0.
func runningLine(line []byte) int {
	for _, p := range pids() {
		if f := statFields(p); len(f) == 0 || f[0] == "Z" {
			continue
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); err == nil && bytes.Equal(b, line) {
			return p
		}
	}
	return 0
}

// forkOf returns a process, other than pid, that runs pid's very command
// line: the shim of a `crier create` that forked itself before its Go
// runtime started (internal/prefork), or 0.
func forkOf(pid int) int {
	want, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(want) == 0 {
		return 0
	}
	for _, p := range pids() {
		if p == pid {
			continue
		}
		if f := statFields(p); len(f) == 0 || f[0] == "Z" {
			continue
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); err == nil && bytes.Equal(b, want) {
			return p
		}
	}
	return 0
}

// killProcess SIGKILLs the process pid if it is still the one that started
// at start (never a pid reused since), through a pidfd, and waits until it
// has exited. It reports whether it killed it.
func killProcess(pid int, start uint64) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false, nil // gone
	}
	defer unix.Close(fd)
	// The pidfd holds the process: checked after it is open, the start
	// time says it is the one meant.
	if start != 0 && !container.Alive(pid, start) {
		return false, nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return false, nil // exited in between
	}
	if err := pidfd.Wait(fd, cliTimeout); err != nil {
		return true, fmt.Errorf("process %d did not exit after SIGKILL: %w", pid, err)
	}
	return true, nil
}

// processesUnder lists the live processes whose command line or root
// directory mentions dir: CLIs and shims name the soak's root on their
// command line; container processes have the soak's rootfs as root.
func processesUnder(dir string) []string {
	var found []string
	self := os.Getpid()
	for _, pid := range pids() {
		if pid == self {
			continue
		}
		if f := statFields(pid); len(f) == 0 || f[0] == "Z" {
			continue // a zombie holds nothing; its reaper will reap it
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		if bytes.Contains(cmdline, []byte(dir)) || strings.HasPrefix(root, dir) {
			found = append(found, fmt.Sprintf("%d %q (fds %d)", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), countFDs(pid)))
		}
	}
	return found
}

// countFDs counts the open descriptors of pid.
func countFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// listFDs lists pid's descriptors and what they are, for a report.
func listFDs(pid int) map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), e.Name()))
		out[e.Name()] = target
	}
	return out
}
