package hugeheap

// syscall3, syscall6 and touch are in syscall_linux_amd64.s.
func syscall3(trap, a1, a2, a3 uintptr) uintptr
func syscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) uintptr

// touch writes a byte at addr.
func touch(addr uintptr)

const (
	sysMmap    = 9
	sysMunmap  = 11
	sysMadvise = 28
	sysPrctl   = 157

	protRead, protWrite      = 0x1, 0x2
	mapPrivate, mapAnonymous = 0x2, 0x20
)

// mmap maps n bytes of fresh private memory: its address, or -errno.
func mmap(n uintptr) uintptr {
	return syscall6(sysMmap, 0, n, protRead|protWrite, mapPrivate|mapAnonymous, ^uintptr(0), 0)
}

func munmap(addr, n uintptr) { syscall3(sysMunmap, addr, n, 0) }

func madvise(addr, n uintptr, advice int) uintptr {
	return syscall3(sysMadvise, addr, n, uintptr(advice))
}

// thpDisabled reports whether THP is off for this process (prctl
// PR_SET_THP_DISABLE, kept across execve).
func thpDisabled() bool { return syscall3(sysPrctl, prGetTHPDisable, 0, 0) != 0 }

const prGetTHPDisable = 42
