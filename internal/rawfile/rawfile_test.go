package rawfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 300) // past the first buffer, twice over
	cases := []struct {
		name    string
		content []byte // nil: no file
		wantErr error
	}{
		{name: "small", content: []byte("max\n")},
		{name: "empty", content: []byte{}},
		{name: "past the first buffer", content: big},
		{name: "missing", wantErr: unix.ENOENT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if tc.content != nil {
				if err := os.WriteFile(p, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Read(p)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(got, tc.content) {
				t.Errorf("read %d bytes, want %d", len(got), len(tc.content))
			}
		})
	}
	// A procfs file, whose size stat does not give.
	if b, err := Read("/proc/self/stat"); err != nil || len(b) == 0 {
		t.Errorf("/proc/self/stat: %q, %v", b, err)
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("a longer old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("file holds %q, want %q (truncated)", b, "new")
	}
	// The file must exist: a control file is never created.
	if err := Write(filepath.Join(dir, "absent"), []byte("x")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("write to a missing file: %v, want ENOENT", err)
	}
}
