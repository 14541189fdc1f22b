package prefork

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// state is where entry records what it did, before the Go runtime starts
// (so not ordinary package state: nothing in Go writes it but Report).
var state struct {
	forked int32 // 1 in C
	fd     int32 // C: the pipe's write end
	parent int32 // C: the pid of M, which it was forked from
	caller int32 // the parent of the process that ran crier
	errno  int32 // the pipe's or the fork's error; then nothing was forked
	// 1 when entry put maxprocsEnv in the environment (every process but
	// W, unless the caller set GOMAXPROCS)
	maxprocs int32
}

// pipefds, statusbuf and pollfd are entry's scratch space; only the
// assembly uses them (and noReport), which keeps them linked.
var (
	pipefds   [2]int32
	statusbuf [8]byte
	pollfd    [8]byte
)

// maxprocsEnv is what entry puts in front of the environment: crier's
// commands start with one P. Go sizes GOMAXPROCS from the CPUs before main
// runs, and with two Ps the runtime wakes a second thread (and its stack,
// and its page faults) for the first goroutines it readies; on a machine
// where page faults are dear that costs a short command like state or
// start about 1.5 ms of its 10 (issue 14). A command that has parallel
// work to do raises it (the forked create's shim does).
var maxprocsEnv = "GOMAXPROCS=1\x00"

// The variable is the runtime's business only: nothing crier starts
// (ps, the shim, hooks) inherits it.
func init() {
	if state.maxprocs == 1 {
		syscall.Unsetenv("GOMAXPROCS")
	}
}

// noReport is what W says when C exits without reporting.
var noReport = "crier: create: exited before reporting its outcome\n"

// Child reports whether this process is C, the create forked off at entry.
func Child() bool { return state.forked == 1 }

// Parent is the pid C was forked from (M), for container.ReparentedFrom.
func Parent() int { return int(state.parent) }

// CallerParent is the parent of the process that ran crier: what
// os.Getppid() says in a crier that did not fork.
func CallerParent() int { return int(state.caller) }

// Created tells the waiting process that the container is created: it
// exits 0 at once, while this process goes on as the shim.
func Created() { report('L', 0) }

// Exit tells the waiting process to exit with code once this process,
// which is about to exit, has. Only the first of Created and Exit counts.
func Exit(code int) { report('X', code) }

// report writes the message W reads: a kind ('L': exit now; 'X': once C
// has exited), the exit code and C's pid, in one write so that W reads
// it whole. For 'X' the pipe stays open until the process exits.
func report(kind byte, code int) {
	if state.forked != 1 || state.fd < 0 {
		return
	}
	fd := int(state.fd)
	state.fd = -1
	pid := unix.Getpid()
	msg := []byte{kind, byte(code), byte(pid), byte(pid >> 8), byte(pid >> 16), byte(pid >> 24)}
	for {
		if _, err := unix.Write(fd, msg); err != unix.EINTR {
			break
		}
	}
	if kind == 'L' {
		unix.Close(fd)
	}
}
