package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// testELF is an ELF64 executable of size bytes whose two loadable
// segments hold [0, text) (read and execute) and [data, data+dataLen)
// (read and write), each at 0x400000 past its offset, the rest zeros but
// for the bytes of tail at its very end (as a stripped binary's section
// headers are).
func testELF(size, text, data, dataLen int, tail []byte) []byte {
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(2))  // ET_EXEC
	le.PutUint16(b[18:], uint16(62)) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64) // phoff
	le.PutUint16(b[52:], 64) // ehsize
	le.PutUint16(b[54:], 56) // phentsize
	le.PutUint16(b[56:], 2)  // phnum
	for i, seg := range [][2]int{{0, text}, {data, dataLen}} {
		p := b[64+56*i:]
		le.PutUint32(p[0:], 1)                 // PT_LOAD
		le.PutUint32(p[4:], []uint32{5, 6}[i]) // R E, then R W
		le.PutUint64(p[8:], uint64(seg[0]))
		le.PutUint64(p[16:], uint64(0x400000+seg[0]))
		le.PutUint64(p[32:], uint64(seg[1]))
		le.PutUint64(p[40:], uint64(seg[1]))
	}
	for i := 200; i < text; i++ {
		b[i] = byte(i)
	}
	for i := data; i < data+dataLen; i++ {
		b[i] = byte(i) | 1
	}
	copy(b[size-len(tail):], tail)
	return b
}

// TestDataExtents: the zero runs outside the loadable segments, and only
// those, of at least minHole, are left out.
func TestDataExtents(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name string
		b    []byte
		want []extent
	}{
		{"not ELF", bytes.Repeat([]byte{0}, 4*mb), []extent{{0, 4 * mb}}},
		{"padding between and after", testELF(5*mb+100, mb+5000, 2*mb, mb+10, []byte("shstrtab")),
			[]extent{{0, mb + 2*page}, {2 * mb, 3*mb + page}, {5 * mb, 5*mb + 100}}},
		{"gap too short", testELF(mb+8*page, mb, mb+4*page, 100, nil),
			[]extent{{0, mb + 8*page}}},
		{"zeros inside a segment stay", testELF(3*mb+page, 3*mb, 3*mb, page, nil),
			[]extent{{0, 3*mb + page}}},
	}
	// The last case's text, zeros past its headers.
	for i := 200; i < 3*mb; i++ {
		cases[3].b[i] = 0
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := dataExtents(tc.b)
			if len(got) != len(tc.want) {
				t.Fatalf("extents %x, want %x", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("extents %x, want %x", got, tc.want)
				}
			}
		})
	}
}

// TestInstall: the installed file has the source's bytes and mode, and
// holes where the padding was; a file that was there is replaced, not
// written into.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	b := testELF(5*(1<<20)+100, (1<<20)+5000, 2<<20, (1<<20)+10, []byte("shstrtab"))
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := install(src, dst); err != nil {
		t.Fatal(err)
	}
	// The source's bytes, its text stretched to 2 MB (extendSegments).
	want := bytes.Clone(b)
	binary.LittleEndian.PutUint64(want[64+32:], 2<<20)
	binary.LittleEndian.PutUint64(want[64+40:], 2<<20)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed %d bytes, %v; want the source's %d, its text stretched", len(got), err, len(b))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", st.Mode())
	}
	if was, _ := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(old.Fd()))); string(was) != "old" {
		t.Errorf("the file that was there was written into: %q", was)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	if err != nil {
		t.Skipf("SEEK_HOLE: %v", err)
	}
	if hole != (3<<20)+page {
		t.Errorf("first hole at %#x, want %#x (after the data segment's last page: the text's padding is written)", hole, (3<<20)+page)
	}
}

// TestExtendSegments: a read-only segment is stretched to the next 2 MB
// boundary only when the linker aligned it so, the padding is zeros in
// the file, and no other segment is in the way, in the file or in memory.
func TestExtendSegments(t *testing.T) {
	const mb = 1 << 20
	le := binary.LittleEndian
	cases := []struct {
		name     string
		b        []byte
		edit     func(b []byte)
		text     uint64 // the text segment's size after
		dataSize uint64 // the data segment's file size after
	}{
		{"text to the boundary", testELF(5*mb, mb+5000, 2*mb, mb+10, nil), nil, 2 * mb, mb + 10},
		{"already on it", testELF(5*mb, 2*mb, 2*mb, 10, nil), nil, 2 * mb, 10},
		{"next segment in the way in the file", testELF(3*mb, mb, mb+8*page, 100, nil), nil, mb, 100},
		{"next segment in the way in memory", testELF(5*mb, mb+5000, 2*mb, mb+10, nil), func(b []byte) {
			le.PutUint64(b[64+56+16:], 0x400000+mb+8*page) // the data's vaddr
		}, mb + 5000, mb + 10},
		{"not aligned by the linker", testELF(5*mb, mb+5000, 2*mb, mb+10, nil), func(b []byte) {
			le.PutUint64(b[64+16:], 0x401000) // the text's vaddr
		}, mb + 5000, mb + 10},
		{"padding not zero", testELF(5*mb, mb+5000, 2*mb, mb+10, nil), func(b []byte) {
			b[2*mb-1] = 1
		}, mb + 5000, mb + 10},
		{"file ends first", testELF(mb+2*page, mb, mb+page, 10, nil), func(b []byte) {
			le.PutUint32(b[64+56:], 0) // no data segment
		}, mb, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.edit != nil {
				tc.edit(tc.b)
			}
			extendSegments(tc.b)
			text, textMem := le.Uint64(tc.b[64+32:]), le.Uint64(tc.b[64+40:])
			data := le.Uint64(tc.b[64+56+32:])
			if text != tc.text || textMem != tc.text || data != tc.dataSize {
				t.Errorf("text %#x (in memory %#x), data %#x; want text %#x, data %#x", text, textMem, data, tc.text, tc.dataSize)
			}
		})
	}
}
