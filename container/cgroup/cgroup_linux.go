package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/rawfile"
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
	// Created lists every directory Prepare made, each parent before its
	// children. Destroy uses it to remove the intermediate parents this
	// container brought into being, and only those, even when it runs in
	// another process than Prepare did.
	Created []string `json:"created,omitempty"`
	// SharedParent is set in the state of a container made by a crier
	// older than this package's default of /<id>, which put containers
	// without a cgroupsPath in /crier/<id>: the /crier parents belonged
	// to no one container, so whichever Destroy finds them empty removes
	// them. New never sets it; it is read so that such a container's
	// delete leaves nothing behind.
	SharedParent bool `json:"sharedParent,omitempty"`
}

const (
	// rmdirAttempts and rmdirDelay bound how long Destroy waits
	// for just-killed processes to leave a cgroup (about 1.3s in total).
	rmdirAttempts = 8
	rmdirDelay    = 5 * time.Millisecond
)

// New computes the directories for a container from linux.cgroupsPath,
// which is absolute (relative to each hierarchy's root as mounted here) or
// relative (to the caller's own cgroup in each hierarchy, from
// /proc/self/cgroup); an empty cgroupsPath means "/<id>", as in runc and
// crun. It changes nothing on disk, so that a failed create has nothing
// to undo.
func New(id string, cgroupsPath string) (*Cgroup, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	mounts, err := parseMounts(string(mountinfo))
	if err != nil {
		return nil, err
	}
	own, err := parseProcCgroup(string(self))
	if err != nil {
		return nil, err
	}
	paths, err := containerDirs(mounts, own, id, cgroupsPath)
	if err != nil {
		return nil, err
	}
	return &Cgroup{Paths: paths}, nil
}

// Prepare checks that the host has the controllers r needs and creates the
// directories, ready for a process to be born in them (ForkInto); Limit
// then applies r. With r == nil nothing is checked. A limit on a controller
// the host lacks is an error naming the controller; a missing controller
// nobody asked for is skipped. On error Prepare removes the directories it
// created. Prepare and Limit read a zero where runc reads "not set" as not
// set (withZeroAsUnset).
func (c *Cgroup) Prepare(r *specs.LinuxResources) (err error) {
	r = withZeroAsUnset(r)
	v2 := unifiedMode(c.Paths)
	need := requiredControllers(r, v2)
	if !v2 {
		if err := checkV1(c.Paths, need); err != nil {
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
		return prepareV2(c.Paths[""], need)
	}
	if dir, ok := c.Paths["cpuset"]; ok {
		// An empty v1 cpuset refuses tasks.
		if err := initCpuset(dir); err != nil {
			return err
		}
	}
	return prepareHybrid(c.Paths, r)
}

// Limit applies the resource limits r to the directories Prepare made.
func (c *Cgroup) Limit(r *specs.LinuxResources) error {
	r = withZeroAsUnset(r)
	switch {
	case r == nil:
		return nil
	case unifiedMode(c.Paths):
		return setV2(c.Paths[""], r)
	}
	if err := c.grantRealtime(r.CPU); err != nil {
		return err
	}
	return setV1(c.Paths, r)
}

// Staged reports whether Create forks init before the directories are
// made and moves it into them afterwards (Adopt), rather than fork it
// straight into them: on a host with cgroup v1 controllers, where making a
// directory in every hierarchy (and filling a cpuset) takes milliseconds
// that the start of init's Go runtime can overlap. On a v2 host the one
// directory is made at once and init is born in it (ForkInto), which
// costs less than moving it.
func (c *Cgroup) Staged() bool {
	return !unifiedMode(c.Paths)
}

// Check fails, before anything is made or forked, if the host lacks a v1
// controller that r needs. Prepare checks again.
func (c *Cgroup) Check(r *specs.LinuxResources) error {
	if unifiedMode(c.Paths) {
		return nil
	}
	return checkV1(c.Paths, requiredControllers(withZeroAsUnset(r), false))
}

// Adopt moves the process pid, forked before Prepare (Staged), into
// every directory but those in self, as runc moves its init: by writing
// its pid to each cgroup.procs, which moves all its threads. Such a move
// write-locks the kernel's threadgroup semaphore, and the first after a
// quiet spell waits for an RCU grace period (see ForkInto): 5-25 ms here,
// far longer than init's start-up it was meant to overlap. So a process
// that can moves itself into the v1 directories (SelfDirs, MoveSelf), and
// Adopt is left the v2 one of a hybrid host, or everything when it cannot.
func (c *Cgroup) Adopt(pid int, self []string) error {
	for _, dir := range uniqueDirs(c.Paths) {
		if slices.Contains(self, dir) {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// SelfDirs are the container's directories in the v1 hierarchies: those
// a thread can move itself into alone (MoveSelf).
func (c *Cgroup) SelfDirs() []string {
	var dirs []string
	for _, dir := range uniqueDirs(c.Paths) {
		if dir != c.Paths[""] {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// MoveSelf moves the calling thread into each of dirs, v1 directories
// (SelfDirs), by writing 0 to its "tasks" file: the thread alone, without
// the threadgroup lock a move by pid takes (Adopt). It must be the
// process's main thread, whose cgroups are the process's as
// /proc/PID/cgroup and cgroup.procs show them, and the one that will
// fork or exec what is to run in them; the others stay where they were
// (init's: the Go runtime's, which its execve ends).
func MoveSelf(dirs []string) error {
	if tid, pid := unix.Gettid(), unix.Getpid(); tid != pid {
		return fmt.Errorf("cgroup: thread %d of process %d cannot move the process: not its main thread", tid, pid)
	}
	for _, dir := range dirs {
		if err := rawfile.Write(filepath.Join(dir, "tasks"), []byte("0")); err != nil {
			return &MoveError{Dir: dir, Err: err}
		}
	}
	return nil
}

// MoveError is MoveSelf's failure to move into Dir: an error of the
// cgroups, not of whatever the mover was doing when it moved.
type MoveError struct {
	Dir string
	Err error
}

func (e *MoveError) Error() string {
	return fmt.Sprintf("cgroup: move init into %s: write 0 to %s: %v", e.Dir, filepath.Join(e.Dir, "tasks"), e.Err)
}

func (e *MoveError) Unwrap() error { return e.Err }

// ForkInto runs fork so that the process it forks is born in the cgroups
// Prepare made: no process ever has to be moved into them (but one forked
// with CLONE_PARENT, for a supervisor: see inside).
//
// Moving a process (writing its pid to cgroup.procs) write-locks the
// kernel's global threadgroup semaphore, and the first write-lock after a
// quiet spell waits for an RCU grace period: several milliseconds, the
// largest single cost of a create. A thread that moves itself alone, by
// writing 0 to a v1 hierarchy's "tasks" file, skips that lock; and clone3
// with CLONE_INTO_CGROUP places the child in a v2 cgroup at birth. A child
// starts in its forking thread's v1 cgroups, so fork must fork from the
// calling OS thread, which must be locked to its goroutine and never be
// unlocked: the runtime then discards it, cgroups and all, when its
// goroutine ends. The main thread is never discarded (and its cgroups are
// the process's, as /proc/PID/cgroup shows them), so there init is moved in
// the slow way. sys is the SysProcAttr fork passes to the kernel. If placing
// the child fails, ForkInto kills and reaps it.
func (c *Cgroup) ForkInto(sys *syscall.SysProcAttr, fork func() (int, error)) (int, error) {
	// moveAfter are the cgroups the child is moved into once forked.
	var moveAfter []string
	if dir, ok := c.Paths[""]; ok {
		if sys.Cloneflags&unix.CLONE_PARENT != 0 {
			// clone3 refuses CLONE_PARENT with an exit signal, and
			// Go's always passes SIGCHLD: a child forked for our
			// parent (a supervisor's) is moved the slow way.
			moveAfter = append(moveAfter, dir)
		} else {
			fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return 0, fmt.Errorf("cgroup: %w", &os.PathError{Op: "open", Path: dir, Err: err})
			}
			defer unix.Close(fd)
			sys.UseCgroupFD, sys.CgroupFD = true, fd
		}
	}
	// The freezer is the exception: the forking thread is the shim's,
	// and a pause that came while it was in the container's freezer
	// cgroup froze it wherever it was, holding a runtime lock or a P
	// maybe, and the whole shim with it, resume requests included, for
	// good (found by make fuzz-live). The child joins the freezer once
	// forked; in a frozen cgroup it is frozen there.
	freezer := c.Paths["freezer"]
	var v1 []string
	for _, dir := range uniqueDirs(c.Paths) {
		if dir != c.Paths[""] && dir != freezer {
			v1 = append(v1, dir)
		}
	}
	if freezer != "" && freezer != c.Paths[""] {
		moveAfter = append(moveAfter, freezer)
	}
	if unix.Gettid() != unix.Getpid() {
		for _, dir := range v1 {
			if err := writeFile(filepath.Join(dir, "tasks"), "0"); err != nil {
				return 0, err
			}
		}
	} else {
		moveAfter = append(moveAfter, v1...)
	}
	pid, err := fork()
	if err != nil {
		return pid, err
	}
	for _, dir := range moveAfter {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			// ECHILD for a child forked for our parent: it reaps.
			for {
				if _, werr := unix.Wait4(pid, nil, 0, nil); werr != unix.EINTR {
					break
				}
			}
			return 0, err
		}
	}
	return pid, nil
}

// Pids lists the processes in the container's cgroup, including those in
// cgroups the container made below it. It reads one hierarchy that still
// exists, preferring the unified one, then "pids", "memory" and "freezer",
// which every process of the container is in. When none of the directories
// exists the error wraps fs.ErrNotExist.
func (c *Cgroup) Pids() ([]int, error) {
	dir := ""
	for _, k := range append([]string{"", "pids", "memory", "freezer"}, slices.Sorted(maps.Keys(c.Paths))...) {
		if d, ok := c.Paths[k]; ok && dirExists(d) {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, fmt.Errorf("cgroup: no directory of the container is left: %w", fs.ErrNotExist)
	}
	return procsBelow(dir)
}

// ErrNotEmpty is the error for a container whose cgroup has processes
// before the container exists, in runc's words.
var ErrNotEmpty = errors.New("container's cgroup is not empty")

// RefuseNotEmpty returns ErrNotEmpty, naming the directory and how many
// processes it has, when the container's cgroup exists already with
// processes in it or below it: they would share the container's limits,
// and be killed with it. As runc, it reads one hierarchy (the one Pids
// prefers), so the common case, a cgroup that does not exist yet, costs
// one stat.
func (c *Cgroup) RefuseNotEmpty() error {
	for _, k := range []string{"", "pids", "memory", "freezer", "devices"} {
		dir, ok := c.Paths[k]
		if !ok {
			continue
		}
		if !dirExists(dir) {
			return nil
		}
		pids, err := procsBelow(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			return err
		}
		if len(pids) > 0 {
			return fmt.Errorf("%w: %d process(es) found in %s", ErrNotEmpty, len(pids), dir)
		}
		return nil
	}
	return nil
}

// procsBelow lists the processes in the cgroup dir and the cgroups below
// it. A sub-cgroup that vanishes while it walks is skipped; dir itself
// gone is an error wrapping fs.ErrNotExist.
func procsBelow(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			var ps []int
			ps, err = readProcs(p)
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

// readProcs returns the processes listed in dir's cgroup.procs.
func readProcs(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
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
// parents Prepare created if they are now empty. Directories that are already
// gone are fine, so Destroy can be repeated. A just-killed process takes a
// moment to leave its cgroup, so a busy directory is retried for a short
// while before Destroy gives up.
func (c *Cgroup) Destroy() error {
	leaves := uniqueDirs(c.Paths)
	slices.SortFunc(leaves, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	var errs []error
	c.dropRealtime()
	for _, dir := range leaves {
		// A hierarchy root has no cgroup above it; never empty one out, even
		// when a damaged state file names it. (One that is gone already
		// has nothing to remove.)
		if !fileExists(filepath.Join(filepath.Dir(dir), "cgroup.procs")) {
			if dirExists(dir) {
				errs = append(errs, fmt.Errorf("cgroup: refusing to remove %s: not below a cgroup", dir))
			}
			continue
		}
		if err := removeTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	parents := slices.Clone(c.Created)
	if c.SharedParent {
		for _, dir := range leaves {
			parents = append(parents, filepath.Dir(dir))
		}
	}
	tried := map[string]bool{}
	for _, dir := range slices.Backward(parents) {
		if slices.Contains(leaves, dir) || tried[dir] {
			continue
		}
		tried[dir] = true
		// A parent still shared with another container is busy; leave it.
		// (One being created meanwhile retries its mkdir: mkdirAll.)
		err := unix.Rmdir(dir)
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) &&
			!errors.Is(err, unix.ENOTEMPTY) {
			errs = append(errs, fmt.Errorf("cgroup: rmdir %s: %w", dir, err))
		}
	}
	c.releaseRealtime()
	return errors.Join(errs...)
}

// makeDirs creates every directory in c.Paths with its missing parents,
// recording what it made in c.Created.
func (c *Cgroup) makeDirs() error {
	for _, dir := range uniqueDirs(c.Paths) {
		created, err := mkdirAll(dir)
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

// mkdirAll is os.MkdirAll that reports the directories it made,
// parents first. It retries when a parent vanishes under it, which happens
// when another container's Destroy removes a parent the two share.
func mkdirAll(dir string) ([]string, error) {
	var created []string
	for attempt := 1; ; attempt++ {
		err := mkdirMissing(dir, &created)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return created, err
		}
	}
}

// mkdirMissing makes dir and its missing parents, appending what it
// made to created.
func mkdirMissing(dir string, created *[]string) error {
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

// removeTree removes dir and any cgroups below it, children first,
// retrying while a directory is busy with exiting processes.
func removeTree(dir string) error {
	// Nearly always a leaf with nothing below: one rmdir does it.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := rmdirDelay
	for attempt := 1; ; attempt++ {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && attempt < rmdirAttempts:
			time.Sleep(delay)
			delay *= 2
		default:
			return fmt.Errorf("cgroup: rmdir %s: %w", dir, err)
		}
	}
}

// uniqueDirs returns the distinct directories of paths, sorted, so
// that co-mounted controllers are handled once.
func uniqueDirs(paths map[string]string) []string {
	return slices.Compact(slices.Sorted(maps.Values(paths)))
}

// unifiedMode reports whether limits go to the v2 hierarchy: it is
// there and no v1 hierarchy carries a resource controller (a named v1
// hierarchy such as name=systemd has none).
func unifiedMode(paths map[string]string) bool {
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

// writeFile writes value into the existing cgroup file p in a single
// write, as the kernel parses each write on its own (internal/rawfile).
func writeFile(p, value string) error {
	if err := rawfile.Write(p, []byte(value)); err != nil {
		return fmt.Errorf("cgroup: write %s: %w (value %q)", p, err, value)
	}
	return nil
}

// readFile returns the trimmed content of file name in dir.
func readFile(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	data, err := rawfile.Read(p)
	if err != nil {
		return "", fmt.Errorf("cgroup: read %s: %w", p, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
