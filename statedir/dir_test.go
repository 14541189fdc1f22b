package statedir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

func TestOpenRootRefusesOthersWritable(t *testing.T) {
	root := t.TempDir()
	for _, mode := range []os.FileMode{0o777, 0o720, 0o702} {
		os.Chmod(root, mode)
		_, err := OpenRoot(root)
		want := fmt.Sprintf("state root %s: writable by group or others (mode %04o)", root, mode)
		if err == nil || err.Error() != want {
			t.Errorf("mode %04o: OpenRoot = %v, want %q", mode, err, want)
		}
	}
	os.Chmod(root, 0o755)
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatalf("mode 0755: %v", err)
	}
	r.Close()
}

func TestOpenRootRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory away")
	}
	root := t.TempDir()
	if err := os.Chown(root, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	_, err := OpenRoot(root)
	if want := fmt.Sprintf("state root %s: owned by uid 1000, not 0", root); err == nil || err.Error() != want {
		t.Errorf("OpenRoot = %v, want %q", err, want)
	}
}

func TestOpenDirRefusesLinkAndMissing(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "real"), 0o700)
	os.Symlink("real", filepath.Join(root, "link"))
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.OpenDir("link"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("OpenDir of a link = %v, want a refusal", err)
	}
	if _, err := r.OpenDir("none"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenDir of a missing directory = %v, want ErrNotExist", err)
	}
}

// TestWriteFileAtNoFollow: links planted at the target and at guessable
// temporary names are never written through; the target's link is
// replaced.
func TestWriteFileAtNoFollow(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	for _, n := range []string{"f", "f.tmp", ".f", ".f.tmp"} {
		os.Symlink(victim, filepath.Join(dir, n))
	}
	if err := WriteFile(filepath.Join(dir, "f"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim written through a link: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "f"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("f: %v %v, want a regular 0644 file", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("temporaries left: %v", ents)
	}
}

func TestRemoveLeavesLinkTargets(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o600)
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.NewTemp(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Publish("c"); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteState(&State{}); err != nil {
		t.Fatal(err)
	}
	os.Symlink(outside, filepath.Join(root, "c", "link"))
	os.MkdirAll(filepath.Join(root, "c", "sub", "deeper"), 0o700)
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if r.Exists("c") {
		t.Error("c left")
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("Remove followed a link: %v", err)
	}
}

func TestPublishRefusesTakenID(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "c"), 0o700)
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.NewTemp(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Publish("c"); !errors.Is(err, protocol.ErrExist) {
		t.Errorf("Publish over an existing ID = %v, want ErrExist", err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if names, _ := r.Names(); len(names) != 1 {
		t.Errorf("root holds %v, want only c", names)
	}
}

// TestSweepAbandoned: a directory that a maker killed before Publish left
// is removed, with what is in it; one whose maker lives, a published
// container and a hidden entry of another kind are left alone.
func TestSweepAbandoned(t *testing.T) {
	root := t.TempDir()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	live, err := r.NewTemp(42)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead := filepath.Join(root, tempPrefix+"7-99-0123456789abcdef")
	os.Mkdir(dead, 0o700)
	os.WriteFile(filepath.Join(dead, StateFile), []byte("{}"), 0o600)
	os.Mkdir(filepath.Join(root, "c"), 0o700)
	os.Mkdir(filepath.Join(root, ".other"), 0o700)
	var asked []string
	n, err := r.SweepAbandoned(func(pid int, start uint64) bool {
		asked = append(asked, fmt.Sprintf("%d/%d", pid, start))
		return pid == os.Getpid() && start == 42
	})
	if err != nil || n != 1 {
		t.Fatalf("SweepAbandoned = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("abandoned directory left: %v", err)
	}
	for _, keep := range []string{live.name, "c", ".other"} {
		if !r.Exists(keep) {
			t.Errorf("%s removed", keep)
		}
	}
	if want := []string{"7/99", fmt.Sprintf("%d/42", os.Getpid())}; len(asked) != 2 || !slices.Contains(asked, want[0]) || !slices.Contains(asked, want[1]) {
		t.Errorf("asked about %v, want %v", asked, want)
	}
}

// TestWriteFileAtReplaces: what was at the name before a write, and what
// is there after.
func TestWriteFileAtReplaces(t *testing.T) {
	for _, c := range []struct {
		name    string
		before  func(path string) // plants what is at the name
		wantErr bool
	}{
		{name: "nothing", before: func(string) {}},
		{name: "a file", before: func(p string) { os.WriteFile(p, []byte("old content"), 0o600) }},
		{name: "a link to a file", before: func(p string) {
			os.WriteFile(p+".target", []byte("old content"), 0o600)
			os.Symlink(p+".target", p)
		}},
		{name: "a directory", before: func(p string) {
			os.Mkdir(p, 0o700)
			os.WriteFile(filepath.Join(p, "inside"), nil, 0o600)
		}, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			c.before(path)
			// A second name for what was there, which must keep its content.
			os.Link(path, filepath.Join(dir, "old"))
			want := names(dir)
			if !slices.Contains(want, "state.json") {
				want = append(want, "state.json")
				slices.Sort(want)
			}
			err := WriteFile(path, []byte("new"), 0o600)
			if c.wantErr {
				fi, serr := os.Lstat(path)
				if err == nil || serr != nil || !fi.IsDir() {
					t.Fatalf("WriteFile over a directory = %v; the name is now %v, %v", err, fi, serr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(path); string(b) != "new" || err != nil {
					t.Fatalf("after the write: %q, %v", b, err)
				}
				if b, err := os.ReadFile(filepath.Join(dir, "old")); err == nil && string(b) != "old content" {
					t.Fatalf("the old file was written in place: %q", b)
				}
			}
			if got := names(dir); !slices.Equal(got, want) {
				t.Errorf("entries after the write %v, want %v: a temporary left, or something removed", got, want)
			}
		})
	}
}

// names lists dir's entries, sorted.
func names(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWriteFileAtReadersSeeWhole: a reader racing the writes always finds
// the file, whole, old or new.
func TestWriteFileAtReadersSeeWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	versions := [][]byte{bytes.Repeat([]byte("a"), 1400), bytes.Repeat([]byte("b"), 700)}
	if err := WriteFile(path, versions[0], 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(b, versions[0]) && !bytes.Equal(b, versions[1]) {
				bad <- fmt.Sprintf("read %d bytes, %v", len(b), err)
				return
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		if err := WriteFile(path, versions[i%2], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if msg, ok := <-bad; ok {
		t.Fatalf("a reader saw a torn or missing file: %s", msg)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporaries left: %v", ents)
	}
}

// TestTempNameUnpredictable: 16 hex digits after the prefix, a new one
// each time.
func TestTempNameUnpredictable(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		name, err := tempName(".f.")
		if err != nil {
			t.Fatal(err)
		}
		digits, ok := strings.CutPrefix(name, ".f.")
		if !ok || len(digits) != 16 || strings.Trim(digits, "0123456789abcdef") != "" {
			t.Fatalf("tempName = %q, want .f. and 16 hex digits", name)
		}
		if seen[name] {
			t.Fatalf("tempName repeated %q", name)
		}
		seen[name] = true
	}
}
