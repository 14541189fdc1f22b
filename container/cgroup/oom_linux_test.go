package cgroup

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOOMWatchV2: the v2 watch, on files laid out as the kernel's (a pod
// cgroup above the container's, the hierarchy's root without memory
// files): a write to memory.events makes the descriptor readable, Check
// drains it, counts the new oom_kill, and names whose limit was hit from
// the memory.events.local "oom" counters: an ancestor's, the container's,
// then one below (only the subtree's count moved).
func TestOOMWatchV2(t *testing.T) {
	root := t.TempDir()
	pod := filepath.Join(root, "pod")
	dir := filepath.Join(pod, "c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	events := func(oom, kills int) string {
		return "low 0\nhigh 0\nmax 3\noom " + itoa(int64(oom)) + "\noom_kill " + itoa(int64(kills)) + "\noom_group_kill 0\n"
	}
	write(filepath.Join(pod, "memory.events.local"), events(0, 0))
	write(filepath.Join(dir, "memory.events.local"), events(0, 0))
	write(filepath.Join(dir, "memory.events"), events(1, 5)) // before the watch: not reported
	w, err := (&Cgroup{Paths: map[string]string{"": dir}}).WatchOOM()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if readable(t, w.FD()) {
		t.Fatal("readable before anything happened")
	}
	check := func(want OOM) {
		t.Helper()
		if !readable(t, w.FD()) {
			t.Fatal("not readable after memory.events changed")
		}
		got, err := w.Check()
		if err != nil || got != want {
			t.Errorf("Check() = %+v, %v; want %+v", got, err, want)
		}
		if readable(t, w.FD()) {
			t.Error("still readable after Check")
		}
	}

	write(filepath.Join(pod, "memory.events.local"), events(1, 0))
	write(filepath.Join(dir, "memory.events"), events(1, 6))
	check(OOM{Count: 1, Kills: 1, Limit: LimitAncestor, Cgroup: pod})

	write(filepath.Join(dir, "memory.events.local"), events(1, 2))
	write(filepath.Join(dir, "memory.events"), events(2, 8))
	check(OOM{Count: 2, Kills: 2, Limit: LimitContainer, Cgroup: dir})

	write(filepath.Join(dir, "memory.events"), events(3, 9))
	check(OOM{Count: 1, Kills: 1, Limit: LimitDescendant})

	// A change that is no kill (memory.high reached) reports nothing.
	write(filepath.Join(dir, "memory.events"), "low 0\nhigh 1\nmax 3\noom 3\noom_kill 9\n")
	check(OOM{})
}

// TestOOMWatchNoMemory: no memory cgroup, no watch.
func TestOOMWatchNoMemory(t *testing.T) {
	dir := t.TempDir()
	if _, err := (&Cgroup{Paths: map[string]string{"": dir}}).WatchOOM(); err != ErrNoMemoryCgroup {
		t.Errorf("WatchOOM() error %v, want ErrNoMemoryCgroup", err)
	}
}

func readable(t *testing.T, fd int) bool {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
