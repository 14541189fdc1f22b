// Command writebig installs an executable (go run ./internal/writebig SRC
// DST; the Makefile's build and install do) so that the page cache holds
// it in 2 MB folios, and so that the padding between its segments takes
// no room.
//
// A file's page cache holds it in folios whose size depends on how it was
// filled: a write(2) of 2 MB or more at a 2 MB-aligned offset makes 2 MB
// folios (ext4 has had large folios since Linux 6.16), where the linker,
// writing through a shared mapping, leaves 4 kB ones and cp 64 kB ones.
// The kernel maps a 2 MB folio into every process that runs the file with
// one page-table entry where a segment covers the whole block, where
// small folios cost a page fault per 16 pages: about 40 faults fewer per
// Go start on the machines of issue 14 (docs/performance-notes.md).
//
// So each stretch of the file's data is written with one write, and the
// gaps between its ELF segments, which the linker fills with zeros when
// it aligns them (crier and crier-shim are linked with -R 0x200000), are
// left as holes: the file takes the room its data does, and a copy that
// skips holes (the init stage's sealed memfd, where overlayfs cannot be
// used) copies only that.
//
// But first each read-only segment (text, read-only data) that the linker
// aligned so is stretched, in its program header, over the zeros up to
// the next 2 MB boundary, when nothing else is there: its last block is
// then whole too, written with the rest, and mapped at once, where its
// tail would take a fault per 16 pages and an entry per page to tear down
// when the process exits. Those zeros are then data, not holes: up to
// 2 MB more per segment on disk, and in a sealed memfd copy.
//
// DST is written beside itself and renamed into place, so a running
// binary is never overwritten. A file that is no ELF executable is
// written whole, with one write.
package main
