//go:build cri

package cri

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// This file tears the sandbox down: it asks containerd to remove every
// pod, stops it, then names and sweeps whatever is left of the run on the
// host (test/clients does the same for its clients).

// hostSnapshot is what was on the host before the run, so that only what
// the run made is counted and removed.
type hostSnapshot struct {
	netns   map[string]bool // names in /run/netns
	existed map[string]bool // shared directories the run may make
}

// sharedDirs are directories outside the sandbox that containerd, CNI or
// the runtimes make whatever they are told; those the run made go at the
// end if empty, deepest first.
var sharedDirs = []string{
	"/run/containerd", "/run/containerd/s", "/run/netns",
	"/var/lib/cni", "/var/lib/cni/results",
	"/run/crier", "/run/runc",
}

func snapshotHost() hostSnapshot {
	s := hostSnapshot{netns: map[string]bool{}, existed: map[string]bool{}}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		s.netns[e.Name()] = true
	}
	for _, d := range sharedDirs {
		if _, err := os.Stat(d); err == nil {
			s.existed[d] = true
		}
	}
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, critestCgroupParent)
		if _, err := os.Stat(d); err == nil {
			s.existed[d] = true
		}
	}
	return s
}

// tearDown removes the run and returns what was left behind that should
// not have been (each is swept as it is found).
func tearDown() []string {
	if suite.dir == "" {
		return nil
	}
	if suite.containerd != nil {
		stopContainerd()
	}
	var left []string
	left = append(left, sweepProcesses()...)
	left = append(left, sweepRuntimeState()...)
	left = append(left, sweepMounts()...)
	left = append(left, sweepCgroups()...)
	left = append(left, sweepNetwork()...)
	suite.mu.Lock()
	for _, id := range suite.ids {
		p := fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(suite.sock, k8sNS, id))))
		if _, err := os.Lstat(p); err == nil {
			left = append(left, "shim socket "+p+" of "+id)
			os.Remove(p)
		}
	}
	suite.mu.Unlock()
	for i := len(sharedDirs) - 1; i >= 0; i-- {
		if !suite.before.existed[sharedDirs[i]] {
			os.Remove(sharedDirs[i])
		}
	}
	if err := os.RemoveAll(suite.dir); err != nil {
		left = append(left, fmt.Sprintf("could not remove %s: %v", suite.dir, err))
	}
	sort.Strings(left)
	return left
}

// stopContainerd asks CRI to remove every pod and container, then stops
// containerd (SIGTERM; SIGKILL after 15 s).
func stopContainerd() {
	select {
	case <-suite.containerdEx:
	default:
		for _, args := range [][]string{{"rmp", "--all", "--force"}, {"rm", "--all", "--force"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			crictlCmd(ctx, args...).Run()
			cancel()
		}
		suite.containerd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-suite.containerdEx:
	case <-time.After(15 * time.Second):
		suite.containerd.Process.Kill()
		<-suite.containerdEx
	}
}

// sweepProcesses kills the processes that mention the sandbox on their
// command line (shims name its socket), or whose root or working
// directory is in it (containers): all ours, as the path is unique to
// the run. Each round waits on pidfds for the exits.
func sweepProcesses() []string {
	var left []string
	for round := 0; round < 5; round++ {
		procs := processesMatching(suite.dir)
		if len(procs) == 0 {
			break
		}
		var fds []int
		for pid, cl := range procs {
			if round == 0 {
				left = append(left, fmt.Sprintf("process %d %q", pid, cl))
			}
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			fds = append(fds, fd)
		}
		for _, fd := range fds {
			pidfd.Wait(fd, 10*time.Second)
			unix.Close(fd)
		}
	}
	return left
}

// sweepRuntimeState force-deletes, through each handler's runtime, the
// containers whose state is left in its root.
func sweepRuntimeState() []string {
	var left []string
	for _, h := range suite.handlers {
		entries, _ := os.ReadDir(h.stateRoot())
		for _, e := range entries {
			left = append(left, fmt.Sprintf("%s state %s", h.name, filepath.Join(h.stateRoot(), e.Name())))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			exec.CommandContext(ctx, h.runtime, "--root", h.stateRoot(), "delete", "--force", e.Name()).Run()
			cancel()
		}
	}
	return left
}

// sweepMounts unmounts what is left below the sandbox, and the network
// namespaces the run made (containerd binds them in /run/netns).
func sweepMounts() []string {
	var left []string
	for _, m := range clientsandbox.MountsUnder(suite.dir) {
		left = append(left, "mount "+m)
		unix.Unmount(m, unix.MNT_DETACH)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if suite.before.netns[e.Name()] || !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		p := filepath.Join("/run/netns", e.Name())
		left = append(left, "network namespace "+p)
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
	}
	return left
}

// sweepCgroups removes the cgroups of the run's pods: below the
// scenarios' parent, and below critest's if the run made it.
func sweepCgroups() []string {
	var left []string
	for _, h := range cgroupHierarchies() {
		parents := []string{filepath.Join(h, suite.cgroupParent)}
		if p := filepath.Join(h, critestCgroupParent); !suite.before.existed[p] {
			parents = append(parents, p)
		}
		for _, parent := range parents {
			for _, c := range cgroupsBelow(parent) {
				left = append(left, "cgroup "+c)
				os.Remove(c)
			}
			os.Remove(parent)
		}
	}
	return left
}

// sweepNetwork deletes the bridge (CNI never does: it is no leak) and
// whatever CNI cached of the run's network outside the sandbox.
func sweepNetwork() []string {
	var left []string
	exec.Command("ip", "link", "delete", bridgeName).Run()
	cached, _ := filepath.Glob("/var/lib/cni/results/" + cniNetwork + "-*")
	for _, p := range cached {
		left = append(left, "CNI result cache "+p)
		os.Remove(p)
	}
	return left
}

// cgroupHierarchies lists the mounted cgroup hierarchies.
func cgroupHierarchies() []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var dirs []string
	for _, h := range hs {
		if st, err := os.Stat(h); err == nil && st.IsDir() {
			dirs = append(dirs, h)
		}
	}
	return dirs
}

// cgroupsBelow lists the cgroups below dir, deepest first.
func cgroupsBelow(dir string) []string {
	var found []string
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() && path != dir {
			found = append(found, path)
		}
		return nil
	})
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// processesMatching lists live processes that mention key on their
// command line, or whose root or working directory is below it.
func processesMatching(key string) map[int]string {
	found := map[int]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(st, []byte(") Z ")) {
			continue // a zombie holds nothing; its parent reaps it
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cl := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if strings.Contains(cl, key) || strings.HasPrefix(root, key) || strings.HasPrefix(cwd, key) {
			found[pid] = cl
		}
	}
	return found
}
