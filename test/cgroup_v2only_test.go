package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestPureCgroupV2: crier on a host that shows only cgroup v2. This host is
// hybrid, so the test gives crier a private mount namespace with the cgroup2
// hierarchy alone on /sys/fs/cgroup: crier then takes the pure-v2 paths
// (CLONE_INTO_CGROUP, the eBPF device program as the only device control).
// The v2 hierarchy here has no memory, cpu or pids controller (they are
// bound to v1), so placement and device rules are what can be checked.
// /dev/loop-control (c 10:237) is not among the devices a container may
// use by default (and it opens without any capability); a rule in
// linux.resources.devices allows it.
func TestPureCgroupV2(t *testing.T) {
	t.Parallel()
	script := `grep -q '^0::/$' /proc/self/cgroup && echo cgroupns=rooted
mknod /tmp/loopctl c 10 237
if dd if=/tmp/loopctl of=/dev/null bs=1 count=0 2>/dev/null; then echo loopctl=opened; else echo loopctl=denied; fi
if echo x > /dev/null; then echo null=writable; fi`
	for _, tc := range []struct {
		name  string
		allow bool
		want  string
	}{
		{"default rules", false, "denied"},
		{"loop-control allowed", true, "opened"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
				// crier spec, run on this hybrid host, has no cgroup
				// namespace (as runc's); the one it writes on a v2
				// host has.
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
				caps := s.Process.Capabilities
				caps.Bounding = append(caps.Bounding, "CAP_MKNOD")
				caps.Effective = append(caps.Effective, "CAP_MKNOD")
				caps.Permitted = append(caps.Permitted, "CAP_MKNOD")
				if tc.allow {
					major, minor := int64(10), int64(237)
					s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
						specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rm"})
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
			defer cancel()
			cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
				`umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`, "sh",
				suite.crier, "--root", e.root, "run", "--bundle", b, id)
			out, err := cmd.CombinedOutput()
			t.Logf("run in a cgroup-v2-only mount namespace: %v\n%s", err, out)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			kv := keyValues(string(out))
			wantKV(t, kv, "cgroupns", "rooted")
			wantKV(t, kv, "loopctl", tc.want)
			wantKV(t, kv, "null", "writable")
			if strings.Contains(string(out), "crier:") {
				t.Errorf("run printed an error: %s", out)
			}
			// Its v2 cgroup, seen in the host's hybrid layout, is gone.
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/unified", id)); !os.IsNotExist(err) {
				t.Errorf("the container's v2 cgroup is left: %v", err)
			}
		})
	}
}
