package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// makeSecureJoinTree builds a root with hostile and benign symlinks.
func makeSecureJoinTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dirs := []string{"d", "d2/sub", "usr/lib"}
	for _, d := range dirs {
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
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSecureJoin(t *testing.T) {
	root := makeSecureJoinTree(t)
	tests := []struct {
		path string
		want string // relative to root
	}{
		{"", ""},
		{"/", ""},
		{".", ""},
		{"..", ""},
		{"/../../..", ""},
		{"/etc/passwd", "passwd"},
		{"etc/../../shadow", "shadow"},
		{"/a/x", "tmp/x"},
		{"/abs/sub", "d2/sub"},
		{"/d/up/sub", "d2/sub"},
		{"/d/deep/x", "d2/sub/x"},
		{"/nope/deeper/file", "nope/deeper/file"},
		{"/nope/../d2", "d2"},
		{"/dangling/x", "missing/dir/x"},
		{"/lib/x.so", "usr/lib/x.so"},
		{"/dots/x", "d2/sub/x"},
		{"//d2///sub//", "d2/sub"},
		{"/file/x", "file/x"},
		{"/d2/sub/top/etc", ""},
		{"/d2/sub/upall/d", "d"},
		{"/d2/sub/top/../../a", "tmp"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := secureJoin(root, tt.path)
			if err != nil {
				t.Fatalf("secureJoin(%q): %v", tt.path, err)
			}
			want := filepath.Join(root, tt.want)
			if got != want {
				t.Errorf("secureJoin(%q) = %q, want %q", tt.path, got, want)
			}
			if got != root && !strings.HasPrefix(got, root+"/") {
				t.Errorf("secureJoin(%q) = %q escapes %q", tt.path, got, root)
			}
		})
	}
}

func TestSecureJoinLoops(t *testing.T) {
	root := makeSecureJoinTree(t)
	for _, p := range []string{"/loop1", "/loop2/x", "self", "/d2/../self/x"} {
		_, err := secureJoin(root, p)
		if !errors.Is(err, unix.ELOOP) {
			t.Errorf("secureJoin(%q) error = %v, want ELOOP", p, err)
		}
	}
}

func TestSecureJoinLinkLimit(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "end"), 0o755); err != nil {
		t.Fatal(err)
	}
	// l0 -> l1 -> ... -> l(n-1) -> end: resolving l0 follows n links.
	chain := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			target := fmt.Sprintf("%s%d", prefix, i+1)
			if i == n-1 {
				target = "/end"
			}
			if err := os.Symlink(target, filepath.Join(root, fmt.Sprintf("%s%d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	chain("ok", maxSymlinkFollows)
	chain("long", maxSymlinkFollows+1)

	got, err := secureJoin(root, "/ok0/x")
	if err != nil || got != filepath.Join(root, "end/x") {
		t.Errorf("secureJoin(ok0/x) = %q, %v; want %q", got, err, filepath.Join(root, "end/x"))
	}
	if _, err := secureJoin(root, "/long0/x"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("secureJoin(long0/x) error = %v, want ELOOP", err)
	}
}

func TestSecureJoinRootSlash(t *testing.T) {
	root := makeSecureJoinTree(t)
	got, err := secureJoin(root+"/", "/abs")
	if err != nil || got != filepath.Join(root, "d2") {
		t.Errorf("secureJoin(root/, abs) = %q, %v", got, err)
	}
}
