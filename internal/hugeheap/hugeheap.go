package hugeheap

import "unsafe"

// Linux's madvise advice values this package gives, and a transparent huge
// page's size on amd64.
const (
	madvHugepage = 14
	madvCollapse = 25
	hugePage     = 2 << 20
	eagain       = 11
	einval       = 22
)

func init() { collapse() }

// collapse backs the heap's pages in use with huge pages, and lets the
// blocks beside them get one when first touched. The runtime's first heap
// pages are not at a fixed place (Go randomizes the heap's base), and a
// small program's spread over two blocks, so it takes the block of a fresh
// allocation and the blocks either side: collapsing a block with nothing in
// it fails at once and allocates nothing. Failures say nothing: the heap
// then goes on as before.
func collapse() {
	// The serving shim is exec'd with THP off. Advice given now would
	// stay on its heap's blocks, and give it huge pages once it turns
	// THP back on.
	if thpDisabled() {
		return
	}
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
