package container

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Cgroup is a container's set of cgroup directories. It is JSON-serialisable
// so that it can be stored in the container's state file and destroyed later
// by another process (the CLI, when the shim is dead).
//
// On a cgroup v2 host Paths holds the unified directory (and possibly a
// name=systemd v1 one). On a v1 or hybrid host it holds one directory per
// mounted v1 hierarchy, co-mounted controllers sharing a directory, plus the
// unified directory of a hybrid host, which is used for placement only: it
// is where cgroup v2 aware tools look for the container's processes.
type Cgroup struct {
	// Paths maps a v1 controller name (e.g. "memory", "cpu",
	// "name=systemd") or "" for the v2 unified hierarchy to an absolute
	// directory.
	Paths map[string]string `json:"paths"`
	// Created lists every directory Apply made, each parent before its
	// children. Destroy uses it to remove the intermediate parents this
	// container brought into being, and only those, even when it runs in
	// another process than Apply did.
	Created []string `json:"created,omitempty"`
}

const (
	// cgroupDefaultParent holds containers whose config has no cgroupsPath.
	cgroupDefaultParent = "/crier"
	// cgroupRmdirAttempts and cgroupRmdirDelay bound how long Destroy waits
	// for just-killed processes to leave a cgroup (about 1.3s in total).
	cgroupRmdirAttempts = 8
	cgroupRmdirDelay    = 5 * time.Millisecond
)

// NewCgroup computes the directories for a container from
// linux.cgroupsPath, which is absolute (relative to each hierarchy's root as
// mounted here) or relative (to the caller's own cgroup in each hierarchy,
// from /proc/self/cgroup); an empty cgroupsPath means "/crier/<id>". It
// changes nothing on disk, so that a failed create has nothing to undo.
func NewCgroup(id string, cgroupsPath string) (*Cgroup, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	mounts, err := parseCgroupMounts(string(mountinfo))
	if err != nil {
		return nil, err
	}
	own, err := parseProcCgroup(string(self))
	if err != nil {
		return nil, err
	}
	paths, err := cgroupPaths(mounts, own, id, cgroupsPath)
	if err != nil {
		return nil, err
	}
	return &Cgroup{Paths: paths}, nil
}

// Apply creates the directories, applies the resource limits, then moves
// pid into them, so that the process never runs unconstrained. With
// r == nil only placement happens. A limit on a controller the host lacks
// is an error naming the controller; a missing controller nobody asked for
// is skipped. On error Apply removes the directories it created (a
// directory still holding pid cannot be removed and stays in Created for
// Destroy).
func (c *Cgroup) Apply(pid int, r *specs.LinuxResources) (err error) {
	v2 := cgroupUnifiedMode(c.Paths)
	need := cgroupRequiredControllers(r, v2)
	if !v2 {
		if err := cgroupCheckV1(c.Paths, need); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			c.removeCreated()
		}
	}()
	if err := c.makeDirs(); err != nil {
		return err
	}
	if v2 {
		err = cgroupPrepareV2(c.Paths[""], need)
	} else if dir, ok := c.Paths["cpuset"]; ok {
		err = cgroupInitCpuset(dir)
	}
	if err != nil {
		return err
	}
	if r != nil {
		if v2 {
			err = cgroupSetV2(c.Paths[""], r)
		} else {
			err = cgroupSetV1(c.Paths, r)
		}
		if err != nil {
			return err
		}
	}
	for _, dir := range cgroupUniqueDirs(c.Paths) {
		if err := cgroupWriteFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Pids lists the processes in the container's cgroup, including those in
// cgroups the container made below it. It reads one hierarchy that still
// exists, preferring the unified one, then "pids", "memory" and "freezer",
// which every process of the container is in. When none of the directories
// exists the error wraps fs.ErrNotExist.
func (c *Cgroup) Pids() ([]int, error) {
	dir := ""
	for _, k := range append([]string{"", "pids", "memory", "freezer"}, slices.Sorted(maps.Keys(c.Paths))...) {
		if d, ok := c.Paths[k]; ok && cgroupDirExists(d) {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, fmt.Errorf("cgroup: no directory of the container is left: %w", fs.ErrNotExist)
	}
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			var ps []int
			ps, err = cgroupReadProcs(p)
			pids = append(pids, ps...)
		}
		if p != dir && errors.Is(err, fs.ErrNotExist) {
			return nil // a sub-cgroup vanished while we walked
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return pids, nil
}

// cgroupReadProcs returns the processes listed in dir's cgroup.procs.
func cgroupReadProcs(dir string) ([]int, error) {
	s, err := cgroupReadFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, "cgroup.procs"), err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Destroy removes the container's directories, deepest first, together with
// any sub-cgroups the container made in them, and then the intermediate
// parents Apply created if they are now empty. Directories that are already
// gone are fine, so Destroy can be repeated. A just-killed process takes a
// moment to leave its cgroup, so a busy directory is retried for a short
// while before Destroy gives up.
func (c *Cgroup) Destroy() error {
	leaves := cgroupUniqueDirs(c.Paths)
	slices.SortFunc(leaves, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	var errs []error
	for _, dir := range leaves {
		// A hierarchy root has no cgroup above it; never empty one out, even
		// when a damaged state file names it.
		if cgroupDirExists(dir) && !cgroupFileExists(filepath.Join(filepath.Dir(dir), "cgroup.procs")) {
			errs = append(errs, fmt.Errorf("cgroup: refusing to remove %s: not below a cgroup", dir))
			continue
		}
		if err := cgroupRemoveTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range slices.Backward(c.Created) {
		if slices.Contains(leaves, dir) {
			continue
		}
		// A parent still shared with another container is busy; leave it.
		err := unix.Rmdir(dir)
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) &&
			!errors.Is(err, unix.ENOTEMPTY) {
			errs = append(errs, fmt.Errorf("cgroup: rmdir %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// makeDirs creates every directory in c.Paths with its missing parents,
// recording what it made in c.Created.
func (c *Cgroup) makeDirs() error {
	for _, dir := range cgroupUniqueDirs(c.Paths) {
		created, err := cgroupMkdirAll(dir)
		c.Created = append(c.Created, created...)
		if err != nil {
			return err
		}
	}
	return nil
}

// removeCreated undoes makeDirs as far as it can, keeping in c.Created the
// directories that could not be removed so that Destroy can try again.
func (c *Cgroup) removeCreated() {
	var left []string
	for _, dir := range slices.Backward(c.Created) {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			left = append(left, dir)
		}
	}
	slices.Reverse(left)
	c.Created = left
}

// cgroupMkdirAll is os.MkdirAll that reports the directories it made,
// parents first. It retries when a parent vanishes under it, which happens
// when another container's Destroy removes a parent the two share.
func cgroupMkdirAll(dir string) ([]string, error) {
	var created []string
	for attempt := 1; ; attempt++ {
		err := cgroupMkdirMissing(dir, &created)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return created, err
		}
	}
}

// cgroupMkdirMissing makes dir and its missing parents, appending what it
// made to created.
func cgroupMkdirMissing(dir string, created *[]string) error {
	var missing []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroup: %w", err)
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, 0o755); err == nil {
			*created = append(*created, d)
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	return nil
}

// cgroupRemoveTree removes dir and any cgroups below it, children first,
// retrying while a directory is busy with exiting processes.
func cgroupRemoveTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := cgroupRemoveTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := cgroupRmdirDelay
	for attempt := 1; ; attempt++ {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && attempt < cgroupRmdirAttempts:
			time.Sleep(delay)
			delay *= 2
		default:
			return fmt.Errorf("cgroup: rmdir %s: %w", dir, err)
		}
	}
}

// cgroupUniqueDirs returns the distinct directories of paths, sorted, so
// that co-mounted controllers are handled once.
func cgroupUniqueDirs(paths map[string]string) []string {
	return slices.Compact(slices.Sorted(maps.Values(paths)))
}

// cgroupUnifiedMode reports whether limits go to the v2 hierarchy: it is
// there and no v1 hierarchy carries a resource controller (a named v1
// hierarchy such as name=systemd has none).
func cgroupUnifiedMode(paths map[string]string) bool {
	if _, ok := paths[""]; !ok {
		return false
	}
	for k := range paths {
		if k != "" && !strings.HasPrefix(k, "name=") {
			return false
		}
	}
	return true
}

// cgroupMount is one mounted cgroup hierarchy, from /proc/self/mountinfo.
type cgroupMount struct {
	root       string   // the part of the hierarchy that is mounted, usually "/"
	mountpoint string   // where it is mounted
	keys       []string // v1 controllers and name=..., or "" for cgroup2
}

// parseCgroupMounts extracts the cgroup and cgroup2 mounts from the text of
// /proc/self/mountinfo, in mount order.
func parseCgroupMounts(mountinfo string) ([]cgroupMount, error) {
	var mounts []cgroupMount
	for line := range strings.SplitSeq(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		// Six fixed fields, optional fields, "-", fstype, source, super options.
		sep := -1
		if len(f) > 6 {
			if i := slices.Index(f[6:], "-"); i >= 0 {
				sep = 6 + i
			}
		}
		if sep < 0 || len(f) < sep+4 {
			return nil, fmt.Errorf("cgroup: malformed mountinfo line %q", line)
		}
		m := cgroupMount{root: cgroupUnescapeMountinfo(f[3]), mountpoint: cgroupUnescapeMountinfo(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.keys = []string{""}
		case "cgroup":
			for opt := range strings.SplitSeq(f[sep+3], ",") {
				if cgroupIsV1Controller(opt) {
					m.keys = append(m.keys, opt)
				}
			}
		}
		if len(m.keys) > 0 {
			mounts = append(mounts, m)
		}
	}
	return mounts, nil
}

// cgroupIsV1Controller tells the controller names and name=... among the
// super options of a cgroup v1 mount from the other options.
func cgroupIsV1Controller(opt string) bool {
	switch opt {
	case "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer",
		"net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return strings.HasPrefix(opt, "name=")
}

// cgroupUnescapeMountinfo undoes the octal escapes (\040 for a space and
// so on) the kernel puts in mountinfo paths.
func cgroupUnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup maps each controller (and "" for cgroup v2) to the
// cgroup path given for it in the text of /proc/<pid>/cgroup.
func parseProcCgroup(text string) (map[string]string, error) {
	own := make(map[string]string)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup: malformed /proc/self/cgroup line %q", line)
		}
		if parts[1] == "" {
			if parts[0] == "0" {
				own[""] = parts[2]
			}
			continue
		}
		for ctl := range strings.SplitSeq(parts[1], ",") {
			own[ctl] = parts[2]
		}
	}
	return own, nil
}

// cgroupPaths computes the container's directory in every mounted
// hierarchy. The first mount of a hierarchy wins.
func cgroupPaths(mounts []cgroupMount, own map[string]string, id, cgroupsPath string) (map[string]string, error) {
	p := cgroupsPath
	if p == "" {
		if id == "" || id == "." || id == ".." || strings.Contains(id, "/") {
			return nil, fmt.Errorf("cgroup: invalid container id %q", id)
		}
		p = cgroupDefaultParent + "/" + id
	}
	paths := make(map[string]string)
	for _, m := range mounts {
		if _, seen := paths[m.keys[0]]; seen {
			continue
		}
		dir, err := m.dir(p, own)
		if err != nil {
			return nil, err
		}
		for _, k := range m.keys {
			if _, seen := paths[k]; !seen {
				paths[k] = dir
			}
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("cgroup: no cgroup hierarchy is mounted")
	}
	return paths, nil
}

// dir places cgroupsPath in the mounted hierarchy m.
func (m cgroupMount) dir(cgroupsPath string, own map[string]string) (string, error) {
	name := m.keys[0]
	if name == "" {
		name = "unified"
	}
	rel := path.Clean(cgroupsPath)
	if !path.IsAbs(cgroupsPath) {
		self, ok := own[m.keys[0]]
		if !ok {
			return "", fmt.Errorf("cgroup: /proc/self/cgroup has no %s entry for relative cgroupsPath %q", name, cgroupsPath)
		}
		full := path.Join("/", self, cgroupsPath)
		switch {
		case m.root == "/":
			rel = full
		case full == m.root:
			rel = "/"
		case strings.HasPrefix(full, m.root+"/"):
			rel = strings.TrimPrefix(full, m.root)
		default:
			return "", fmt.Errorf("cgroup: %s is outside the part %s of the %s hierarchy mounted at %s", full, m.root, name, m.mountpoint)
		}
	}
	if rel == "/" {
		return "", fmt.Errorf("cgroup: cgroupsPath %q names the root of the %s hierarchy", cgroupsPath, name)
	}
	return filepath.Join(m.mountpoint, rel), nil
}

// cgroupRequiredControllers lists the controllers the resources r need,
// using v2 names (io instead of blkio) when v2 is set. Device rules need no
// controller on v2 (they are eBPF there), and the v1-only memory knobs are
// ignored on v2.
func cgroupRequiredControllers(r *specs.LinuxResources, v2 bool) []string {
	if r == nil {
		return nil
	}
	var need []string
	add := func(ok bool, name string) {
		if ok && !slices.Contains(need, name) {
			need = append(need, name)
		}
	}
	if m := r.Memory; m != nil {
		add(m.Limit != nil || m.Reservation != nil || m.Swap != nil, "memory")
		add(!v2 && (m.Kernel != nil || m.KernelTCP != nil || m.Swappiness != nil ||
			(m.DisableOOMKiller != nil && *m.DisableOOMKiller) || m.UseHierarchy != nil), "memory")
	}
	if c := r.CPU; c != nil {
		add(c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil || c.Idle != nil ||
			c.RealtimeRuntime != nil || c.RealtimePeriod != nil, "cpu")
		add(c.Cpus != "" || c.Mems != "", "cpuset")
	}
	add(r.Pids != nil && r.Pids.Limit != nil, "pids")
	if b := r.BlockIO; b != nil {
		blkio := "blkio"
		if v2 {
			blkio = "io"
		}
		add(b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
			len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
			len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0, blkio)
	}
	add(len(r.HugepageLimits) > 0, "hugetlb")
	if n := r.Network; n != nil {
		add(n.ClassID != nil, "net_cls")
		add(len(n.Priorities) > 0, "net_prio")
	}
	add(len(r.Rdma) > 0, "rdma")
	add(!v2 && len(r.Devices) > 0, "devices")
	return need
}

// cgroupCheckV1 fails, before anything is created, if a controller the
// config needs is not mounted.
func cgroupCheckV1(paths map[string]string, need []string) error {
	for _, n := range need {
		if _, ok := paths[n]; !ok {
			return fmt.Errorf("cgroup: the config sets %s limits but this host has no %s controller mounted", n, n)
		}
	}
	return nil
}

// cgroupPrepareV2 enables the available controllers in every ancestor of
// leaf, as runc does, so that the leaf has their files for limits and
// statistics, and then checks the leaf has every controller in need.
func cgroupPrepareV2(leaf string, need []string) error {
	var chain []string
	for d := filepath.Dir(leaf); d != "/" && cgroupFileExists(filepath.Join(d, "cgroup.controllers")); d = filepath.Dir(d) {
		chain = append(chain, d)
	}
	for _, dir := range slices.Backward(chain) {
		avail, _ := cgroupReadFile(dir, "cgroup.controllers")
		enabled, _ := cgroupReadFile(dir, "cgroup.subtree_control")
		on := strings.Fields(enabled)
		for ctl := range strings.FieldsSeq(avail) {
			if !slices.Contains(on, ctl) {
				// Best effort: a cgroup with processes of its own refuses
				// (EBUSY); what is still missing is reported below.
				_ = cgroupWriteFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+ctl)
			}
		}
	}
	avail, err := cgroupReadFile(leaf, "cgroup.controllers")
	if err != nil {
		return err
	}
	have := strings.Fields(avail)
	for _, n := range need {
		if !slices.Contains(have, n) {
			return fmt.Errorf("cgroup: the config sets %s limits but the %s controller is not available in %s", n, n, leaf)
		}
	}
	return nil
}

// cgroupInitCpuset fills empty cpuset.cpus and cpuset.mems in dir and its
// ancestors from their parents, top down: a v1 cpuset cgroup starts with
// both empty and refuses processes until they are set.
func cgroupInitCpuset(dir string) error {
	parent := filepath.Dir(dir)
	if parent == dir || !cgroupFileExists(filepath.Join(parent, "cpuset.cpus")) {
		return nil // the hierarchy root
	}
	cpus, err := cgroupReadFile(dir, "cpuset.cpus")
	if err != nil {
		return err
	}
	mems, err := cgroupReadFile(dir, "cpuset.mems")
	if err != nil {
		return err
	}
	if cpus != "" && mems != "" {
		return nil
	}
	if err := cgroupInitCpuset(parent); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		if f.value != "" {
			continue
		}
		pv, err := cgroupReadFile(parent, f.name)
		if err != nil {
			return err
		}
		if err := cgroupWriteFile(filepath.Join(dir, f.name), pv); err != nil {
			return err
		}
	}
	return nil
}

// cgroupWrite is one value to write into one file of a cgroup directory.
type cgroupWrite struct {
	file     string
	value    string
	optional bool // skip silently when the kernel lacks the file
}

// cgroupWriteAll performs ws in order in dir.
func cgroupWriteAll(dir string, ws []cgroupWrite) error {
	for _, w := range ws {
		if w.file == "" || w.file == "." || w.file == ".." || strings.Contains(w.file, "/") {
			return fmt.Errorf("cgroup: invalid cgroup file name %q", w.file)
		}
		p := filepath.Join(dir, w.file)
		if w.optional && !cgroupFileExists(p) {
			continue
		}
		if err := cgroupWriteFile(p, w.value); err != nil {
			return err
		}
	}
	return nil
}

// cgroupSetV1 applies r to the v1 hierarchies in paths.
func cgroupSetV1(paths map[string]string, r *specs.LinuxResources) error {
	if m := r.Memory; m != nil {
		if err := cgroupSetV1Memory(paths["memory"], m); err != nil {
			return err
		}
	}
	bfq := false
	if dir, ok := paths["blkio"]; ok {
		bfq = !cgroupFileExists(filepath.Join(dir, "blkio.weight")) &&
			cgroupFileExists(filepath.Join(dir, "blkio.bfq.weight"))
	}
	groups := []struct {
		key    string
		writes []cgroupWrite
	}{
		{"cpu", cgroupV1CPUWrites(r.CPU)},
		{"cpuset", cgroupCpusetWrites(r.CPU)},
		{"pids", cgroupPidsWrites(r.Pids)},
		{"blkio", cgroupV1BlkioWrites(r.BlockIO, bfq)},
		{"hugetlb", cgroupHugetlbWrites(r.HugepageLimits, false)},
		{"net_cls", cgroupNetClsWrites(r.Network)},
		{"net_prio", cgroupNetPrioWrites(r.Network)},
		{"rdma", cgroupRdmaWrites(r.Rdma)},
		{"devices", cgroupDeviceWrites(r.Devices)},
		// Unified keys go to the v2 hierarchy of a hybrid host.
		{"", cgroupUnifiedWrites(r.Unified)},
	}
	for _, g := range groups {
		if len(g.writes) == 0 {
			continue
		}
		dir, ok := paths[g.key]
		if !ok {
			if g.key == "" {
				return errors.New("cgroup: the config sets unified resources but this host has no cgroup v2 hierarchy")
			}
			return cgroupCheckV1(paths, []string{g.key})
		}
		if err := cgroupWriteAll(dir, g.writes); err != nil {
			return err
		}
	}
	return nil
}

// cgroupSetV1Memory applies m in the v1 memory directory dir, ordering the
// limit and memory+swap writes so that memsw never drops below the limit.
func cgroupSetV1Memory(dir string, m *specs.LinuxMemory) error {
	cur := int64(-1)
	if m.Limit != nil && m.Swap != nil {
		s, err := cgroupReadFile(dir, "memory.limit_in_bytes")
		if err != nil {
			return err
		}
		if cur, err = strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, "memory.limit_in_bytes"), err)
		}
	}
	return cgroupWriteAll(dir, cgroupV1MemoryWrites(m, cur))
}

// cgroupV1MemoryWrites converts m for a v1 memory cgroup whose current
// limit is curLimit. memory.memsw.limit_in_bytes must stay at or above
// memory.limit_in_bytes at every step, so when both change the swap limit
// goes first if it is not below the current limit.
func cgroupV1MemoryWrites(m *specs.LinuxMemory, curLimit int64) []cgroupWrite {
	if m == nil {
		return nil
	}
	var ws []cgroupWrite
	i64 := func(file string, v *int64, optional bool) {
		if v != nil {
			ws = append(ws, cgroupWrite{file, strconv.FormatInt(*v, 10), optional})
		}
	}
	i64("memory.soft_limit_in_bytes", m.Reservation, false)
	if m.Limit != nil && m.Swap != nil && (*m.Swap == -1 || *m.Swap >= curLimit) {
		i64("memory.memsw.limit_in_bytes", m.Swap, false)
		i64("memory.limit_in_bytes", m.Limit, false)
	} else {
		i64("memory.limit_in_bytes", m.Limit, false)
		i64("memory.memsw.limit_in_bytes", m.Swap, false)
	}
	// Kernel memory limits are gone from recent kernels.
	i64("memory.kmem.limit_in_bytes", m.Kernel, true)
	i64("memory.kmem.tcp.limit_in_bytes", m.KernelTCP, true)
	if m.Swappiness != nil {
		ws = append(ws, cgroupWrite{"memory.swappiness", strconv.FormatUint(*m.Swappiness, 10), false})
	}
	if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		ws = append(ws, cgroupWrite{"memory.oom_control", "1", false})
	}
	if m.UseHierarchy != nil {
		ws = append(ws, cgroupWrite{"memory.use_hierarchy", cgroupBool(*m.UseHierarchy), true})
	}
	return ws
}

// cgroupV1CPUWrites converts the cpu controller part of c for v1. Periods
// go before the quotas they bound.
func cgroupV1CPUWrites(c *specs.LinuxCPU) []cgroupWrite {
	if c == nil {
		return nil
	}
	var ws []cgroupWrite
	if c.Shares != nil {
		ws = append(ws, cgroupWrite{"cpu.shares", strconv.FormatUint(*c.Shares, 10), false})
	}
	if c.Period != nil {
		ws = append(ws, cgroupWrite{"cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10), false})
	}
	if c.Quota != nil {
		ws = append(ws, cgroupWrite{"cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10), false})
	}
	if c.Burst != nil {
		ws = append(ws, cgroupWrite{"cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10), false})
	}
	if c.RealtimePeriod != nil {
		ws = append(ws, cgroupWrite{"cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10), false})
	}
	if c.RealtimeRuntime != nil {
		ws = append(ws, cgroupWrite{"cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10), false})
	}
	if c.Idle != nil {
		ws = append(ws, cgroupWrite{"cpu.idle", strconv.FormatInt(*c.Idle, 10), false})
	}
	return ws
}

// cgroupCpusetWrites converts the cpuset part of c; the files are the same
// on v1 and v2.
func cgroupCpusetWrites(c *specs.LinuxCPU) []cgroupWrite {
	if c == nil {
		return nil
	}
	var ws []cgroupWrite
	if c.Cpus != "" {
		ws = append(ws, cgroupWrite{"cpuset.cpus", c.Cpus, false})
	}
	if c.Mems != "" {
		ws = append(ws, cgroupWrite{"cpuset.mems", c.Mems, false})
	}
	return ws
}

// cgroupPidsWrites converts p; the file is the same on v1 and v2.
func cgroupPidsWrites(p *specs.LinuxPids) []cgroupWrite {
	if p == nil || p.Limit == nil {
		return nil
	}
	return []cgroupWrite{{"pids.max", cgroupPidsMax(*p.Limit), false}}
}

// cgroupPidsMax converts a pids limit: zero or negative means no limit.
func cgroupPidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

// cgroupV1BlkioWrites converts b for v1. With bfq the kernel has only the
// BFQ scheduler's weight files; leaf weights existed only for CFQ.
func cgroupV1BlkioWrites(b *specs.LinuxBlockIO, bfq bool) []cgroupWrite {
	if b == nil {
		return nil
	}
	weight, weightDevice := "blkio.weight", "blkio.weight_device"
	if bfq {
		weight, weightDevice = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	var ws []cgroupWrite
	if b.Weight != nil {
		ws = append(ws, cgroupWrite{weight, strconv.Itoa(int(*b.Weight)), false})
	}
	if b.LeafWeight != nil {
		ws = append(ws, cgroupWrite{"blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)), true})
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			ws = append(ws, cgroupWrite{weightDevice, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight), false})
		}
		if d.LeafWeight != nil {
			ws = append(ws, cgroupWrite{"blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight), true})
		}
	}
	throttles := []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for _, d := range t.devs {
			ws = append(ws, cgroupWrite{t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate), false})
		}
	}
	return ws
}

// cgroupHugetlbWrites converts hugepage limits. The spec asks for
// reservation limits where the kernel has them, so those are set too.
func cgroupHugetlbWrites(limits []specs.LinuxHugepageLimit, v2 bool) []cgroupWrite {
	limit, rsvd := ".limit_in_bytes", ".rsvd.limit_in_bytes"
	if v2 {
		limit, rsvd = ".max", ".rsvd.max"
	}
	var ws []cgroupWrite
	for _, l := range limits {
		v := strconv.FormatUint(l.Limit, 10)
		ws = append(ws,
			cgroupWrite{"hugetlb." + l.Pagesize + limit, v, false},
			cgroupWrite{"hugetlb." + l.Pagesize + rsvd, v, true})
	}
	return ws
}

// cgroupNetClsWrites converts the class ID of n (v1 only).
func cgroupNetClsWrites(n *specs.LinuxNetwork) []cgroupWrite {
	if n == nil || n.ClassID == nil {
		return nil
	}
	return []cgroupWrite{{"net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10), false}}
}

// cgroupNetPrioWrites converts the interface priorities of n (v1 only);
// the kernel takes one interface per write.
func cgroupNetPrioWrites(n *specs.LinuxNetwork) []cgroupWrite {
	if n == nil {
		return nil
	}
	var ws []cgroupWrite
	for _, p := range n.Priorities {
		ws = append(ws, cgroupWrite{"net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority), false})
	}
	return ws
}

// cgroupRdmaWrites converts RDMA limits, one device per write; the file is
// the same on v1 and v2.
func cgroupRdmaWrites(rdma map[string]specs.LinuxRdma) []cgroupWrite {
	var ws []cgroupWrite
	for _, dev := range slices.Sorted(maps.Keys(rdma)) {
		l := rdma[dev]
		line := dev
		if l.HcaHandles != nil {
			line += fmt.Sprintf(" hca_handle=%d", *l.HcaHandles)
		}
		if l.HcaObjects != nil {
			line += fmt.Sprintf(" hca_object=%d", *l.HcaObjects)
		}
		if line != dev {
			ws = append(ws, cgroupWrite{"rdma.max", line, false})
		}
	}
	return ws
}

// cgroupDeviceWrites converts v1 device rules, in order, since later rules
// refine earlier ones.
func cgroupDeviceWrites(devs []specs.LinuxDeviceCgroup) []cgroupWrite {
	var ws []cgroupWrite
	for _, d := range devs {
		file, rule := cgroupDeviceRule(d)
		ws = append(ws, cgroupWrite{file, rule, false})
	}
	return ws
}

// cgroupDeviceRule formats d as a v1 rule such as "c 1:3 rwm" and names the
// file it goes to. A missing type means all devices ("a") and a missing or
// negative major or minor means any ("*").
func cgroupDeviceRule(d specs.LinuxDeviceCgroup) (file, rule string) {
	file = "devices.deny"
	if d.Allow {
		file = "devices.allow"
	}
	typ, access := d.Type, d.Access
	if typ == "" {
		typ = "a"
	}
	if access == "" {
		access = "rwm"
	}
	num := func(n *int64) string {
		if n == nil || *n < 0 {
			return "*"
		}
		return strconv.FormatInt(*n, 10)
	}
	return file, fmt.Sprintf("%s %s:%s %s", typ, num(d.Major), num(d.Minor), access)
}

// cgroupUnifiedWrites converts the unified map, in key order.
func cgroupUnifiedWrites(unified map[string]string) []cgroupWrite {
	var ws []cgroupWrite
	for _, k := range slices.Sorted(maps.Keys(unified)) {
		ws = append(ws, cgroupWrite{k, unified[k], false})
	}
	return ws
}

// cgroupSetV2 applies r to the v2 directory dir.
func cgroupSetV2(dir string, r *specs.LinuxResources) error {
	mem, err := cgroupV2MemoryWrites(r.Memory)
	if err != nil {
		return err
	}
	cpu, err := cgroupV2CPUWrites(r.CPU)
	if err != nil {
		return err
	}
	ws := slices.Concat(mem, cpu,
		cgroupCpusetWrites(r.CPU),
		cgroupPidsWrites(r.Pids),
		cgroupV2IOWrites(r.BlockIO),
		cgroupHugetlbWrites(r.HugepageLimits, true),
		cgroupRdmaWrites(r.Rdma),
		// Last, so that explicit unified keys override converted values.
		cgroupUnifiedWrites(r.Unified))
	if err := cgroupWriteAll(dir, ws); err != nil {
		return err
	}
	// Device rules are an eBPF program on v2 (cgroup_devices_bpf_linux.go).
	// Only a pure v2 host gets here: a hybrid one applies them through the
	// v1 devices controller in cgroupSetV1, and one mechanism is enough.
	return cgroupSetV2Devices(dir, r.Devices)
}

// cgroupV2MemoryWrites converts m for v2. Kernel memory, swappiness, the
// OOM killer switch and use_hierarchy have no v2 equivalent and are
// ignored, as the spec allows.
func cgroupV2MemoryWrites(m *specs.LinuxMemory) ([]cgroupWrite, error) {
	if m == nil {
		return nil, nil
	}
	var ws []cgroupWrite
	if m.Limit != nil {
		ws = append(ws, cgroupWrite{"memory.max", cgroupV2Limit(*m.Limit), false})
	}
	if m.Reservation != nil {
		ws = append(ws, cgroupWrite{"memory.low", cgroupV2Limit(*m.Reservation), false})
	}
	swap, err := cgroupSwapMax(m.Swap, m.Limit)
	if err != nil {
		return nil, err
	}
	if swap != "" {
		ws = append(ws, cgroupWrite{"memory.swap.max", swap, false})
	}
	return ws, nil
}

// cgroupV2Limit formats a byte limit, negative meaning none.
func cgroupV2Limit(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// cgroupSwapMax converts the spec's memory+swap limit to memory.swap.max,
// which counts swap alone; "" means leave it alone. Like runc, an unlimited
// memory limit with no swap setting makes swap unlimited too.
func cgroupSwapMax(swap, limit *int64) (string, error) {
	switch {
	case swap == nil:
		if limit != nil && *limit == -1 {
			return "max", nil
		}
		return "", nil
	case *swap == -1:
		return "max", nil
	case *swap == 0:
		return "", nil
	case limit == nil || *limit <= 0:
		return "", errors.New("cgroup: a swap limit needs a memory limit on cgroup v2")
	case *swap < *limit:
		return "", fmt.Errorf("cgroup: memory+swap limit %d is below the memory limit %d", *swap, *limit)
	}
	return strconv.FormatInt(*swap-*limit, 10), nil
}

// cgroupV2CPUWrites converts the cpu controller part of c for v2.
func cgroupV2CPUWrites(c *specs.LinuxCPU) ([]cgroupWrite, error) {
	if c == nil {
		return nil, nil
	}
	if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
		return nil, errors.New("cgroup: realtime CPU limits are not supported on cgroup v2")
	}
	var ws []cgroupWrite
	if c.Shares != nil && *c.Shares != 0 {
		ws = append(ws, cgroupWrite{"cpu.weight", strconv.FormatUint(cgroupCPUWeight(*c.Shares), 10), false})
	}
	if c.Quota != nil || c.Period != nil {
		ws = append(ws, cgroupWrite{"cpu.max", cgroupCPUMax(c.Quota, c.Period), false})
	}
	if c.Burst != nil {
		ws = append(ws, cgroupWrite{"cpu.max.burst", strconv.FormatUint(*c.Burst, 10), false})
	}
	if c.Idle != nil {
		ws = append(ws, cgroupWrite{"cpu.idle", strconv.FormatInt(*c.Idle, 10), false})
	}
	return ws, nil
}

// cgroupCPUWeight maps v1 shares [2, 262144] onto v2 weight [1, 10000].
func cgroupCPUWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// cgroupCPUMax formats cpu.max: "max" for no quota, and the period only
// when one is given (the kernel keeps the current one otherwise).
func cgroupCPUMax(quota *int64, period *uint64) string {
	s := "max"
	if quota != nil && *quota > 0 {
		s = strconv.FormatInt(*quota, 10)
	}
	if period != nil && *period != 0 {
		s += " " + strconv.FormatUint(*period, 10)
	}
	return s
}

// cgroupV2IOWrites converts b for v2: weights are rescaled to io.weight's
// range and throttles become io.max lines. Leaf weights have no v2
// equivalent.
func cgroupV2IOWrites(b *specs.LinuxBlockIO) []cgroupWrite {
	if b == nil {
		return nil
	}
	var ws []cgroupWrite
	if b.Weight != nil {
		ws = append(ws, cgroupWrite{"io.weight", strconv.FormatUint(cgroupIOWeight(*b.Weight), 10), false})
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			ws = append(ws, cgroupWrite{"io.weight", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, cgroupIOWeight(*d.Weight)), false})
		}
	}
	throttles := []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for _, d := range t.devs {
			ws = append(ws, cgroupWrite{"io.max", fmt.Sprintf("%d:%d %s=%d", d.Major, d.Minor, t.key, d.Rate), false})
		}
	}
	return ws
}

// cgroupIOWeight maps a v1 blkio weight [10, 1000] onto v2 io.weight
// [1, 10000], as runc does.
func cgroupIOWeight(w uint16) uint64 {
	v := uint64(min(max(w, 10), 1000))
	return 1 + (v-10)*9999/990
}

// cgroupBool formats a flag for a cgroup file.
func cgroupBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// cgroupWriteFile writes value into the existing cgroup file p in a single
// write, as the kernel parses each write on its own.
func cgroupWriteFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cgroup: write %s: %w (value %q)", p, err, value)
	}
	return nil
}

// cgroupReadFile returns the trimmed content of file name in dir.
func cgroupReadFile(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cgroup: read %s: %w", p, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func cgroupFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func cgroupDirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
