package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestValidateTimeOffsets(t *testing.T) {
	ok := map[string]specs.LinuxTimeOffset{"monotonic": {Secs: -5}, "boottime": {Secs: 10, Nanosecs: 999_999_999}}
	if err := validateTimeOffsets(ok); err != nil {
		t.Errorf("valid offsets: %v", err)
	}
	if err := validateTimeOffsets(nil); err != nil {
		t.Errorf("no offsets: %v", err)
	}
	for _, tc := range []struct {
		offsets map[string]specs.LinuxTimeOffset
		err     string
	}{
		{map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}, `linux.timeOffsets: unknown clock "realtime"`},
		{map[string]specs.LinuxTimeOffset{"boottime": {Nanosecs: 1e9}}, "linux.timeOffsets: boottime nanosecs 1000000000 is not below"},
	} {
		err := validateTimeOffsets(tc.offsets)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: err = %v, want %q", tc.offsets, err, tc.err)
		}
	}
}

func TestValidateTimeNamespace(t *testing.T) {
	timeNS := specs.LinuxNamespace{Type: specs.TimeNamespace}
	offsets := map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
	for _, tc := range []struct {
		name string
		l    specs.Linux
		err  string
	}{
		{"none", specs.Linux{}, ""},
		{"offsets without namespace", specs.Linux{TimeOffsets: offsets}, "linux.timeOffsets: set without a time namespace"},
		{"join", specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.TimeNamespace, Path: "/proc/1/ns/time"}}}, ""},
		{"join with offsets", specs.Linux{
			Namespaces:  []specs.LinuxNamespace{{Type: specs.TimeNamespace, Path: "/proc/1/ns/time"}},
			TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}},
		}, "joined time namespace"},
		{"bad offsets", specs.Linux{Namespaces: []specs.LinuxNamespace{timeNS}, TimeOffsets: map[string]specs.LinuxTimeOffset{"tai": {}}},
			`unknown clock "tai"`},
		{"new", specs.Linux{Namespaces: []specs.LinuxNamespace{timeNS}, TimeOffsets: offsets}, ""},
	} {
		if tc.err == "" && tc.l.Namespaces != nil && !timeNamespaceSupported() {
			continue
		}
		err := validateTimeNamespace(&tc.l)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestTimeOffsetsText(t *testing.T) {
	got := timeOffsetsText(map[string]specs.LinuxTimeOffset{"monotonic": {Secs: -7, Nanosecs: 3}, "boottime": {Secs: 86400}})
	if want := "boottime 86400 0\nmonotonic -7 3\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// childUptime returns the first field of /proc/uptime and the time
// namespace of a child started with sys. It returns errors rather than
// failing t: it also runs on forkInNewTimeNamespace's goroutine.
func childUptime(sys *syscall.SysProcAttr) (float64, string, error) {
	cmd := exec.Command("/bin/sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time")
	cmd.SysProcAttr = sys
	out, err := cmd.Output()
	if err != nil {
		return 0, "", fmt.Errorf("child: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	up, err := strconv.ParseFloat(strings.Fields(lines[0])[0], 64)
	return up, lines[len(lines)-1], err
}

func TestForkInNewTimeNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if !timeNamespaceSupported() {
		t.Skip("no time namespaces on this kernel")
	}
	const day = 86400
	offsets := map[string]specs.LinuxTimeOffset{"boottime": {Secs: day}, "monotonic": {Secs: -1}}
	hostNS, _ := os.Readlink("/proc/self/ns/time")
	for _, tc := range []struct {
		name string
		sys  *syscall.SysProcAttr
	}{
		{"vfork", nil},
		{"vfork+pidns", &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}},
		{"fork+userns", &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _, err := childUptime(nil)
			if err != nil {
				t.Fatal(err)
			}
			var up float64
			var ns string
			err = forkInNewTimeNamespace(offsets, func() error {
				var err error
				if up, ns, err = childUptime(tc.sys); err != nil {
					return err
				}
				// Frozen now that a process is in it.
				err = writeTimeOffsets(unix.Gettid(), map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}})
				if !errors.Is(err, unix.EACCES) {
					t.Errorf("second write: err = %v, want EACCES", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			after, _, err := childUptime(nil)
			if err != nil {
				t.Fatal(err)
			}
			// /proc/uptime has centisecond resolution: allow one
			// tick either way.
			if up < before+day-0.011 || up > after+day+1 {
				t.Errorf("uptime in the namespace %.2f, want %.2f to %.2f", up, before+day, after+day)
			}
			if ns == hostNS {
				t.Errorf("child is in the host's time namespace %s", ns)
			}
			if self, _ := os.Readlink("/proc/self/ns/time"); self != hostNS {
				t.Errorf("test process moved to time namespace %s", self)
			}
		})
	}
}

func TestWriteTimeOffsetsErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if !timeNamespaceSupported() {
		t.Skip("no time namespaces on this kernel")
	}
	// The process's own (the host's) namespace is frozen.
	err := writeTimeOffsets(os.Getpid(), map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}})
	if !errors.Is(err, unix.EACCES) {
		t.Errorf("write to a frozen namespace: err = %v, want EACCES", err)
	}
	// A monotonic clock that would go negative.
	err = forkInNewTimeNamespace(map[string]specs.LinuxTimeOffset{"monotonic": {Secs: -1 << 40}}, func() error {
		t.Error("fork ran after a failed offset write")
		return nil
	})
	if !errors.Is(err, unix.ERANGE) || !strings.Contains(err.Error(), "monotonic -1099511627776 0") {
		t.Errorf("negative clock: err = %v, want ERANGE naming the offset", err)
	}
	err = forkInNewTimeNamespace(map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}, func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), `unknown clock "realtime"`) {
		t.Errorf("unknown clock: err = %v", err)
	}
}
