package cgroup

// The real-time budget. With RT group scheduling (CONFIG_RT_GROUP_SCHED,
// cgroup v1 cpu controller) every cgroup has a share of CPU time for
// real-time tasks, cpu.rt_runtime_us per cpu.rt_period_us, and the kernel
// refuses a child a larger share than its parent has left. A new cgroup
// starts with none, so the directories crier creates above a container
// (the parents of a cgroupsPath that did not exist) would stop any
// realtimeRuntime from being set. grantRealtime raises those, and only
// those, to what their children need at Limit;
// dropRealtime and releaseRealtime give the budget back at Destroy. The
// parents are flocked while their budget is sized, so that concurrent
// creates and deletes under one parent count each other.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rtBWShift is the fixed-point shift the kernel compares real-time
// budgets with (BW_SHIFT): a group's runtime/period ratio must cover the
// sum of its children's.
const rtBWShift = 20

// rtRatio is runtime/period as the kernel's to_ratio computes it; a
// runtime of -1 (no limit) counts as the whole period.
func rtRatio(runtime, period int64) int64 {
	if runtime < 0 {
		return 1 << rtBWShift
	}
	if period <= 0 {
		return 0
	}
	return (runtime << rtBWShift) / period
}

// rtRuntimeFor is the smallest runtime whose ratio over period is at
// least ratio.
func rtRuntimeFor(ratio, period int64) int64 {
	return (ratio*period + 1<<rtBWShift - 1) >> rtBWShift
}

// grantRealtime makes room for the container's real-time runtime in the
// cpu cgroups above its own that crier made: the ones Prepare created for
// it (and the shared /crier parent of an older crier's default path).
// With RT group scheduling (cgroup v1) a new cgroup starts with no
// runtime, and the kernel refuses a child more than its parent has, so
// without this no realtimeRuntime could be set under them. Each such ancestor is raised, never lowered, to what
// its children hold plus the request; the budget goes back to the host
// when the directory is removed. Ancestors crier did not make are the
// administrator's to fill, as with runc and crun, which raise none.
func (c *Cgroup) grantRealtime(cpu *specs.LinuxCPU) error {
	if cpu == nil || cpu.RealtimeRuntime == nil || *cpu.RealtimeRuntime <= 0 {
		return nil
	}
	leaf, ok := c.Paths["cpu"]
	if !ok || !fileExists(filepath.Join(leaf, "cpu.rt_runtime_us")) {
		return nil // no RT group scheduling: the write itself will say so
	}
	var period int64
	if cpu.RealtimePeriod != nil {
		period = int64(*cpu.RealtimePeriod)
	} else {
		_, p, err := readRT(leaf)
		if err != nil {
			return err
		}
		period = p
	}
	var own []fileWrite
	for _, w := range v1CPUWrites(cpu) {
		if w.file == "cpu.rt_period_us" || w.file == "cpu.rt_runtime_us" {
			own = append(own, w)
		}
	}
	return raiseRealtime(leaf, c.rtManagedAncestors(leaf), rtRatio(*cpu.RealtimeRuntime, period), own)
}

// rtManagedAncestors lists, nearest first, the directories above leaf
// whose RT budget crier may raise.
func (c *Cgroup) rtManagedAncestors(leaf string) []string {
	var chain []string
	for d := filepath.Dir(leaf); ; d = filepath.Dir(d) {
		shared := c.SharedParent && d == filepath.Dir(leaf)
		if !shared && !slices.Contains(c.Created, d) {
			return chain
		}
		chain = append(chain, d)
	}
}

// lockRT locks dirs with flock, top down (dirs is nearest first),
// so that creates and deletes under the same parent take turns at its
// budget; closing the returned descriptors unlocks.
func lockRT(dirs []string) (unlock func(), err error) {
	var fds []int
	unlock = func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for _, d := range slices.Backward(dirs) {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("cgroup: open %s: %w", d, err)
		}
		fds = append(fds, fd)
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			unlock()
			return nil, fmt.Errorf("cgroup: lock %s: %w", d, err)
		}
	}
	return unlock, nil
}

// raiseRealtime raises the runtime of chain (leaf's ancestors,
// nearest first) so that leaf can take a ratio of need, then makes leaf's
// own writes. All of it happens under the lock, so that neither another
// create nor a delete (see releaseRealtime) sizes a parent without
// counting this container.
func raiseRealtime(leaf string, chain []string, need int64, own []fileWrite) error {
	unlock, err := lockRT(chain)
	if err != nil {
		return err
	}
	defer unlock()
	reqs := make([]int64, len(chain))
	child, below := leaf, need
	for i, d := range chain {
		others, err := childrenRT(d, child)
		if err != nil {
			return err
		}
		reqs[i] = others + below
		child, below = d, reqs[i]
	}
	if err := checkRTRoom(filepath.Dir(child), child, below); err != nil {
		return err
	}
	for i, d := range slices.Backward(chain) {
		runtime, period, err := readRT(d)
		if err != nil {
			return err
		}
		if rtRatio(runtime, period) >= reqs[i] {
			continue
		}
		want := rtRuntimeFor(reqs[i], period)
		if want > period {
			return fmt.Errorf("cgroup: %s would need a real-time runtime of %dus, more than its period of %dus", d, want, period)
		}
		if err := writeFile(filepath.Join(d, "cpu.rt_runtime_us"), strconv.FormatInt(want, 10)); err != nil {
			return fmt.Errorf("%w: %s has not that much real-time runtime to give", err, filepath.Dir(d))
		}
	}
	return writeAll(leaf, own)
}

// checkRTRoom fails, with a clearer error than the kernel's EINVAL, when
// top, the first ancestor crier may not raise, cannot hold a ratio of need
// for its child besides what its other children hold.
func checkRTRoom(top, child string, need int64) error {
	if !fileExists(filepath.Join(top, "cpu.rt_runtime_us")) {
		return nil
	}
	others, err := childrenRT(top, child)
	if err != nil {
		return err
	}
	runtime, period, err := readRT(top)
	if err != nil {
		return err
	}
	if others+need > rtRatio(runtime, period) {
		return fmt.Errorf("cgroup: %s has not enough real-time runtime left for linux.resources.cpu.realtimeRuntime "+
			"(its cpu.rt_runtime_us is %d of a %dus period, shared with the cgroups below it)", top, runtime, period)
	}
	return nil
}

// dropRealtime zeroes the container's own real-time runtime before its
// cgroup is removed: a removed cgroup keeps counting against its parent
// until the kernel frees it, which is later than releaseRealtime runs.
// It fails (EBUSY) while real-time tasks are still in the cgroup, and
// is best effort like releaseRealtime.
func (c *Cgroup) dropRealtime() {
	leaf, ok := c.Paths["cpu"]
	if !ok {
		return
	}
	if runtime, _, err := readRT(leaf); err == nil && runtime != 0 {
		writeFile(filepath.Join(leaf, "cpu.rt_runtime_us"), "0")
	}
}

// releaseRealtime gives back what grantRealtime raised: each ancestor
// crier manages that is still there (others' containers keep the shared
// parent) goes down to what its remaining children hold, nearest first
// since a parent cannot go below its children. It is best effort: a
// budget left too high limits nobody but other real-time groups, and
// must not make a delete fail.
func (c *Cgroup) releaseRealtime() {
	leaf, ok := c.Paths["cpu"]
	if !ok {
		return
	}
	var held []string
	for _, d := range c.rtManagedAncestors(leaf) {
		if runtime, _, err := readRT(d); err == nil && runtime != 0 {
			held = append(held, d)
		}
	}
	if len(held) == 0 {
		return
	}
	unlock, err := lockRT(held)
	if err != nil {
		return
	}
	defer unlock()
	for _, d := range held {
		children, err := childrenRT(d, "")
		if err != nil {
			return
		}
		runtime, period, err := readRT(d)
		if err != nil || runtime < 0 || rtRatio(runtime, period) <= children {
			continue
		}
		writeFile(filepath.Join(d, "cpu.rt_runtime_us"), strconv.FormatInt(rtRuntimeFor(children, period), 10))
	}
}

// childrenRT sums the RT ratios of the cgroups directly below dir,
// except skip.
func childrenRT(dir, skip string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	var sum int64
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() || p == skip {
			continue
		}
		runtime, period, err := readRT(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while we looked
		}
		if err != nil {
			return 0, err
		}
		sum += rtRatio(runtime, period)
	}
	return sum, nil
}

// readRT reads dir's real-time runtime and period.
func readRT(dir string) (runtime, period int64, err error) {
	for _, f := range []struct {
		name string
		v    *int64
	}{{"cpu.rt_runtime_us", &runtime}, {"cpu.rt_period_us", &period}} {
		s, err := readFile(dir, f.name)
		if err != nil {
			return 0, 0, err
		}
		if *f.v, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, f.name), err)
		}
	}
	return runtime, period, nil
}
