package prefork

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pair makes the socket pair entry makes for a run, W's end and C's.
func pair(t *testing.T) (w, c int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// as runs f with state set as entry sets it in one process of a run,
// and restores it.
func as(forked, fd int, f func()) {
	saved := state
	defer func() { state = saved }()
	state.forked, state.fd, state.run = int32(forked), int32(fd), 1
	f()
}

// mRead is what runWait leaves in W's state once it has read M's message
// naming C (0: M could not fork C).
func mRead(child int) {
	state.child, state.waited = int32(child), 1
}

// TestRunExchange: the go-ahead carries its payload to C, and C's
// report of a created container its pid and the container's to W, who
// knows C from M's message.
func TestRunExchange(t *testing.T) {
	w, c := pair(t)
	as(2, w, func() {
		if err := GoAhead("/run/x/console.sock"); err != nil {
			t.Fatal(err)
		}
	})
	var console string
	var ok bool
	as(1, c, func() {
		console, ok = AwaitGoAhead()
		if !ok || console != "/run/x/console.sock" {
			t.Errorf("AwaitGoAhead: %q %v, want the payload", console, ok)
		}
		Created(4242) // closes c
	})
	as(2, w, func() {
		mRead(12345)
		res, err := Outcome()
		if err != nil {
			t.Fatal(err)
		}
		if !res.Created || res.Child != 12345 || res.Pid != 4242 {
			t.Errorf("Outcome: %+v, want created, child 12345, pid 4242", res)
		}
	})
}

// TestRunNoReport: C gone before it reports, after M's message or with
// none (M could not fork C), is ErrNoReport, with C's pid when M gave it;
// and a W gone before its go-ahead is no go-ahead for C.
func TestRunNoReport(t *testing.T) {
	w, c := pair(t)
	unix.Close(c)
	as(2, w, func() {
		mRead(7)
		res, err := Outcome()
		if err != ErrNoReport || res.Child != 7 {
			t.Errorf("Outcome after C's end closed: %+v %v, want child 7 and ErrNoReport", res, err)
		}
	})
	w, c = pair(t)
	unix.Close(c)
	as(2, w, func() {
		if res, err := Outcome(); err != ErrNoReport || res.Child != 0 {
			t.Errorf("Outcome with no message at all: %+v %v, want ErrNoReport", res, err)
		}
	})
	w, c = pair(t)
	unix.Close(w)
	as(1, c, func() {
		if _, ok := AwaitGoAhead(); ok {
			t.Errorf("AwaitGoAhead after W's end closed: ok")
		}
	})
	unix.Close(c)
}

// TestStateOffsets: the assembly addresses state's fields by offset
// (·state+N(SB)); they must stay where it looks for them.
func TestStateOffsets(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"forked", unsafe.Offsetof(state.forked), 0},
		{"fd", unsafe.Offsetof(state.fd), 4},
		{"parent", unsafe.Offsetof(state.parent), 8},
		{"caller", unsafe.Offsetof(state.caller), 12},
		{"errno", unsafe.Offsetof(state.errno), 16},
		{"run", unsafe.Offsetof(state.run), 20},
		{"maxprocs", unsafe.Offsetof(state.maxprocs), 28},
		{"specPid", unsafe.Offsetof(state.specPid), 32},
		{"specSync", unsafe.Offsetof(state.specSync), 36},
		{"specExe", unsafe.Offsetof(state.specExe), 40},
		{"child", unsafe.Offsetof(state.child), 44},
		{"waited", unsafe.Offsetof(state.waited), 48},
		{"specMounts", unsafe.Offsetof(state.specMounts), 56},
	} {
		if c.got != c.want {
			t.Errorf("state.%s at offset %d, the assembly reads it at %d", c.name, c.got, c.want)
		}
	}
}
