package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// makeResolveTree builds a root with hostile and benign symlinks.
func makeResolveTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"d", "d2/sub", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"etc":          "/../../..",
		"a":            "../../../../tmp",
		"abs":          "/d2",
		"d/up":         "../d2",
		"d/deep":       "../../../../../../d2/sub",
		"loop1":        "loop2",
		"loop2":        "loop1",
		"self":         "self",
		"dangling":     "/missing/dir",
		"lib":          "usr/lib",
		"dots":         "./././d2//./sub/",
		"d2/sub/top":   "/",
		"d2/sub/upall": "../../../..",
		"proc-link":    "/proc/self/root",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func openTestRoot(t *testing.T, dir string) *rootDir {
	t.Helper()
	r, err := openRootDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// TestResolveInCreates: destinations resolve inside the root whatever the
// symlinks say, and what is missing is created there.
func TestResolveInCreates(t *testing.T) {
	dir := makeResolveTree(t)
	r := openTestRoot(t, dir)
	tests := []struct {
		path string
		want string // inside the root
	}{
		{"/etc/passwd", "/passwd"},
		{"etc/../../shadow", "/shadow"},
		{"/a/x", "/tmp/x"},
		{"/abs/sub", "/d2/sub"},
		{"/d/up/sub", "/d2/sub"},
		{"/d/deep/x", "/d2/sub/x"},
		{"/nope/deeper/file", "/nope/deeper/file"},
		{"/nope2/../d2", "/d2"},
		{"/dangling/x", "/missing/dir/x"},
		{"/dangling", "/missing/dir"},
		{"/lib/x.so", "/usr/lib/x.so"},
		{"/dots/x", "/d2/sub/x"},
		{"//d2///sub//", "/d2/sub"},
		{"/d2/sub/top/etc2", "/etc2"},
		{"/d2/sub/upall/d", "/d"},
		{"/d2/sub/top/../../a", "/tmp"},
		{"/proc-link/x", "/proc/self/root/x"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			tg, err := resolveIn(r.fd, tt.path, resolveOpts{kind: kindDir}, nil)
			if err != nil {
				t.Fatalf("resolveIn(%q): %v", tt.path, err)
			}
			defer tg.close()
			got, err := r.relPath(tg.fd)
			if err != nil || got != tt.want {
				t.Errorf("resolveIn(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
			if fi, err := os.Stat(filepath.Join(dir, tt.want)); err != nil || !fi.IsDir() {
				t.Errorf("%s not made a directory in the root: %v", tt.want, err)
			}
		})
	}
}

func TestResolveInFile(t *testing.T) {
	dir := makeResolveTree(t)
	r := openTestRoot(t, dir)
	tg, err := resolveIn(r.fd, "/a/new/f", resolveOpts{kind: kindFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	fi, err := os.Lstat(filepath.Join(dir, "tmp/new/f"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("file target not made in the root: %v", err)
	}
}

func TestResolveInErrors(t *testing.T) {
	dir := makeResolveTree(t)
	r := openTestRoot(t, dir)
	for _, p := range []string{"/loop1", "/loop2/x", "self", "/d2/../self/x"} {
		_, err := resolveIn(r.fd, p, resolveOpts{kind: kindDir}, nil)
		if !errors.Is(err, unix.ELOOP) {
			t.Errorf("resolveIn(%q) error = %v, want ELOOP", p, err)
		}
	}
	for _, p := range []string{"/", "", "/..", "/d2/.."} {
		if _, err := resolveIn(r.fd, p, resolveOpts{kind: kindDir}, nil); err == nil {
			t.Errorf("resolveIn(%q) succeeded, want an error", p)
		}
	}
	if _, err := resolveIn(r.fd, "/file/x", resolveOpts{kind: kindDir}, nil); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("resolveIn(/file/x) error = %v, want ENOTDIR", err)
	}
	if _, err := resolveIn(r.fd, "/nothing", resolveOpts{}, nil); !errors.Is(err, unix.ENOENT) {
		t.Errorf("resolveIn(/nothing) without creating: %v, want ENOENT", err)
	}
}

// TestResolveInStrict: the targets of procfs, sysfs and devpts refuse any
// symlink, even one that stays inside the root, and any non-directory.
func TestResolveInStrict(t *testing.T) {
	dir := makeResolveTree(t)
	r := openTestRoot(t, dir)
	for _, p := range []string{"/abs", "/abs/sub", "/lib", "/dangling", "/file", "/d/up/new"} {
		_, err := resolveIn(r.fd, p, resolveOpts{kind: kindDir, strict: true}, nil)
		if !errors.Is(err, errNotOrdinary) {
			t.Errorf("strict resolveIn(%q) = %v, want errNotOrdinary", p, err)
		}
	}
	tg, err := resolveIn(r.fd, "/d2/sub/newdir", resolveOpts{kind: kindDir, strict: true}, nil)
	if err != nil {
		t.Fatalf("strict resolveIn of an ordinary path: %v", err)
	}
	tg.close()
	if _, err := os.Lstat(filepath.Join(dir, "missing")); err == nil {
		t.Error("strict resolution created the dangling link's target")
	}
}

func TestResolveInLinkLimit(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "end"), 0o755); err != nil {
		t.Fatal(err)
	}
	// l0 -> l1 -> ... -> end, each a dangling chain until "end/x" exists.
	chain := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			target := fmt.Sprintf("%s%d", prefix, i+1)
			if i == n-1 {
				target = "/end/x"
			}
			if err := os.Symlink(target, filepath.Join(dir, fmt.Sprintf("%s%d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	chain("ok", maxLinksFollowed)
	chain("long", maxLinksFollowed+1)
	r := openTestRoot(t, dir)
	if _, err := resolveIn(r.fd, "/long0", resolveOpts{kind: kindDir}, nil); !errors.Is(err, unix.ELOOP) {
		t.Errorf("resolveIn(long0) = %v, want ELOOP", err)
	}
	tg, err := resolveIn(r.fd, "/ok0", resolveOpts{kind: kindDir}, nil)
	if err != nil {
		t.Fatalf("resolveIn(ok0): %v", err)
	}
	defer tg.close()
	if got, _ := r.relPath(tg.fd); got != "/end/x" {
		t.Errorf("resolveIn(ok0) = %q, want /end/x", got)
	}
}
