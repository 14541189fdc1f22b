package cgroup

// Sub-cgroups for exec --cgroup. runc's `exec --cgroup` puts the exec'd
// process in cgroups below the container's: one path for every hierarchy
// ("--cgroup sub"), or per controller ("--cgroup memory:sub",
// "--cgroup cpu,cpuacct:sub"). The sub-cgroups are the container's to
// make (it may, with a writable /sys/fs/cgroup), so the path is hostile
// input and must stay below the container's directory: it is cleaned and
// checked lexically (".." cannot climb out), then opened with openat2
// RESOLVE_BENEATH from the container's directory, so that the kernel
// refuses an escape too. cgroupfs has no symbolic links, and a cgroup can
// only be renamed within its parent, so the path checked is the path
// written to.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseSubCgroups parses exec --cgroup arguments as runc does: each is
// "CONTROLLER[,CONTROLLER...]:PATH", or a single argument is a PATH for
// every hierarchy (the key ""). No arguments give nil.
func ParseSubCgroups(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	sub := make(map[string]string, len(args))
	for _, a := range args {
		ctls, p, ok := strings.Cut(a, ":")
		if !ok {
			if len(args) != 1 {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (missing <controller>: prefix)", a)
			}
			sub[""] = a
			continue
		}
		for ctl := range strings.SplitSeq(ctls, ",") {
			if ctl == "" {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (empty <controller> prefix)", a)
			}
			if _, dup := sub[ctl]; dup {
				return nil, fmt.Errorf("invalid --cgroup argument(s): controller %s specified multiple times", ctl)
			}
			sub[ctl] = p
		}
	}
	return sub, nil
}

// Sub returns the container's cgroups with the directories that sub (from
// ParseSubCgroups) names replaced by its sub-cgroups, for ForkInto. Each
// must exist already. A controller named in sub moves every controller
// mounted with it (cpu with cpuacct, say), as they share the directory.
// The result is for placing one process; it owns no directory.
func (c *Cgroup) Sub(sub map[string]string) (*Cgroup, error) {
	paths := maps.Clone(c.Paths)
	set := map[string]string{} // base directory -> the sub-cgroup chosen for it
	for _, ctl := range slices.Sorted(maps.Keys(sub)) {
		rel := sub[ctl]
		bases := uniqueDirs(c.Paths)
		if ctl != "" {
			base, ok := c.Paths[ctl]
			if !ok {
				return nil, fmt.Errorf("unknown controller %s in --cgroup (this host has no %s hierarchy)", ctl, ctl)
			}
			bases = []string{base}
		}
		for _, base := range bases {
			dir, err := subDir(base, rel)
			if err != nil {
				return nil, err
			}
			if prev, ok := set[base]; ok && prev != dir {
				return nil, fmt.Errorf("invalid --cgroup argument(s): %s and %s are in the same hierarchy", prev, dir)
			}
			set[base] = dir
		}
	}
	for k, base := range c.Paths {
		if dir, ok := set[base]; ok {
			paths[k] = dir
		}
	}
	return &Cgroup{Paths: paths}, nil
}

// subDir is the sub-cgroup rel of the container's directory base: base
// itself or a directory below it that exists, checked as the file's
// comment says.
func subDir(base, rel string) (string, error) {
	dir := path.Join(base, rel)
	if dir == base {
		return base, nil
	}
	if !strings.HasPrefix(dir, base+"/") {
		return "", fmt.Errorf("bad sub cgroup path: %s", rel)
	}
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("error adding pid to cgroups: %w", &os.PathError{Op: "open", Path: base, Err: err})
	}
	defer unix.Close(fd)
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	sfd, err := unix.Openat2(fd, strings.TrimPrefix(dir, base+"/"), how)
	if errors.Is(err, unix.EXDEV) {
		return "", fmt.Errorf("bad sub cgroup path: %s", rel)
	}
	if err != nil {
		return "", fmt.Errorf("error adding pid to cgroups: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	unix.Close(sfd)
	return dir, nil
}
