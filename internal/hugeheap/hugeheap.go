package hugeheap

import "unsafe"

// Linux's madvise advice values this package gives, and a transparent huge
// page's size on amd64.
const (
	madvHugepage = 14
	madvCollapse = 25
	hugePage     = 2 << 20
	pageSize     = 4 << 10
	eagain       = 11
	einval       = 22
)

func init() {
	// The serving shim is exec'd with THP off. Advice given now would
	// stay on its heap's blocks, and give it huge pages once it turns
	// THP back on.
	if thpDisabled() || FaultCost() < FaultDear {
		return
	}
	collapse()
}

// FaultDear is the cost of an anonymous page fault from which the huge
// heap pays, in nanoseconds. It pays where faults are dear: 11-12 µs on
// the PVM guests of issue 14, where a 2 MB huge page took 0.15-0.2 ms and
// saved some 150 faults per process. Where faults are cheap (1.4-1.6 µs on
// a KVM guest of the same kind) it can save at most a few tenths of a
// millisecond, and may cost far more: there, a host that takes back the
// guest's free memory (free page reporting) backs each new huge page
// afresh, 4-5 ms a page, and the huge heap halved create+start
// throughput (docs/performance-notes.md). The threshold sits between
// the two, nearer the cheap side: the probe takes the cheapest of its
// faults, and a dear machine must not pass for a cheap one.
const FaultDear = 4000

// probePages is how many page faults FaultCost times. It takes the
// cheapest, so that a preemption in one does not decide.
const probePages = 4

// FaultCost is what an anonymous page fault costs here, in nanoseconds:
// the cheapest first write to a page of a fresh mapping. It is 0 if the
// mapping cannot be made.
func FaultCost() int64 {
	const size = probePages * pageSize
	p := mmap(size)
	if int(p) < 0 {
		return 0
	}
	defer munmap(p, size)
	best := int64(1<<63 - 1)
	for i := range uintptr(probePages) {
		t := nanotime()
		touch(p + i*pageSize)
		best = min(best, nanotime()-t)
	}
	return best
}

// nanotime is the runtime's monotonic clock (its vDSO call): this package
// imports nothing, time included.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// collapse backs the heap's pages in use with huge pages, and lets the
// blocks beside them get one when first touched. The runtime's first heap
// pages are not at a fixed place (Go randomizes the heap's base), and a
// small program's spread over two blocks, so it takes the block of a fresh
// allocation and the blocks either side: collapsing a block with nothing in
// it fails at once and allocates nothing. Failures say nothing: the heap
// then goes on as before.
func collapse() {
	block := uintptr(unsafe.Pointer(fresh()))&^(hugePage-1) - hugePage
	// ENOMEM says a block is not mapped (yet), and the others took the
	// advice; EINVAL, that this kernel has no THP.
	if int(madvise(block, 3*hugePage, madvHugepage)) == -einval {
		return
	}
	for i := range uintptr(3) {
		// EAGAIN: a page was busy (still on a CPU's list of new pages,
		// say), which one more try mostly gets past.
		for range 3 {
			if int(madvise(block+i*hugePage, hugePage, madvCollapse)) != -eagain {
				break
			}
		}
	}
}

// fresh returns its allocation, so that it is made on the heap: a small
// one, which lands in the heap's first pages.
//
//go:noinline
func fresh() *[16]byte { return new([16]byte) }
