package prefork

import "golang.org/x/sys/unix"

// state is where entry records what it did, before the Go runtime starts
// (so not ordinary package state: nothing in Go writes it but Report).
var state struct {
	forked int32 // 1 in C
	fd     int32 // C: the pipe's write end
	parent int32 // C: the pid of M, which it was forked from
	caller int32 // the parent of the process that ran crier
	errno  int32 // the pipe's or the fork's error; then nothing was forked
}

// pipefds and statusbuf are entry's scratch space.
var (
	pipefds   [2]int32
	statusbuf [1]byte
)

// noReport is what W says when C exits without reporting.
var noReport = "crier: create: exited before reporting its outcome\n"

// Child reports whether this process is C, the create forked off at entry.
func Child() bool { return state.forked == 1 }

// Parent is the pid C was forked from (M), for container.ReparentedFrom.
func Parent() int { return int(state.parent) }

// CallerParent is the parent of the process that ran crier: what
// os.Getppid() says in a crier that did not fork.
func CallerParent() int { return int(state.caller) }

// Report sends code to the waiting process, which exits with it; only the
// first call does anything.
func Report(code int) {
	if state.forked != 1 || state.fd < 0 {
		return
	}
	fd := int(state.fd)
	state.fd = -1
	for {
		if _, err := unix.Write(fd, []byte{byte(code)}); err != unix.EINTR {
			break
		}
	}
	unix.Close(fd)
	_ = pipefds
	_ = statusbuf
	_ = noReport
}
