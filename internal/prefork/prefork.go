package prefork

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/sysmon"
)

// state is where entry records what it did, before the Go runtime starts
// (so not ordinary package state: nothing in Go writes it but report and
// the run's exchanges, which consume fd).
var state struct {
	forked  int32 // 1 in C; 2 in W of a run, which goes on as run's CLI
	fd      int32 // C: the pipe's (socket's) write end; W of a run: its end
	parent  int32 // C: the pid of M, which it was forked from; W of a run: M
	caller  int32 // the parent of the process that ran crier
	errno   int32 // the pipe's or the fork's error; then nothing was forked
	run     int32 // 1 when the command forked for is run (W and C)
	goAhead int32 // W of a run: 1 once it has given C the go-ahead
	// 1 when entry put maxprocsEnv in the environment (every process but
	// W of a create, unless the caller set GOMAXPROCS)
	maxprocs int32
	// C: the speculative init (speculate.go), its pid, C's end of its
	// sync socket and the sealed binary it was exec'd from; pid 0 when
	// there is none, or it was taken or discarded.
	specPid, specSync, specExe int32
	// W of a run: C's pid from M's message, once W's assembly has read
	// it (child; waited 1, 2 when C then died before it said anything),
	// and C's end of
	// things: 1 in C once it serves a run alone (RunAlone), so that the
	// report of the create leaves the socket open for RunDone's.
	child, waited, alone int32
	// C: the speculative init's detached mounts (speculate.go), set
	// with specPid.
	specMounts [2]int32
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
	if state.forked == 1 {
		tuning = sysmon.Slow()
	}
}

// tuning is what C's init did to its runtime's monitor thread, for
// RestoreTimerSlack to undo. Written once, by this package's init.
var tuning sysmon.Tuning

// RestoreTimerSlack gives every thread of C the main thread's timer slack
// again (sysmon.Tuning.Restore): once the container is created, and
// before C forks an init itself (shim.Config.Untune). C's runtime has one
// P, so its monitor thread woke every 90 µs beside it through all of
// create, a tenth of C's time; slowed, it wakes about once a millisecond.
// Interleaved creates, 40 each, four rounds: 29.46, 22.92, 22.59 and
// 24.17 ms against 32.64, 24.83, 23.63 and 25.08.
func RestoreTimerSlack() { tuning.Restore() }

// noReport is what W says when C exits without reporting.
var noReport = "crier: create: exited before reporting its outcome\n"

// Child reports whether this process is C, the create forked off at entry
// (for `crier create`, or for `crier run`: RunChild).
func Child() bool { return state.forked == 1 }

// RunChild reports whether this process is C of a `crier run`: its waiter
// W is run's CLI, a Go program parsing the same command line, which says
// what is wrong with it; C only creates, after W's go-ahead (GoAhead).
func RunChild() bool { return state.forked == 1 && state.run == 1 }

// RunWaiter reports whether this process is W of a `crier run`: C creates
// and serves the container meanwhile, and W learns the outcome (Outcome)
// instead of starting a shim.
func RunWaiter() bool { return state.forked == 2 }

// Parent is the pid C was forked from (M), for container.ReparentedFrom.
func Parent() int { return int(state.parent) }

// CallerParent is the parent of the process that ran crier: what
// os.Getppid() says in a crier that did not fork.
func CallerParent() int { return int(state.caller) }

// NeedCLI, in C of a run, tells W to go on as run's CLI (a Go program):
// C then waits for its go-ahead (AwaitGoAhead). C says it before anything
// else, when the run needs more than W's assembly does (run_alone in
// entry_linux_amd64.s): a terminal to proxy, a console or pidfd socket,
// or a command line C does not take as a plain run, which W's CLI then
// reports on.
func NeedCLI() {
	if state.forked != 1 || state.run != 1 || state.fd < 0 {
		return
	}
	for {
		if _, err := unix.Write(int(state.fd), []byte{'G'}); err != unix.EINTR {
			return
		}
	}
}

// RunAlone, in C of a run, says that C runs the container through to its
// end by itself: W stays in its assembly, forwards signals to the
// container once created, and exits with what RunDone says. From here on
// Created leaves the socket open.
func RunAlone() { state.alone = 1 }

// RunStarted, in C of a run it runs alone, says the container has been
// started: W forwards signals to it from now on.
func RunStarted() {
	if state.alone != 1 {
		return
	}
	msg := []byte{'S', 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for {
		if _, err := unix.Write(int(state.fd), msg); err != unix.EINTR {
			return
		}
	}
}

// ChildDied, in W of a run, reports whether C died before it said
// anything: W's CLI then only removes what C left (Outcome says
// ErrNoReport).
func ChildDied() bool { return state.forked == 2 && state.waited == 2 }

// ChildPid, in W of a run, is C's pid, once W's assembly has read it; 0
// before.
func ChildPid() int { return int(state.child) }

// RunDone, in C of a run it runs alone, ends W: with code once C has
// exited, or at once when livesOn (C goes on as the shim of a detached
// container).
func RunDone(code int, livesOn bool) {
	if state.alone != 1 {
		return
	}
	state.alone = 0
	kind := byte('X')
	if livesOn {
		kind = 'L'
	}
	report(kind, code, 0)
}

// Created tells the waiting process that the container, whose process is
// pid, is created: create's exits 0 at once, run's goes on to start it,
// while this process goes on as the shim.
func Created(pid int) { report('L', 0, pid) }

// Exit tells the waiting process to exit with code once this process,
// which is about to exit, has. Only the first of Created and Exit counts.
func Exit(code int) { report('X', code, 0) }

// report writes the message W reads: a kind ('L': created; 'X': exit once
// C has exited), the exit code and C's pid, and for a run the container's
// pid, in one write so that W reads it whole. For 'X' the pipe stays open
// until the process exits. A W that is gone is no error: for a run it
// went after its go-ahead, so only by SIGKILL, as a crier run that is
// killed while its shim creates.
func report(kind byte, code, pid int) {
	if state.forked != 1 || state.fd < 0 {
		return
	}
	// An init nobody took is gone before create's caller hears anything.
	DiscardSpeculative()
	fd := int(state.fd)
	if state.alone == 1 && kind == 'L' {
		// A run C runs alone: RunDone's message comes later.
		kind, code = 'C', 0
	} else {
		state.fd = -1
	}
	self := unix.Getpid()
	msg := []byte{kind, byte(code), byte(self), byte(self >> 8), byte(self >> 16), byte(self >> 24)}
	if state.run == 1 {
		msg = append(msg, byte(pid), byte(pid>>8), byte(pid>>16), byte(pid>>24))
	}
	for {
		if _, err := unix.Write(fd, msg); err != unix.EINTR {
			break
		}
	}
	if kind == 'L' {
		unix.Close(fd)
	}
}

// ErrNoReport is Outcome's error when C exited, or was killed, before it
// reported.
var ErrNoReport = errors.New("exited before reporting its outcome")

// GoAhead, in W of a run, tells C to create the container that payload
// describes (at most 64 kB): W has checked the command line, taken the
// signals it forwards, so that none that comes from now on ends run with
// the container left behind, and listens on its console socket if the
// container needs one. Until it comes, C does nothing it would have to
// undo, and says nothing; if W exits first, C exits too.
func GoAhead(payload string) error {
	if state.forked != 2 {
		return nil
	}
	// M is reaped, and its message read, already (runWait).
	msg := append([]byte{'G'}, payload...)
	state.goAhead = 1
	for {
		_, err := unix.Write(int(state.fd), msg)
		if err == unix.EPIPE || err == unix.ECONNRESET {
			return ErrNoReport // C is gone: Outcome tells
		}
		if err != unix.EINTR {
			return err
		}
	}
}

// AwaitGoAhead, in C of a run, waits for W's go-ahead (GoAhead) and
// returns its payload. ok is false when W exited without one, having
// said what was wrong.
func AwaitGoAhead() (payload string, ok bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(int(state.fd), buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n < 1 || buf[0] != 'G' {
			return "", false
		}
		return string(buf[1:n]), true
	}
}

// Release, in W of a run that ends without having given C the go-ahead
// (a bad command line, --help), lets C go and waits until it has exited,
// so that nothing of the run is seen alive once run has returned.
func Release() {
	if state.forked != 2 || state.goAhead == 1 || state.fd < 0 {
		return
	}
	fd := int(state.fd)
	state.fd = -1
	// M is reaped, and its message, C's pid, read already (runWait); 0
	// when M could not fork C. C writes nothing after its 'G' before the
	// go-ahead.
	var pidfd int
	var err error = unix.ESRCH
	if child := int(state.child); child > 0 {
		// While the socket is open C waits on it, alive: the pid is C's.
		pidfd, err = unix.PidfdOpen(child, 0)
	}
	unix.Close(fd)
	if err != nil {
		return // never forked, or gone already
	}
	defer unix.Close(pidfd)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// Result is what C of a run reported to W.
type Result struct {
	Created bool // else C exits with Code, or has
	Code    int
	Child   int // C
	Pid     int // the container's process, when created
}

// Outcome, in W of a run, waits for C's report. Child is C's pid, from
// M's message (which runWait read), even when C died before it reported;
// 0 if M could not fork C.
func Outcome() (Result, error) {
	fd := int(state.fd)
	defer func() {
		unix.Close(fd)
		state.fd = -1
	}()
	var res Result
	buf := make([]byte, 16)
	if res.Child = int(state.child); res.Child == 0 {
		return res, ErrNoReport
	}
	if n := readPacket(fd, buf); n != 10 {
		return res, ErrNoReport
	}
	res.Created, res.Code, res.Pid = buf[0] == 'L', int(buf[1]), le32(buf[6:])
	return res, nil
}

// readPacket reads one packet into buf and returns its length, 0 at the
// end or on an error.
func readPacket(fd int, buf []byte) int {
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return n
	}
}

func le32(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
