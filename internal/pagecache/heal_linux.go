package pagecache

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// block is a PMD-mapped folio's size on amd64.
const block = 2 << 20

// Heal makes sure the page cache holds the 2 MB blocks of the ELF
// binary at path that its read-only segments (text, read-only data) fill
// in 2 MB folios. It reports how many such blocks were not, and how many
// of those it brought back; a block a running process maps stays as it
// is. Where no block is in a 2 MB folio it first tries one, and stops
// there if that fails: the kernel or the file system may not read files
// in 2 MB folios at all. Its system calls wait for the disk while blocks
// are read: call it off any path that must answer soon.
func Heal(path string) (bad, healed int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	blocks, err := readOnlyBlocks(f)
	if err != nil || len(blocks) == 0 {
		return 0, 0, err
	}
	fd := int(f.Fd())
	// One block says for the rest, mostly: the kernel drops a file that
	// nobody used for a while, and reads back what the next user needs
	// around its first fault, megabytes of it. So the serving image that
	// finds the binary whole pays one block's check, not all of them.
	canary, err := pmdBlocks(fd, blocks[len(blocks)-1:])
	if err != nil || canary[0] {
		return 0, 0, err
	}
	// A block no longer in the page cache at all is read back as one
	// folio here already.
	huge, err := pmdBlocks(fd, blocks)
	if err != nil {
		return 0, 0, err
	}
	var todo []int64
	for i, b := range blocks {
		if !huge[i] {
			todo = append(todo, b)
		}
	}
	bad = len(todo)
	if bad == 0 {
		return 0, 0, nil
	}
	if bad == len(blocks) {
		ok, err := reread(fd, todo[:1])
		if err != nil || ok == 0 {
			return bad, 0, err
		}
		healed, todo = 1, todo[1:]
	}
	ok, err := reread(fd, todo)
	return bad, healed + ok, err
}

// reread drops the blocks at offs from the page cache, where no process
// maps them, reads them back through pmdBlocks, and says how many are in
// 2 MB folios then.
func reread(fd int, offs []int64) (int, error) {
	for _, off := range offs {
		if err := unix.Fadvise(fd, off, block, unix.FADV_DONTNEED); err != nil {
			return 0, os.NewSyscallError("fadvise", err)
		}
	}
	huge, err := pmdBlocks(fd, offs)
	n := 0
	for _, ok := range huge {
		if ok {
			n++
		}
	}
	return n, err
}

// readOnlyBlocks returns the file offsets of the whole 2 MB blocks that
// the read-only PT_LOAD segments of the ELF file f fill.
func readOnlyBlocks(f *os.File) ([]int64, error) {
	const (
		ptLoad = 1
		pfW    = 2
	)
	var eh [64]byte
	if _, err := f.ReadAt(eh[:], 0); err != nil {
		return nil, err
	}
	if string(eh[:4]) != "\x7fELF" || eh[4] != 2 || eh[5] != 1 {
		return nil, errors.New("not a little-endian 64-bit ELF file")
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := int64(le.Uint64(eh[32:])), int64(le.Uint16(eh[54:])), int64(le.Uint16(eh[56:]))
	if phentsize < 56 || phnum > 64 {
		return nil, errors.New("unexpected ELF program headers")
	}
	ph := make([]byte, phentsize*phnum)
	if _, err := f.ReadAt(ph, phoff); err != nil && err != io.EOF {
		return nil, err
	}
	var blocks []int64
	for i := int64(0); i < phnum; i++ {
		p := ph[i*phentsize:]
		if le.Uint32(p) != ptLoad || le.Uint32(p[4:])&pfW != 0 {
			continue
		}
		off, size := int64(le.Uint64(p[8:])), int64(le.Uint64(p[32:]))
		for b := (off + block - 1) &^ (block - 1); b+block <= off+size; b += block {
			blocks = append(blocks, b)
		}
	}
	return blocks, nil
}

// pmdBlocks maps each 2 MB block of the file open at fd at the offsets
// given, on a 2 MB boundary and advised MADV_HUGEPAGE, faults in its first
// page, and says for each whether the kernel mapped it with one entry: a
// block in a 2 MB folio, or one read in as such now. MADV_RANDOM keeps a
// block partly in the page cache from being read around in 4 kB pages.
// Each block is a mapping of its own, a block apart.
func pmdBlocks(fd int, offs []int64) ([]bool, error) {
	span := uintptr(2*len(offs)+1) * block
	res, err := unix.MmapPtr(-1, 0, nil, span, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	defer unix.MunmapPtr(res, span)
	base := unsafe.Add(res, -uintptr(res)&(block-1))
	addrs := make([]uintptr, len(offs))
	for i, off := range offs {
		at := unsafe.Add(base, 2*i*block)
		addrs[i] = uintptr(at)
		if _, err := unix.MmapPtr(fd, off, at, block, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
			return nil, os.NewSyscallError("mmap", err)
		}
		for _, advice := range []int{unix.MADV_HUGEPAGE, unix.MADV_RANDOM, unix.MADV_POPULATE_READ} {
			// POPULATE_READ of the first page: a system call, not a
			// load, so that the Go scheduler sees the wait.
			length := uintptr(block)
			if advice == unix.MADV_POPULATE_READ {
				length = 4096
			}
			if _, _, e := unix.Syscall(unix.SYS_MADVISE, addrs[i], length, uintptr(advice)); e != 0 {
				return nil, os.NewSyscallError("madvise", e)
			}
		}
	}
	return pmdMapped(addrs)
}

// pmdMapped says for each 2 MB mapping that starts at one of addrs, its
// first page faulted in, whether the kernel maps it with one PMD entry:
// then its page 1 MB in is present too (/proc/self/pagemap), where a
// fault on a 4 kB page maps at most 16 around it.
func pmdMapped(addrs []uintptr) ([]bool, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	huge := make([]bool, len(addrs))
	var e [8]byte
	for i, a := range addrs {
		if _, err := f.ReadAt(e[:], int64((a+block/2)/4096*8)); err != nil {
			return nil, err
		}
		huge[i] = binary.LittleEndian.Uint64(e[:])&(1<<63) != 0
	}
	return huge, nil
}
