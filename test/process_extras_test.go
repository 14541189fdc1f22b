package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container"
)

func TestTimeNamespaceOffsets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"cat", "/proc/uptime"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 10 * 86400}}
	})
	out, _ := e.run(e.id(), b, nil)
	host, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	inside, _ := strconv.ParseFloat(strings.Fields(out)[0], 64)
	outside, _ := strconv.ParseFloat(strings.Fields(string(host))[0], 64)
	if d := inside - outside; d < 10*86400-60 || d > 10*86400+60 {
		t.Errorf("uptime inside %v, outside %v: want about 10 days more inside", inside, outside)
	}
}

func TestPersonality(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"uname", "-m"}, func(s *specs.Spec) {
		s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	})
	out, _ := e.run(e.id(), b, nil)
	if got := strings.TrimSpace(out); got != "i686" {
		t.Errorf("uname -m with LINUX32 = %q, want i686", got)
	}
}

// TestAmbientWithoutInheritable runs the capabilities runc's own default
// spec has: ambient capabilities that are not inheritable, which the kernel
// will not raise. Like runc and crun, crier skips them instead of failing,
// with runc's warning.
func TestAmbientWithoutInheritable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	out, _ := e.runOK(e.id(), e.bundle([]string{"sh", "-c", "grep CapAmb /proc/self/status"}, func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps,
		}
	}), nil)
	// The container's output is create's too: runc's warnings come first.
	var amb string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "CapAmb:") {
			amb = line
		} else if line != "" && !strings.Contains(line, "can't raise ambient capability") {
			t.Errorf("unexpected line %q", line)
		}
	}
	if got := strings.Fields(amb); len(got) != 2 || got[1] != "0000000000000000" {
		t.Errorf("CapAmb line = %q, want an empty ambient set", amb)
	}
}

// TestLabelsIgnoredWithDebugLog: where AppArmor and SELinux are off (as on
// this machine), labels in the config are not an error, the mount label
// reaches no mount (here labelling the default spec's mqueue by xattr
// would fail with EOPNOTSUPP), and with --debug the shim's log says each
// label was ignored.
func TestLabelsIgnoredWithDebugLog(t *testing.T) {
	t.Parallel()
	if on := container.EnabledLSMs(); on.AppArmor || on.SELinux {
		t.Skipf("this host runs an LSM crier applies labels for: %+v", on)
	}
	e := newEnv(t)
	id := e.id()
	const mountLabel = "system_u:object_r:container_file_t:s0:c1,c2"
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Process.ApparmorProfile = "crier-test-profile"
		s.Process.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2"
		s.Linux.MountLabel = mountLabel
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/sys/firmware")
	})
	logPath := filepath.Join(e.dir, "crier.log")
	r := e.cliRun("--debug", "--log", logPath, "run", "--bundle", b, id)
	if r.code != 0 {
		t.Fatalf("run with labels: exit %d: %s", r.code, r.stderr)
	}
	log := readFile(t, logPath)
	for _, want := range []string{
		`apparmorProfile "crier-test-profile" ignored (apparmor is not enabled on this host)`,
		`selinuxLabel "system_u:system_r:container_t:s0:c1,c2" ignored (selinux is not enabled on this host)`,
		`mountLabel "` + mountLabel + `" ignored (selinux is not enabled on this host)`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("debug log does not say %s:\n%s", want, log)
		}
	}
}
