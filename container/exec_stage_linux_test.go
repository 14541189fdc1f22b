package container

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadExecConfigOnlyRegular: the exec stage reads its config only from
// a regular file. From an empty eventfd (which os.FileMode calls regular:
// its st_mode has no type bits) the read blocked for good; the stage now
// fails at once, whatever the shim checked before.
func TestReadExecConfigOnlyRegular(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	// Readable, so that the old stage failed (on what it read) rather
	// than blocked: the error must be the type's.
	if _, err := unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, f := range []*os.File{os.NewFile(uintptr(efd), "eventfd"), r} {
		if _, err := readExecConfig(f); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("config %s: %v, want not a regular file", f.Name(), err)
		}
	}
	fd, err := unix.MemfdCreate("config", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte(`{"process":{"args":["true"],"cwd":"/"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	cfg, err := readExecConfig(os.NewFile(uintptr(fd), "memfd"))
	if err != nil || cfg.Process == nil || cfg.Process.Args[0] != "true" {
		t.Errorf("config memfd: %+v, %v; want its process", cfg, err)
	}
}
