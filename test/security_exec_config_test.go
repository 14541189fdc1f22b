package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSecurityExecUsesRecordedConfig: exec takes the process's defaults
// and the seccomp filter from the config the container was created from,
// which the shim records in the state directory, never from the bundle's
// config.json as it is at exec time. Whoever can write the bundle (an
// image's unpacker, another user with a writable bundle) could otherwise
// loosen an exec'd process's confinement after create: here the bundle's
// config is rewritten to drop the seccomp filter and grant every
// capability; the exec'd process must still have the init's capabilities
// and the filter that denies mkdir. With the bundle's config gone, exec
// still works. In both modes: the shim forks the exec stage, or (under a
// supervisor, forced on here) crier exec does.
func TestSecurityExecUsesRecordedConfig(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := execTarget(t, e, func(s *specs.Spec) { s.Linux.Seccomp = denyMkdir() })
			bundle := e.bundleOf(id)
			spec := readSpec(t, bundle)
			spec.Linux.Seccomp = nil
			all := []string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH"}
			c := spec.Process.Capabilities
			c.Bounding, c.Effective, c.Permitted = append(c.Bounding, all...), append(c.Effective, all...), append(c.Permitted, all...)
			spec.Process.Env = append(spec.Process.Env, "PLANTED=1")
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			script := `echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"; echo "initcap=$(grep CapEff /proc/1/status | cut -f2)"
				echo "capbnd=$(grep CapBnd /proc/self/status | cut -f2)"; echo "initbnd=$(grep CapBnd /proc/1/status | cut -f2)"
				mkdir /tmp/x 2>/dev/null; echo "mkdir=$?"; echo "planted=${PLANTED:-no}"`
			exec := func() map[string]string {
				return keyValues(e.cliOK("--supervisor", mode, "exec", id, "sh", "-c", script).stdout)
			}
			for _, step := range []string{"rewritten", "removed"} {
				kv := exec()
				if kv["capeff"] == "" || kv["capeff"] != kv["initcap"] || kv["capbnd"] != kv["initbnd"] {
					t.Errorf("bundle config %s: capabilities eff %q bnd %q, want the init's eff %q bnd %q", step, kv["capeff"], kv["capbnd"], kv["initcap"], kv["initbnd"])
				}
				wantKV(t, kv, "mkdir", "1")
				wantKV(t, kv, "planted", "no")
				if err := os.Remove(filepath.Join(bundle, "config.json")); err != nil && step == "rewritten" {
					t.Fatal(err)
				}
			}
			e.cliOK("delete", "--force", id)
		})
	}
}
