package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// leaks is what the soak's lifecycles left behind, each list one line per
// thing left.
type leaks struct {
	processes []string // crier, crier-shim and container processes
	mounts    []string
	cgroups   []string // below the soak's cgroup parent, in every hierarchy
	stateDirs []string // entries of the soak's --root
	sockets   []string // shim.sock files below --root, socket descriptors of what is left
	fds       []string // descriptors the soak itself opened and did not close
}

func (l leaks) any() bool {
	return len(l.processes)+len(l.mounts)+len(l.cgroups)+len(l.stateDirs)+len(l.sockets)+len(l.fds) > 0
}

func (l leaks) print() {
	for _, f := range []struct {
		name string
		list []string
	}{
		{"processes (crier, crier-shim, container)", l.processes},
		{"mounts", l.mounts},
		{"cgroups", l.cgroups},
		{"state directories", l.stateDirs},
		{"sockets", l.sockets},
		{"descriptors of the soak", l.fds},
	} {
		fmt.Printf("  %-60s %6d\n", f.name, len(f.list))
		for i, s := range f.list {
			if i == 10 {
				fmt.Printf("    ... and %d more\n", len(f.list)-10)
				break
			}
			fmt.Println("    " + s)
		}
	}
}

// leaks looks for what is left once every lifecycle has ended. The soak's
// own descriptors are compared with fdsBefore, counted before the first
// lifecycle.
func (s *soak) leaks(fdsBefore map[string]string) leaks {
	var l leaks
	// Zombies of killed shims wait for init to reap them, and a
	// container's last process may still be on its way out: give what is
	// still ending a moment before counting it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if l.processes = s.processesLeft(); len(l.processes) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.mounts = mountsMentioning(s.tmp)
	l.cgroups = s.cgroupsLeft()
	entries, _ := os.ReadDir(s.root)
	for _, e := range entries {
		l.stateDirs = append(l.stateDirs, filepath.Join(s.root, e.Name()))
	}
	l.sockets = s.socketsLeft()
	fdsAfter := listFDs(os.Getpid())
	for fd, what := range fdsAfter {
		if fdsBefore[fd] != what {
			l.fds = append(l.fds, fmt.Sprintf("fd %s: %s", fd, what))
		}
	}
	return l
}

// processesLeft lists the processes of the soak's root and rootfs, and
// those in its cgroups.
func (s *soak) processesLeft() []string {
	found := processesUnder(s.tmp)
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", s.cgParent))
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, pid := range strings.Fields(string(b)) {
				found = append(found, fmt.Sprintf("%s in %s", pid, filepath.Dir(path)))
			}
			return nil
		})
	}
	return found
}

func mountsMentioning(s string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			found = append(found, sc.Text())
		}
	}
	return found
}

// cgroupsLeft lists the cgroups left below the soak's parent in every
// hierarchy, and removes the parent itself. crier removes a parent it
// made once it is empty, unless another container still used it then; a
// parent left empty is not a leak of any container's, and goes now.
func (s *soak) cgroupsLeft() []string {
	var found []string
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", s.cgParent))
	for _, dir := range dirs {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				found = append(found, filepath.Join(dir, e.Name()))
			}
		}
		if len(found) == 0 {
			if err := os.Remove(dir); err != nil {
				found = append(found, fmt.Sprintf("%s: %v", dir, err))
			}
		}
	}
	return found
}

// socketsLeft lists the shim sockets left on disk below the root, and the
// socket descriptors that processes of the soak still hold.
func (s *soak) socketsLeft() []string {
	var found []string
	filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSocket != 0 {
			found = append(found, path)
		}
		return nil
	})
	for _, pid := range pids() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid == os.Getpid() || !strings.Contains(string(cmdline), s.root) {
			continue
		}
		for fd, what := range listFDs(pid) {
			if strings.HasPrefix(what, "socket:") {
				found = append(found, fmt.Sprintf("process %d fd %s: %s", pid, fd, what))
			}
		}
	}
	return found
}
