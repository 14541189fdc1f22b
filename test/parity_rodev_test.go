package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests read-only tmpfs mounts with more made beneath them, as
// runc does them (mounts.bats "runc run [ro /dev mount]"): the tmpfs is
// mounted writable, the mounts below it, device nodes and /dev links are
// made, and only then is it made read-only. Applying the flag at mount
// time failed with `mkdir .../rootfs/dev/pts: read-only file system`.

func TestParityReadonlyDev(t *testing.T) {
	e := newEnv(t)
	script := `grep ' /dev ' /proc/self/mounts | sed 's/^/DEV=/'
grep ' /data ' /proc/self/mounts | sed 's/^/DATA=/'
grep ' /data/sub ' /proc/self/mounts | sed 's/^/SUB=/'
test -c /dev/null && echo NULL=yes
test -L /dev/fd && echo FDLINK=yes
test -d /dev/pts && echo PTS=yes
touch /dev/x 2>/dev/null && echo DEVWRITE=yes || echo DEVWRITE=no
touch /data/x 2>/dev/null && echo DATAWRITE=yes || echo DATAWRITE=no
touch /data/sub/x 2>/dev/null && echo SUBWRITE=yes || echo SUBWRITE=no
`
	kv := e.runScript(script, func(s *specs.Spec) {
		for i, m := range s.Mounts {
			if m.Destination == "/dev" {
				s.Mounts[i].Options = append(m.Options, "ro")
			}
		}
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid"}},
			specs.Mount{Destination: "/data/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid"}})
	})
	for _, k := range []string{"DEV", "DATA"} {
		opts := strings.Fields(kv[k])
		if len(opts) < 4 || !strings.HasPrefix(opts[3], "ro,") {
			t.Errorf("%s mount line %q: want it read-only", k, kv[k])
		}
	}
	if opts := strings.Fields(kv["SUB"]); len(opts) < 4 || !strings.HasPrefix(opts[3], "rw,") {
		t.Errorf("/data/sub mount line %q: want it writable", kv["SUB"])
	}
	wantKV(t, kv, "NULL", "yes")
	wantKV(t, kv, "FDLINK", "yes")
	wantKV(t, kv, "PTS", "yes")
	wantKV(t, kv, "DEVWRITE", "no")
	wantKV(t, kv, "DATAWRITE", "no")
	wantKV(t, kv, "SUBWRITE", "yes")
}
