package test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests runc 1.5's pids.limit 0 and its update of device rules.

// TestParityPidsLimitZero: pids.limit 0 means a limit of 1, at create and
// at update (runc's cgroups.bats "runc run (pids.limit=0 means 1)" and
// update.bats "update pids.limit"); -1 means none. A container with a
// limit of 1 still starts, with a user namespace too (whose init forks a
// stage two): the limit is written once init has set up.
func TestParityPidsLimitZero(t *testing.T) {
	h := cgroupHostInfo(t)
	for _, userns := range []bool{false, true} {
		e := newEnv(t)
		id := e.id()
		b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: cgRef[int64](0)}}
			if userns {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
				s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
				s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			}
		})
		if userns {
			chownRootfs(t, b)
		}
		e.cliOK("run", "-d", "--bundle", b, id)
		pidsMax := filepath.Join(e.shimState(id).Cgroup.Paths[h.limitsKey("pids")], "pids.max")
		if got := readFile(t, pidsMax); got != "1" {
			t.Errorf("userns %v: pids.limit 0 at create: pids.max = %q, want 1", userns, got)
		}
		for _, tc := range []struct{ args, want string }{
			{"--pids-limit 12345", "12345"}, {"--pids-limit -1", "max"}, {"--pids-limit 0", "1"},
		} {
			e.cliOK(append([]string{"update"}, append(strings.Fields(tc.args), id)...)...)
			if got := readFile(t, pidsMax); got != tc.want {
				t.Errorf("userns %v: update %s: pids.max = %q, want %q", userns, tc.args, got, tc.want)
			}
		}
		e.cliOK("update", "--pids-limit", "7", id)
		p := e.cliStart(func(c *exec.Cmd) { c.Stdin = strings.NewReader(`{"pids":{"limit":0}}`) }, "update", "-r", "-", id)
		p.waitOK()
		if got := readFile(t, pidsMax); got != "1" {
			t.Errorf("userns %v: update -r pids.limit 0: pids.max = %q, want 1", userns, got)
		}
		// A limit of 1 is one task: the container cannot fork.
		if r := e.cliRun("exec", id, "true"); r.code == 0 {
			t.Errorf("userns %v: exec into a container at its pids limit of 1 succeeded", userns)
		}
		e.cliOK("delete", "--force", id)
	}
}

// TestParityUpdateDevices: update -r does not change device rules, as runc
// 1.5 does not (it skips the devices cgroup on update), so a rule denying
// everything leaves the container its devices; crier checks the rules
// first and refuses an access string that is not of r, w and m, where runc
// ignores the rules unread (docs/compatibility.md).
func TestParityUpdateDevices(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	update := func(resources string) cliResult {
		t.Helper()
		return e.cliStart(func(c *exec.Cmd) { c.Stdin = strings.NewReader(resources) }, "update", "-r", "-", id).wait()
	}
	r := update(`{"devices":[{"allow":false,"access":"rwm"}]}`)
	if r.code != 0 {
		t.Fatalf("update -r with a deny-all device rule: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "not applied") {
		t.Errorf("update -r with device rules: stderr %q, want a warning that they are not applied", r.stderr)
	}
	if out := e.cliOK("exec", id, "sh", "-c", "head -c 4 /dev/zero | wc -c").stdout; strings.TrimSpace(out) != "4" {
		t.Errorf("after update -r denying devices, reading /dev/zero gave %q, want 4 bytes (rules not applied)", out)
	}
	r = update(`{"devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]}`)
	wantCLIError(t, "update -r with access rwx", r, "access")
}
