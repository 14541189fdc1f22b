package test

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests the environment of startContainer hooks (hooks.bats
// "runc run [startContainer hook should inherit process environment]"): a
// hook with no env of its own gets the process's, HOME included; one with
// its own env keeps it alone. And, as the issue asks, the hooks do not run
// under the container's seccomp filter: that is loaded just before the
// process's execve (runc loads it before them: docs/compatibility.md).

func TestParityStartContainerHookEnv(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", `test -d /tmp/hookdir && echo HOOKDIR=yes
mkdir /tmp/procdir 2>/dev/null && echo PROCMKDIR=yes || echo PROCMKDIR=no
cat /tmp/home /tmp/own`}, func(s *specs.Spec) {
		s.Process.Env = []string{"PATH=/bin:/usr/bin", "ONE=two", "FOO=bar"}
		s.Linux.Seccomp = denyMkdir()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{
			{Path: "/check-env.sh"},
			{Path: "/check-own.sh", Env: []string{"OWN=yes"}},
		}}
	})
	rootfs := filepath.Join(b, "rootfs")
	// As runc's test: set -u makes an unset HOME fail the hook.
	writeScript(t, filepath.Join(rootfs, "check-env.sh"), `#!/bin/sh -ue
test $ONE = two
test $FOO = bar
echo "HOME=$HOME" > /tmp/home
mkdir /tmp/hookdir
`)
	writeScript(t, filepath.Join(rootfs, "check-own.sh"), `#!/bin/sh -ue
test $OWN = yes
echo "OWNONE=${ONE:-unset}" > /tmp/own
`)
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "HOME", "/root")
	wantKV(t, kv, "OWNONE", "unset")
	wantKV(t, kv, "HOOKDIR", "yes")
	wantKV(t, kv, "PROCMKDIR", "no")
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
