package test

import (
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

func TestFeatures(t *testing.T) {
	e := newEnv(t)
	out := e.cliOK("features").stdout
	var f features.Features
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features output is not JSON: %v\n%s", err, out)
	}
	if f.OCIVersionMin != "1.0.0" || f.OCIVersionMax != specs.Version {
		t.Errorf("oci versions %q to %q, want 1.0.0 to %s", f.OCIVersionMin, f.OCIVersionMax, specs.Version)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("hook %s missing from %v", h, f.Hooks)
		}
	}
	for _, o := range []string{"ro", "nosuid", "rbind", "rprivate", "idmap", "ridmap"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("mount option %s missing", o)
		}
	}
	l := f.Linux
	if l == nil {
		t.Fatal("no linux section")
	}
	for _, ns := range []string{"pid", "network", "mount", "ipc", "uts", "user", "cgroup"} {
		if !slices.Contains(l.Namespaces, ns) {
			t.Errorf("namespace %s missing", ns)
		}
	}
	if !slices.Contains(l.Capabilities, "CAP_SYS_ADMIN") || !slices.Contains(l.Capabilities, "CAP_CHECKPOINT_RESTORE") {
		t.Errorf("capabilities incomplete: %v", l.Capabilities)
	}
	if c := l.Cgroup; c == nil || c.V1 == nil || !*c.V1 || c.V2 == nil || !*c.V2 || c.Systemd == nil || *c.Systemd {
		t.Errorf("cgroup = %+v, want v1 and v2 without systemd", c)
	}
	s := l.Seccomp
	if s == nil || s.Enabled == nil || !*s.Enabled {
		t.Fatalf("seccomp = %+v, want enabled", s)
	}
	if !slices.Contains(s.Actions, "SCMP_ACT_ERRNO") || !slices.Contains(s.Actions, "SCMP_ACT_NOTIFY") {
		t.Errorf("seccomp actions %v: want SCMP_ACT_ERRNO and SCMP_ACT_NOTIFY", s.Actions)
	}
	if !slices.Contains(s.Archs, "SCMP_ARCH_X86_64") || !slices.Contains(s.Operators, "SCMP_CMP_MASKED_EQ") {
		t.Errorf("seccomp archs %v, operators %v", s.Archs, s.Operators)
	}
	if !slices.Contains(s.SupportedFlags, "SECCOMP_FILTER_FLAG_LOG") {
		t.Errorf("seccomp supported flags %v", s.SupportedFlags)
	}
	if l.Apparmor == nil || l.Selinux == nil || l.MountExtensions == nil || l.MountExtensions.IDMap == nil {
		t.Fatalf("apparmor, selinux or mountExtensions.idmap missing: %s", out)
	}
	// Label support is what the build does, whatever this host runs.
	for name, en := range map[string]*bool{"apparmor": l.Apparmor.Enabled, "selinux": l.Selinux.Enabled} {
		if en == nil || !*en {
			t.Errorf("%s: want enabled true", name)
		}
	}
	if en := l.MountExtensions.IDMap.Enabled; en == nil || !*en {
		t.Error("mountExtensions.idmap: want enabled true")
	}
}
