package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests the mode of tmpfs mounts as runc gives it (runc's
// run.bats "runc run with tmpfs", "with tmpfs perms" and mounts.bats
// "tmpfs mount mode="): a tmpfs takes the mode of the directory it covers,
// setuid, setgid and sticky bits included, unless its options give one;
// on a destination that does not exist it keeps the tmpfs default, 1777,
// and the directories made for it are 0755. The rootfs's directory itself
// is never changed.

// tmpfsMode runs `stat -c %a DEST; grep DEST /proc/self/mounts` in a
// container with a tmpfs on dest with options, after prepare (when not
// nil) has changed the rootfs, and returns the mode and the mount line.
func tmpfsMode(t *testing.T, e *env, dest string, options []string, prepare func(rootfs string)) (mode, mount string) {
	t.Helper()
	b := e.bundle([]string{"sh", "-c", "stat -c %a " + dest + "; grep ' " + dest + " ' /proc/self/mounts"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: options})
	})
	if prepare != nil {
		prepare(filepath.Join(b, "rootfs"))
	}
	out, _ := e.runOK(e.id(), b, nil)
	mode, mount, _ = strings.Cut(strings.TrimSpace(out), "\n")
	return mode, mount
}

// chmodIn makes dir below rootfs with mode (chmod, so that the umask does
// not change it).
func chmodIn(t *testing.T, dir string, mode os.FileMode) func(rootfs string) {
	return func(rootfs string) {
		p := filepath.Join(rootfs, dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

var modeOption = regexp.MustCompile(`\bmode=([0-7]+)\b`)

func TestParityTmpfsMode(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name     string
		dest     string
		options  []string
		dirMode  os.FileMode // 0: the destination is not in the rootfs
		want     string
		wantOpt  string // the mode= that /proc/self/mounts shows; "" for none
		wantHost string // the rootfs directory's mode after the run
	}{
		{"inherits every bit", "/tmp", []string{"noexec", "nosuid", "nodev", "rprivate"},
			os.ModeSetuid | os.ModeSetgid | os.ModeSticky | 0o777, "7777", "7777", "7777"},
		{"inherits", "/tmpfs", []string{"rw", "nodev", "nosuid"}, 0o710, "710", "710", "710"},
		{"mode= wins", "/tmpfs", []string{"rw", "nodev", "nosuid", "mode=1500"}, 0o710, "1500", "1500", "710"},
		{"mode= on an existing directory", "/tmp/test", []string{"mode=0444"}, 0o755, "444", "444", "755"},
		{"missing destination", "/non-existent/foo/bar/baz", []string{"rw", "nodev", "nosuid"}, 0, "1777", "", ""},
		{"missing destination, mode=", "/tmp/test2", []string{"mode=0444"}, 0, "444", "444", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rootfs string
			prepare := func(r string) {
				rootfs = r
				if tc.dirMode != 0 {
					chmodIn(t, tc.dest, tc.dirMode)(r)
				}
			}
			mode, mount := tmpfsMode(t, e, tc.dest, tc.options, prepare)
			if mode != tc.want {
				t.Errorf("the tmpfs's mode is %s, want %s", mode, tc.want)
			}
			opt := ""
			if m := modeOption.FindStringSubmatch(mount); m != nil {
				opt = m[1]
			}
			if opt != tc.wantOpt {
				t.Errorf("mount line %q has mode=%q, want %q", mount, opt, tc.wantOpt)
			}
			if tc.wantHost != "" {
				fi, err := os.Stat(filepath.Join(rootfs, tc.dest))
				if err != nil {
					t.Fatal(err)
				}
				if got := modeString(fi.Mode()); got != tc.wantHost {
					t.Errorf("the rootfs's %s is %s after the run, want %s (unchanged)", tc.dest, got, tc.wantHost)
				}
			}
			if tc.dirMode == 0 && tc.dest == "/non-existent/foo/bar/baz" {
				for _, d := range []string{"/non-existent", "/non-existent/foo", "/non-existent/foo/bar"} {
					fi, err := os.Stat(filepath.Join(rootfs, d))
					if err != nil || modeString(fi.Mode()) != "755" {
						t.Errorf("made %s: %v, mode %v; want 755", d, err, fi)
					}
				}
			}
		})
	}
}

// modeString is a mode as stat -c %a prints it.
func modeString(m os.FileMode) string {
	v := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		v |= 0o1000
	}
	return strconv.FormatUint(uint64(v), 8)
}
