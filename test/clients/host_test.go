//go:build clients

package clients

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// This file looks at the host: processes, their parents and namespaces,
// cgroups and mounts; and it sweeps up what a sandbox left.

// procStat returns the state letter, parent pid and command name of pid.
func procStat(pid int) (state byte, ppid int, comm string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, "", err
	}
	// comm is in parentheses and may hold anything: split after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 2 {
		return 0, 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, string(b[open+1 : end]), err
}

// cmdline returns pid's command line, arguments joined by spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// nsOf returns the namespace link of pid, e.g. "pid:[4026531836]".
func nsOf(pid int, ns string) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	return s
}

// cgroupDir returns the directory of pid's cgroup for a v1 controller
// ("pids", "freezer"), or of the unified hierarchy for "".
func cgroupDir(pid int, controller string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller && controller != "" {
				return filepath.Join("/sys/fs/cgroup", controller, f[2]), nil
			}
		}
		if controller == "" && f[0] == "0" {
			if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
				return filepath.Join("/sys/fs/cgroup/unified", f[2]), nil
			}
			return filepath.Join("/sys/fs/cgroup", f[2]), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/cgroup: no %q hierarchy", pid, controller)
}

// cgroupProcs lists the processes in the cgroup directory dir, sorted.
func cgroupProcs(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s/cgroup.procs: %q", dir, f)
		}
		pids = append(pids, n)
	}
	sort.Ints(pids)
	return pids
}

// readTrim reads a small file, failing the test if it cannot.
func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// processesMatching lists live processes that mention one of keys on their
// command line, or whose root or working directory is below one of them:
// daemons and shims name their sandbox paths, containers have their
// rootfs in it.
func processesMatching(keys ...string) map[int]string {
	found := map[int]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, _, _, err := procStat(pid); err != nil || st == 'Z' {
			continue // a zombie holds nothing; its parent reaps it
		}
		cl := cmdline(pid)
		root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		for _, k := range keys {
			if strings.Contains(cl, k) || strings.HasPrefix(root, k) || strings.HasPrefix(cwd, k) {
				found[pid] = cl
			}
		}
	}
	return found
}

// cgroupsNamed lists the cgroup directories, in every hierarchy, whose
// path below the hierarchy's root starts with /name; deepest first.
func cgroupsNamed(name string) []string {
	var found []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		top, _ := filepath.Glob(filepath.Join(h, name+"*"))
		for _, d := range top {
			filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					found = append(found, path)
				}
				return nil
			})
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// trace is what identifies a sandbox's leftovers: its directory (every
// path of the client's, and every container's rootfs, is below it), the
// name its cgroup parents start with, the container IDs it gave the
// runtime, and paths outside it that must be gone at the end (the
// runtime's state of each container, containerd's shim sockets).
type trace struct {
	dir          string
	cgroupParent string
	ids          []string
	paths        []string
}

// leftovers names what is left of a sandbox.
func (tr *trace) leftovers() []string {
	var found []string
	for pid, cl := range processesMatching(append([]string{tr.dir}, tr.ids...)...) {
		found = append(found, fmt.Sprintf("process %d %q", pid, cl))
	}
	for _, m := range clientsandbox.MountsUnder(tr.dir) {
		found = append(found, "mount "+m)
	}
	for _, c := range cgroupsNamed(tr.cgroupParent) {
		// The clients make the parent, and podman its conmon cgroup
		// in it, but never remove them: the sweep does. A cgroup of a
		// container in it is a leak.
		parent, base := filepath.Base(filepath.Dir(c)), filepath.Base(c)
		if base != tr.cgroupParent && !(base == "conmon" && parent == tr.cgroupParent) {
			found = append(found, "cgroup "+c)
		}
	}
	for _, p := range tr.paths {
		if _, err := os.Lstat(p); err == nil {
			found = append(found, "path "+p)
		}
	}
	sort.Strings(found)
	return found
}

// settle waits, up to d, for the processes that mention the sandbox or its
// container IDs to end by themselves: podman's conmon runs the
// container's exit command (`podman container cleanup`) once the
// container is gone, and may still be at it when `podman rm` returns.
// Only what outlives d is left behind. It waits on pidfds, not a clock.
func (tr *trace) settle(d time.Duration) {
	keys := append([]string{tr.dir}, tr.ids...)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		procs := processesMatching(keys...)
		if len(procs) == 0 {
			return
		}
		for pid := range procs {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // gone already
			}
			pidfd.Wait(fd, time.Until(deadline))
			unix.Close(fd)
		}
	}
}

// sweep removes by force what a sandbox left after its client was asked to
// clean up: it kills the processes that mention the sandbox or its
// container IDs (only ours: both are unique to this run), unmounts below
// it and removes its cgroups and paths.
func (tr *trace) sweep() {
	keys := append([]string{tr.dir}, tr.ids...)
	// A few rounds: a dying daemon may still fork before its SIGKILL
	// lands. Each round waits on pidfds for the exits, not on a clock.
	for round := 0; round < 5; round++ {
		procs := processesMatching(keys...)
		if len(procs) == 0 {
			break
		}
		var fds []int
		for pid := range procs {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // gone already
			}
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			fds = append(fds, fd)
		}
		for _, fd := range fds {
			pidfd.Wait(fd, 10*time.Second)
			unix.Close(fd)
		}
	}
	for _, m := range clientsandbox.MountsUnder(tr.dir) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	for _, c := range cgroupsNamed(tr.cgroupParent) {
		os.Remove(c)
	}
	for _, p := range tr.paths {
		os.RemoveAll(p)
	}
}
