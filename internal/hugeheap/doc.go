// Package hugeheap puts the start of a short-lived crier process's Go heap
// on transparent huge pages. Importing it is all it takes: its init does
// it, the second package init to run in any program that imports it (it
// imports nothing, and its path sorts early), so before nearly all of the
// other packages' inits touch the heap.
//
// On the machines of issue 14 a page fault costs some 12 µs (a PVM guest,
// where page-table updates are dear), and a Go heap is faulted in one 4 kB
// page at a time: the fork of `crier create` that becomes the shim touched
// about 210 heap pages before the container was created, the init stage
// about 160. Both are on create's path, and the machine does not take
// faults in parallel. A 2 MB huge page costs one fault and the zeroing of
// 2 MB (0.15–0.2 ms here); collapsing a block that is already partly in
// use copies its pages too (0.3–0.5 ms).
//
// Only where faults are dear: the init first times a few page faults of
// a fresh mapping (FaultCost) and does nothing below FaultDear. On a KVM
// guest of the same kind a fault costs 1-2 µs, so a huge heap could save
// little there, and a new huge page costs 4-5 ms (its host backs the
// guest's reported free memory afresh): it halved create+start throughput.
//
// Transparent huge pages are "madvise" on these hosts: a mapping gets them
// only when asked. The runtime maps its heap before any Go code runs, so
// the init asks for huge pages on the heap's blocks and collapses those
// already in use (MADV_COLLAPSE). Where the kernel cannot (THP off, no free
// huge page, not Linux on amd64), nothing changes: the heap goes on in
// 4 kB pages.
//
// Only for processes whose heap is thrown away soon: `crier create`'s fork
// (it re-executes into the small serving image), the init stage (it execs
// the container's process), the CLI. The serving shim must stay small
// (700 kB private at 50 containers): the image that execs it turns THP off
// for the process first (prctl PR_SET_THP_DISABLE, which an exec keeps),
// which makes this package's advice fail, and the serving image turns it
// back on once its runtime has started (package shim).
package hugeheap
