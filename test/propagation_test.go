package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestMountPropagation: linux.rootfsPropagation and the propagation options
// of a mount entry show in the container's own /proc/self/mountinfo, in
// the optional fields of the mount ("shared:N", "master:N", "unbindable",
// or none for private).
func TestMountPropagation(t *testing.T) {
	t.Parallel()
	// Prints the optional fields of / and /mnt/p: the fields between the
	// mount options (6th) and the "-" separator.
	script := `awk '$5 == "/" || $5 == "/mnt/p" { f = ""; for (i = 7; $i != "-"; i++) f = f " " $i; print ($5 == "/" ? "root" : "mnt") "=" f }' /proc/self/mountinfo`
	tests := []struct {
		name        string
		rootfs      string // linux.rootfsPropagation
		mountOption string // propagation option of the tmpfs on /mnt/p
		root, mnt   string // the optional field wanted, "" for none
	}{
		{"private", "private", "private", "", ""},
		{"shared", "shared", "shared", "shared:", "shared:"},
		{"unbindable", "unbindable", "unbindable", "unbindable", "unbindable"},
		{"rprivate root, rshared mount", "rprivate", "rshared", "", "shared:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			kv := e.runScript(script, func(s *specs.Spec) {
				s.Linux.RootfsPropagation = tt.rootfs
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/p", Type: "tmpfs", Source: "tmpfs", Options: []string{tt.mountOption}})
			})
			for _, c := range []struct{ key, want string }{{"root", tt.root}, {"mnt", tt.mnt}} {
				got, ok := kv[c.key]
				if !ok {
					t.Errorf("no mountinfo line for %s", c.key)
					continue
				}
				if c.want == "" && got != "" || c.want != "" && !strings.HasPrefix(got, c.want) {
					t.Errorf("%s: optional fields %q, want %q", c.key, got, c.want)
				}
			}
		})
	}
}
