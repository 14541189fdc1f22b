package hugeheap

// syscall3 is in syscall_linux_amd64.s.
func syscall3(trap, a1, a2, a3 uintptr) uintptr

const (
	sysMadvise = 28
	sysPrctl   = 157
)

func madvise(addr, n uintptr, advice int) uintptr {
	return syscall3(sysMadvise, addr, n, uintptr(advice))
}

// thpDisabled reports whether THP is off for this process (prctl
// PR_SET_THP_DISABLE, kept across execve).
func thpDisabled() bool { return syscall3(sysPrctl, prGetTHPDisable, 0, 0) != 0 }

const prGetTHPDisable = 42
