// Package pagecache brings a crier binary back into the page cache in the
// 2 MB folios internal/writebig installed it in, after the kernel dropped
// it and read it back in 4 kB pages.
//
// A binary written by internal/writebig sits in the page cache in 2 MB
// folios, and every process that runs it maps its text and read-only
// data one page-table entry per 2 MB: some 100 page faults fewer in
// create's fork, 50 in the init stage (docs/performance-notes.md). That
// lasts only as long as the page cache keeps the file. The machines of
// issue 14 drop what has not been touched for a minute (a DAMON pageout
// scheme), and the next exec reads the file back through the mmap
// read-around, 4 kB pages at a time (here 8 MB of them from one fault),
// and it stays so: create took 0.7 ms longer, run 0.5, start and delete
// 0.15 on the fast machine.
//
// Heal undoes that for a file no process has mapped: it drops the file's
// pages and reads each 2 MB block back through a mapping advised
// MADV_HUGEPAGE, which reads a block as one folio. The shim's serving
// image heals the CLI binary (crier) as it starts, off the loop; the
// create image that exec'd it was the binary's last user. It cannot heal
// crier-shim, which it runs itself.
package pagecache
