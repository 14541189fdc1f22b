//go:build !(linux && amd64)

package hugeheap

// Off Linux on amd64 the heap stays as it is.
func madvise(addr, n uintptr, advice int) uintptr { return 1 }
func thpDisabled() bool                           { return true }
func mmap(n uintptr) uintptr                      { return ^uintptr(0) }
func munmap(addr, n uintptr)                      {}
func touch(addr uintptr)                          {}
