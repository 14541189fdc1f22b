package cgroup

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// mountedHierarchy is one mounted cgroup hierarchy, from /proc/self/mountinfo.
type mountedHierarchy struct {
	root       string   // the part of the hierarchy that is mounted, usually "/"
	mountpoint string   // where it is mounted
	keys       []string // v1 controllers and name=..., or "" for cgroup2
}

// parseMounts extracts the cgroup and cgroup2 mounts from the text of
// /proc/self/mountinfo, in mount order.
func parseMounts(mountinfo string) ([]mountedHierarchy, error) {
	var mounts []mountedHierarchy
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
		m := mountedHierarchy{root: unescapeMountinfo(f[3]), mountpoint: unescapeMountinfo(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.keys = []string{""}
		case "cgroup":
			for opt := range strings.SplitSeq(f[sep+3], ",") {
				if isV1Controller(opt) {
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

// isV1Controller tells the controller names and name=... among the
// super options of a cgroup v1 mount from the other options.
func isV1Controller(opt string) bool {
	switch opt {
	case "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer",
		"net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return strings.HasPrefix(opt, "name=")
}

// unescapeMountinfo undoes the octal escapes (\040 for a space and
// so on) the kernel puts in mountinfo paths.
func unescapeMountinfo(s string) string {
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

// containerDirs computes the container's directory in every mounted
// hierarchy. The first mount of a hierarchy wins.
func containerDirs(mounts []mountedHierarchy, own map[string]string, id, cgroupsPath string) (map[string]string, error) {
	p := cgroupsPath
	if p == "" {
		if id == "" || id == "." || id == ".." || strings.Contains(id, "/") {
			return nil, fmt.Errorf("cgroup: invalid container id %q", id)
		}
		// runc's and crun's default, and one directory per hierarchy:
		// a parent of crier's own would cost every create a mkdir and
		// every delete an rmdir in each hierarchy (about 0.3 ms each
		// way on the machines of issue 14).
		p = "/" + id
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
func (m mountedHierarchy) dir(cgroupsPath string, own map[string]string) (string, error) {
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
