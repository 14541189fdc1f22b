package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: writebig SRC DST")
		os.Exit(2)
	}
	if err := install(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "writebig:", err)
		os.Exit(1)
	}
}

// install writes src's bytes to dst, the padding between segments as
// holes, through a temporary beside dst renamed over it.
func install(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	extendSegments(b)
	if err := writeExtents(tmp, b, dataExtents(b)); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// extent is a stretch [off, end) of the file.
type extent struct{ off, end int64 }

const page = 4096

// dataExtents returns the stretches of b to write: all of it but runs of
// at least minHole zero bytes, page-aligned, outside every loadable
// segment (the linker's padding between and after its segments).
func dataExtents(b []byte) []extent {
	size := int64(len(b))
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return []extent{{0, size}}
	}
	var loads []extent
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			loads = append(loads, extent{int64(p.Off), min(int64(p.Off+p.Filesz), size)})
		}
	}
	var out []extent
	start := int64(0) // of the data extent being gathered
	for off := int64(0); off+page <= size; {
		end := zeroRun(b, loads, off)
		if end-off >= minHole {
			out = append(out, extent{start, off})
			start = end
		}
		off = max(end, off+page)
	}
	if start < size {
		out = append(out, extent{start, size})
	}
	return out
}

// zeroRun returns the end of the run of whole zero pages from off that
// lie outside every loadable segment: off itself when there is none.
func zeroRun(b []byte, loads []extent, off int64) int64 {
	end := off
	for end+page <= int64(len(b)) && zero(b[end:end+page]) && !inside(loads, end) {
		end += page
	}
	return end
}

// minHole is the shortest run of zeros left as a hole.
const minHole = 16 * page

// inside reports whether the page at off overlaps a loadable segment.
func inside(loads []extent, off int64) bool {
	for _, l := range loads {
		if off < l.end && off+page > l.off {
			return true
		}
	}
	return false
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeExtents sizes f to b's length and writes each extent of b at its
// offset, with one write each.
func writeExtents(f *os.File, b []byte, exts []extent) error {
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	for _, e := range exts {
		if _, err := f.WriteAt(b[e.off:e.end], e.off); err != nil {
			return err
		}
	}
	return nil
}

// huge is the size of a PMD mapping.
const huge = 2 << 20

// extendSegments stretches each read-only loadable segment of the ELF
// executable b (in place, in its program headers) to the next 2 MB
// boundary, when the linker placed it so (-R 0x200000: the same offset
// in the file as in memory, modulo 2 MB) and the padding up to there is
// zeros that no other segment uses, in the file and in memory. The kernel
// can then map the last block of its text and its read-only data with one
// page-table entry as well, not 4 kB at a time: fewer page faults, and
// fewer entries to tear down when the process exits.
func extendSegments(b []byte) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return
	}
	phoff := int64(binary.LittleEndian.Uint64(b[32:]))
	phentsize := int64(binary.LittleEndian.Uint16(b[54:]))
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 || p.Filesz != p.Memsz || p.Off%huge != p.Vaddr%huge {
			continue
		}
		end := (p.Off + p.Filesz + huge - 1) / huge * huge
		if end > uint64(len(b)) || end == p.Off+p.Filesz {
			continue
		}
		if clashes(f.Progs, i, end-p.Off) || !zero(b[p.Off+p.Filesz:end]) {
			continue
		}
		h := b[phoff+int64(i)*phentsize:]
		binary.LittleEndian.PutUint64(h[32:], end-p.Off) // p_filesz
		binary.LittleEndian.PutUint64(h[40:], end-p.Off) // p_memsz
	}
}

// clashes reports whether another loadable segment overlaps segment i
// stretched to size, in the file or in memory.
func clashes(progs []*elf.Prog, i int, size uint64) bool {
	p := progs[i]
	for j, q := range progs {
		if j == i || q.Type != elf.PT_LOAD {
			continue
		}
		inFile := q.Off < p.Off+size && q.Off+q.Filesz > p.Off
		inMemory := q.Vaddr < p.Vaddr+size && q.Vaddr+q.Memsz > p.Vaddr
		if inFile || inMemory {
			return true
		}
	}
	return false
}
