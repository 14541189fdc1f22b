package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestParityMaskedPathsShared: a masked path listed twice is masked once,
// and the masked directories share one read-only tmpfs, as runc's
// (mask.bats "[duplicate paths]", "[directories share tmpfs]").
func TestParityMaskedPathsShared(t *testing.T) {
	e := newEnv(t)
	script := `echo "dirmounts=$(grep -c ' /testdir ' /proc/self/mounts)"
echo "filemounts=$(grep -c ' /testfile ' /proc/self/mounts)"
set -- $(stat -c %d /testdir /testdir2 /testdir3)
echo "devs=$1 $2 $3"
echo "self=$(stat -c %d /)"
touch /testdir2/foo 2>/dev/null; echo "touch=$?"
echo "empty=$(ls -A /testdir3 | wc -l)"`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/testdir", "/testfile", "/testdir/", "/testfile", "/testdir2", "/testdir3")
	})
	for _, d := range []string{"testdir", "testdir2", "testdir3"} {
		if err := os.MkdirAll(filepath.Join(b, "rootfs", d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(b, "rootfs", "testfile"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "dirmounts", "1")
	wantKV(t, kv, "filemounts", "1")
	wantKV(t, kv, "touch", "1")
	wantKV(t, kv, "empty", "0")
	var d1, d2, d3 string
	if n, _ := fmt.Sscan(kv["devs"], &d1, &d2, &d3); n != 3 || d1 != d2 || d2 != d3 || d1 == kv["self"] {
		t.Errorf("devices of the masked directories %q (root %s): want one tmpfs for all three", kv["devs"], kv["self"])
	}
}
