package prefork

// runWait and runRead are in runwait_linux_amd64.s: W of a run waits
// there. Go never calls them.
func runWait()
func runRead()

// runWait's signal sets and scratch space, which only the assembly uses.
var (
	// runForwarded is the set of signals a foreground run forwards to
	// the container (cmd/runtime's catchSignals, with SIGWINCH: a
	// container C runs alone has no terminal of its own): HUP, INT, QUIT,
	// USR1, USR2, TERM and WINCH, bit signo-1 each.
	runForwarded uint64 = 1<<(1-1) | 1<<(2-1) | 1<<(3-1) | 1<<(10-1) | 1<<(12-1) | 1<<(15-1) | 1<<(28-1)
	runOldMask   uint64
	runBuf       [16]byte
	runPoll      [2]struct {
		fd              int32
		events, revents int16
	}
	runSignal [128]byte // struct signalfd_siginfo
	runInfo   [64]byte  // struct pidfd_info, its first version
	runGone   = "crier: run: the shim exited before the container stopped\n"
)
