package pagecache

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// elfFile writes an ELF header with one read-only PT_LOAD segment over
// the whole file, size bytes, with one write, as internal/writebig writes
// a binary, and returns its path.
func elfFile(t *testing.T, size int) string {
	t.Helper()
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], 1)  // e_phnum
	ph := b[64:]
	le.PutUint32(ph, 1)                 // PT_LOAD
	le.PutUint32(ph[4:], 4)             // PF_R
	le.PutUint64(ph[32:], uint64(size)) // p_filesz
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return p
}

// mapAll maps the file at p executable, as an exec maps a binary's text,
// and reads every page of it, one at a time (MADV_RANDOM: no read-around),
// so that what is missing comes back in 4 kB pages, as after an exec of a
// dropped binary here. The mapping stays until the returned func.
func mapAll(t *testing.T, p string, size int) func() {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err == unix.EPERM {
		t.Skip("the temporary directory is mounted noexec")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(m, unix.MADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	var sum byte
	for i := 0; i < size; i += 4096 {
		sum += m[i]
	}
	runtime.KeepAlive(sum)
	return func() { unix.Munmap(m) }
}

// drop drops the file at p from the page cache.
func drop(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// capable skips the test unless the kernel reads the file at p, dropped
// from the page cache, back in a 2 MB folio through a mapping advised
// MADV_HUGEPAGE (as on the machines of issue 14: Linux 6.18, ext4).
func capable(t *testing.T, p string) {
	t.Helper()
	drop(t, p)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	huge, err := pmdBlocks(int(f.Fd()), []int64{0})
	if err != nil {
		t.Fatal(err)
	}
	if !huge[0] {
		t.Skip("this kernel or file system does not read this file in 2 MB folios")
	}
}

// TestHeal: a binary read back in 4 kB pages after the kernel dropped it
// is brought back in 2 MB folios, and then found whole; a block that a
// running process maps is left as it is.
func TestHeal(t *testing.T) {
	const size = 2 * block
	for _, tc := range []struct {
		name       string
		mapped     bool // another mapping holds the file's pages meanwhile
		bad, heals int
	}{
		{name: "read back in 4 kB pages", bad: 2, heals: 2},
		{name: "mapped by a running process", mapped: true, bad: 2, heals: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := elfFile(t, size)
			capable(t, p)
			drop(t, p)
			unmap := mapAll(t, p, size)
			if !tc.mapped {
				unmap()
			}
			bad, healed, err := Heal(p)
			if tc.mapped {
				unmap()
			}
			if err != nil {
				t.Fatal(err)
			}
			if bad != tc.bad || healed != tc.heals {
				t.Errorf("Heal = %d bad, %d healed; want %d, %d", bad, healed, tc.bad, tc.heals)
			}
			if tc.mapped {
				return
			}
			if bad, healed, err := Heal(p); bad != 0 || healed != 0 || err != nil {
				t.Errorf("Heal of a healed file = %d bad, %d healed, %v; want 0, 0, nil", bad, healed, err)
			}
		})
	}
}

// TestHealNotELF: a file that is not an ELF binary is refused, and one
// without a whole read-only block has nothing to heal.
func TestHealNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Heal(p); err == nil {
		t.Errorf("Heal of a script: no error")
	}
	small := elfFile(t, 64<<10)
	if bad, healed, err := Heal(small); bad != 0 || healed != 0 || err != nil {
		t.Errorf("Heal of a small binary = %d, %d, %v; want 0, 0, nil", bad, healed, err)
	}
}
