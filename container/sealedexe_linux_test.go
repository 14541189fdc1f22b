package container

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// sealedSelf returns a sealed copy of the test binary, closed when t ends.
func sealedSelf(t *testing.T) *os.File {
	t.Helper()
	f, err := sealedExe("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestSealedExe: both kinds of copy hold the binary's bytes, are another
// file than the binary, refuse every write, and can be exec'd.
func TestSealedExe(t *testing.T) {
	needRoot(t)
	// A binary of our own: its directory becomes an overlayfs layer.
	bin := t.TempDir() + "/true"
	orig, err := exec.LookPath("true")
	if err != nil {
		t.Skip(err)
	}
	want, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, want, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"overlay", "memfd"} {
		t.Run(kind, func(t *testing.T) {
			f := sealedKind(t, kind, bin)
			defer f.Close()
			checkSealed(t, f, bin, want)
		})
	}
}

// sealedKind makes the copy of bin that kind names.
func sealedKind(t *testing.T, kind, bin string) *os.File {
	t.Helper()
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	var f *os.File
	if kind == "overlay" {
		f, err = overlayExe(src, &st)
	} else {
		f, err = memfdExe(src, st.Size)
	}
	if err != nil {
		t.Fatalf("%s copy of %s: %v", kind, bin, err)
	}
	return f
}

func checkSealed(t *testing.T, f *os.File, bin string, want []byte) {
	t.Helper()
	path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read the copy: %d bytes, %v; want the binary's %d", len(got), err, len(want))
	}
	var a, b unix.Stat_t
	unix.Stat(path, &a)
	unix.Stat(bin, &b)
	if a.Dev == b.Dev && a.Ino == b.Ino {
		t.Errorf("the copy is the binary itself (dev %d ino %d)", a.Dev, a.Ino)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_APPEND} {
		w, err := os.OpenFile(path, flag, 0)
		if err == nil {
			_, err = w.Write([]byte("x"))
			w.Close()
		}
		if err == nil {
			t.Errorf("open with flags %#x and write: succeeded", flag)
		} else if errors.Is(err, unix.ETXTBSY) {
			t.Errorf("write refused only as text file busy: %v", err)
		}
	}
	// As fork does: the descriptor goes to the child, listed.
	cmd := exec.Command(execPathFor(3))
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("exec the copy: %v: %s", err, out)
	}
	if now, _ := os.ReadFile(bin); !bytes.Equal(now, want) {
		t.Errorf("the binary changed")
	}
}

// BenchmarkSealedExe: what each kind of copy of this test binary costs,
// made and dropped (the overlayfs is torn down when the last reference
// goes, as when init execs the user's process).
func BenchmarkSealedExe(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for _, kind := range []string{"overlay", "memfd"} {
		b.Run(kind, func(b *testing.B) {
			src, err := os.Open("/proc/self/exe")
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(src.Fd()), &st); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Size)
			for b.Loop() {
				var f *os.File
				if kind == "overlay" {
					f, err = overlayExe(src, &st)
				} else {
					f, err = memfdExe(src, st.Size)
				}
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// TestMemfdExeHoles: the memfd copy has the source's bytes, and leaves
// its holes holes (crier-shim's padding, internal/writebig).
func TestMemfdExeHoles(t *testing.T) {
	const hole = 1 << 20
	head, tail := bytes.Repeat([]byte("h"), 8192), bytes.Repeat([]byte("t"), 8192)
	path := t.TempDir() + "/sparse"
	src, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Write(head); err != nil {
		t.Fatal(err)
	}
	if _, err := src.WriteAt(tail, int64(len(head)+hole)); err != nil {
		t.Fatal(err)
	}
	size := int64(len(head) + hole + len(tail))
	f, err := memfdExe(src, size)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := append(append(append([]byte{}, head...), make([]byte, hole)...), tail...)
	got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copy: %d bytes, %v; want %d", len(got), err, len(want))
	}
	if at, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE); err != nil || at != int64(len(head)) {
		t.Errorf("the copy's first hole at %d, %v; want %d", at, err, len(head))
	}
}
