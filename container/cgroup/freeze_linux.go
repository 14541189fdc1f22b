package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Pause and resume: the freezer.
//
// On cgroup v1 the freezer controller has its own hierarchy; writing
// FROZEN to freezer.state starts the freeze, and the file reads FREEZING
// until every task has stopped, then FROZEN. Nothing announces the end (the
// file cannot be polled), so Freeze looks again with a growing delay, and
// writes FROZEN again each time: a task that was running when the freeze
// began is asked once more to stop. On cgroup v2 every cgroup has
// cgroup.freeze, and cgroup.events says "frozen 1" once the freeze is
// complete; the kernel notifies a change of cgroup.events as a
// modification, so Freeze waits for it with inotify.
//
// A freeze that does not complete within freezeTimeout (a task stuck in
// the kernel, in an uninterruptible sleep, can hold one off) is undone: the
// cgroup is thawed again and Freeze reports what it saw, so that a paused
// container is always wholly frozen.

// freezeTimeout bounds how long Freeze waits for the freeze to complete.
const freezeTimeout = 5 * time.Second

// ErrNoFreezer is the error for a container whose cgroups have no freezer:
// no v1 freezer hierarchy, and no cgroup.freeze in a v2 one.
var ErrNoFreezer = errors.New("no freezer: neither a cgroup v1 freezer hierarchy nor a cgroup v2 cgroup.freeze")

// Freeze stops every process in the container's cgroups, and its
// sub-cgroups, and returns once all of them are stopped.
func (c *Cgroup) Freeze() error {
	dir, v2, err := c.freezer()
	if err != nil {
		return err
	}
	if v2 {
		return setFrozenV2(dir, true)
	}
	return freezeV1(dir)
}

// Thaw lets the processes of a frozen cgroup run again. A cgroup that is
// not frozen is left alone (one read), so a delete can thaw whatever it
// finds without a cost.
func (c *Cgroup) Thaw() error {
	dir, v2, err := c.freezer()
	if err != nil {
		return err
	}
	frozen, err := c.Frozen()
	if err != nil || !frozen {
		return err
	}
	if v2 {
		return setFrozenV2(dir, false)
	}
	return writeFile(filepath.Join(dir, "freezer.state"), "THAWED")
}

// Frozen reports whether the container's cgroup is frozen, or on its way:
// on v1 freezer.state is not THAWED, on v2 cgroup.freeze is 1.
func (c *Cgroup) Frozen() (bool, error) {
	dir, v2, err := c.freezer()
	if err != nil {
		return false, err
	}
	if v2 {
		s, err := readFile(dir, "cgroup.freeze")
		return s == "1", err
	}
	s, err := readFile(dir, "freezer.state")
	return s != "THAWED", err
}

// ErrFrozen is the error for a container whose cgroup is frozen before
// the container exists, in runc's words.
var ErrFrozen = errors.New("container's cgroup unexpectedly frozen")

// RefuseFrozen returns ErrFrozen, naming the directory, when the
// container's cgroup is there already and frozen: init, born in it, would
// never run, and create would wait for it for good. A cgroup that does not
// exist yet, or has no freezer, is not frozen.
func (c *Cgroup) RefuseFrozen() error {
	dir, _, err := c.freezer()
	if err != nil {
		return nil
	}
	if frozen, err := c.Frozen(); err != nil || !frozen {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrFrozen, dir)
}

// freezer returns the directory whose freezer acts on the container: the v1
// freezer hierarchy's where there is one (a v1 or hybrid host), else the
// v2 directory, which on a hybrid host without a v1 freezer holds the
// container's processes too.
func (c *Cgroup) freezer() (dir string, v2 bool, err error) {
	if d, ok := c.Paths["freezer"]; ok {
		return d, false, nil
	}
	if d, ok := c.Paths[""]; ok && fileExists(filepath.Join(d, "cgroup.freeze")) {
		return d, true, nil
	}
	return "", false, fmt.Errorf("cgroup: %w", ErrNoFreezer)
}

// freezeV1 freezes a v1 freezer cgroup and waits, with bounded retries,
// until freezer.state reads FROZEN.
func freezeV1(dir string) error {
	state := filepath.Join(dir, "freezer.state")
	deadline := time.Now().Add(freezeTimeout)
	delay := 50 * time.Microsecond
	for {
		if err := writeFile(state, "FROZEN"); err != nil {
			writeFile(state, "THAWED")
			return err
		}
		// Reading is what moves the state from FREEZING to FROZEN,
		// once every task has stopped.
		s, err := readFile(dir, "freezer.state")
		switch {
		case err != nil:
			writeFile(state, "THAWED")
			return err
		case s == "FROZEN":
			return nil
		case time.Now().After(deadline):
			writeFile(state, "THAWED")
			return fmt.Errorf("cgroup: freeze %s: still %s after %v, a process would not stop (thawed again)", state, s, freezeTimeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// setFrozenV2 writes cgroup.freeze and waits until cgroup.events reports
// the cgroup frozen (or thawed), watching the file with inotify. A freeze
// that does not complete in time is undone.
func setFrozenV2(dir string, frozen bool) error {
	value, want := "0", "frozen 0"
	if frozen {
		value, want = "1", "frozen 1"
	}
	events := filepath.Join(dir, "cgroup.events")
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("cgroup: freeze %s: %w", dir, os.NewSyscallError("inotify_init1", err))
	}
	defer unix.Close(fd)
	// The watch first, then the write: no change can come between.
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("cgroup: watch %s: %w", events, err)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.freeze"), value); err != nil {
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	for {
		s, err := readFile(dir, "cgroup.events")
		if err != nil {
			return undoV2(dir, frozen, err)
		}
		if hasLine(s, want) {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return undoV2(dir, frozen, fmt.Errorf("cgroup: freeze %s: %s does not say %q after %v", dir, events, want, freezeTimeout))
		}
		if err := waitReadable(fd, left); err != nil {
			return undoV2(dir, frozen, fmt.Errorf("cgroup: watch %s: %w", events, err))
		}
	}
}

// undoV2 thaws a cgroup whose freeze failed, and returns err.
func undoV2(dir string, frozen bool, err error) error {
	if frozen {
		writeFile(filepath.Join(dir, "cgroup.freeze"), "0")
	}
	return err
}

// waitReadable waits until the inotify descriptor fd has events, or d
// passes, and drains them.
func waitReadable(fd int, d time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	ms := int(d.Milliseconds()) + 1
	for {
		_, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		break
	}
	var buf [4096]byte
	for {
		if _, err := unix.Read(fd, buf[:]); err != nil {
			// EAGAIN: drained (or the timeout passed: the caller
			// reads the file once more and decides).
			return nil
		}
	}
}

func hasLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
