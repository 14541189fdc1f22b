package container

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyncFiles: descriptors sent with a message arrive with it, survive
// the JSON decoder's reads, and are the same open files.
func TestSyncFiles(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent := newSyncConn(os.NewFile(uintptr(fds[0]), "parent"))
	child := newSyncConn(os.NewFile(uintptr(fds[1]), "child"))
	defer parent.Close()
	defer child.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cfg := &initConfig{ID: strings.Repeat("x", 20000), Trees: []int{2, 0}}
	if err := parent.sendFiles(message{Type: msgConfig, Config: cfg}, []*os.File{w, r}); err != nil {
		t.Fatal(err)
	}
	if err := parent.send(message{Type: msgContinue}); err != nil {
		t.Fatal(err)
	}
	m, err := child.expect(msgConfig)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config == nil || m.Config.ID != cfg.ID || !slices.Equal(m.Config.Trees, cfg.Trees) {
		t.Fatalf("config did not come through")
	}
	got := child.takeFiles()
	if len(got) != 2 {
		t.Fatalf("%d files, want 2", len(got))
	}
	defer closeFiles(got)
	if _, err := got[0].WriteString("hi"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := got[1].Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v through the received pipe", buf, err)
	}
	if flags, err := unix.FcntlInt(got[0].Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor is not close-on-exec (flags %#x, %v)", flags, err)
	}
	if _, err := child.expect(msgContinue); err != nil {
		t.Fatal(err)
	}
	if len(child.takeFiles()) != 0 {
		t.Error("files taken twice")
	}
	parent.Close()
	if _, err := child.recv(); !errors.Is(err, errSyncEOF) {
		t.Errorf("after close: %v, want EOF", err)
	}
}
