package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests bind mounts in a user namespace whose sources the
// container's root may not reach (userns.bats "userns with 2 inaccessible
// mounts", "userns with inaccessible mount + exec"): runc opens the
// sources as the host's root, so they mount; crier accessed them as the
// container's uid and failed create with "permission denied".

// usernsBindBundle makes a bundle whose process runs args in a new user
// namespace (container 0 is host 100000), with binds of
// source-inaccessible-1/dir and source-inaccessible-2/dir (relative to the
// bundle, under directories of mode 0700 that the host's root owns) on
// /tmp/mount-1 and /tmp/mount-2, the second read-only.
func usernsBindBundle(t *testing.T, e *env, args []string) string {
	t.Helper()
	b := e.bundle(args, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65534}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65534}}
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/tmp/mount-1", Source: "source-inaccessible-1/dir", Options: []string{"bind"}},
			specs.Mount{Destination: "/tmp/mount-2", Source: "source-inaccessible-2/dir", Options: []string{"bind", "ro"}})
	})
	for _, d := range []string{"source-inaccessible-1", "source-inaccessible-2"} {
		if err := os.MkdirAll(filepath.Join(b, d, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b, d, "dir", "foo.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(b, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownRootfs(t, b)
	return b
}

func TestParityUsernsInaccessibleBinds(t *testing.T) {
	e := newEnv(t)
	script := `stat -c %n /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt | sed 's/^/STAT=/'
touch /tmp/mount-2/x 2>/dev/null && echo RO=no || echo RO=yes
grep ' /tmp/mount-1 ' /proc/self/mountinfo | sed 's/^/INFO1=/'
grep ' /tmp/mount-2 ' /proc/self/mountinfo | sed 's/^/INFO2=/'
grep ' /tmp/mount-3 ' /proc/self/mountinfo | sed 's/^/INFO3=/'`
	b := usernsBindBundle(t, e, []string{"sh", "-c", script})
	// A source that is a shared mount on the host, as / is under
	// systemd: the container's bind of it must be the slave a bind made
	// in the container's mount namespace is, never the host's peer, or
	// what the container mounts below it would appear on the host.
	shared := filepath.Join(b, "source-shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "mode=755", "shared-src", shared).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", shared).Run() })
	if out, err := exec.Command("mount", "--make-shared", shared).CombinedOutput(); err != nil {
		t.Fatalf("mount --make-shared: %v: %s", err, out)
	}
	editBundle(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/mount-3", Source: shared, Options: []string{"rbind"}})
	})
	out, kv := e.runOK(e.id(), b, nil)
	if !strings.Contains(out, "STAT=/tmp/mount-1/foo.txt\nSTAT=/tmp/mount-2/foo.txt\n") {
		t.Errorf("the container did not see both sources' files:\n%s", out)
	}
	wantKV(t, kv, "RO", "yes")
	for _, k := range []string{"INFO1", "INFO2", "INFO3"} {
		if kv[k] == "" || strings.Contains(kv[k], "shared:") {
			t.Errorf("%s = %q: want the mount there, not shared", k, kv[k])
		}
	}
	if !strings.Contains(kv["INFO3"], "master:") {
		t.Errorf("INFO3 = %q: want a slave of the host's shared mount", kv["INFO3"])
	}
}

func TestParityUsernsInaccessibleBindsExec(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := usernsBindBundle(t, e, []string{"sleep", "1000"})
	e.cliOK("run", "-d", "--bundle", b, id)
	r := e.cliOK("exec", id, "stat", "-c", "%n", "/tmp/mount-1/foo.txt", "/tmp/mount-2/foo.txt")
	if r.stdout != "/tmp/mount-1/foo.txt\n/tmp/mount-2/foo.txt\n" {
		t.Errorf("exec stat printed %q", r.stdout)
	}
	e.cliOK("delete", "--force", id)
}
