package shim

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// sendFDs writes one byte with n copies of fd (SCM_RIGHTS).
func sendFDs(t *testing.T, fd int, n int, write func(b, oob []byte) error) {
	t.Helper()
	fds := make([]int, n)
	for i := range fds {
		fds[i] = fd
	}
	if err := write([]byte{' '}, unix.UnixRights(fds...)); err != nil {
		t.Fatal(err)
	}
}

// TestFdConnHoldsAtMostALine: a connection holds at most MaxExecFiles
// descriptors for one line, and the shim's connections together at most
// maxHeldFiles; what comes past either is closed at once and the line
// marked truncated (refused). Taking the descriptors frees their room.
// (Without the bounds, a client sending descriptors in pieces of a line it
// never ends filled the shim's descriptor table: found by the live
// fuzzer, make fuzz-live.)
func TestFdConnHoldsAtMostALine(t *testing.T) {
	var budget fileBudget
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	srv, cli := connPair(t)
	before := openFDs(t)
	fc := &fdConn{conn: srv, budget: &budget}
	write := func(b, oob []byte) error { _, _, err := cli.WriteMsgUnix(b, oob, nil); return err }
	buf := make([]byte, 16)
	for range 3 {
		sendFDs(t, int(null.Fd()), 200, write)
		if _, err := fc.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if len(fc.files) != protocol.MaxExecFiles || !fc.truncated || budget.held.Load() != protocol.MaxExecFiles {
		t.Fatalf("after 600 descriptors on one line: %d held, truncated %v, budget %d; want %d, true, %d",
			len(fc.files), fc.truncated, budget.held.Load(), protocol.MaxExecFiles, protocol.MaxExecFiles)
	}
	if got := openFDs(t) - before; got != protocol.MaxExecFiles {
		t.Errorf("%d descriptors open, want the %d held: the dropped ones must be closed", got, protocol.MaxExecFiles)
	}
	files, truncated := fc.take()
	closeFiles(files)
	if !truncated || budget.held.Load() != 0 {
		t.Errorf("take: truncated %v, budget %d; want true, 0", truncated, budget.held.Load())
	}

	// The shim-wide bound: connections at MaxExecFiles each.
	budget.held.Store(maxHeldFiles - 10)
	sendFDs(t, int(null.Fd()), 20, write)
	if _, err := fc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if len(fc.files) != 10 || !fc.truncated || budget.held.Load() != maxHeldFiles {
		t.Errorf("at the shim's bound: %d held, truncated %v, budget %d; want 10, true, %d", len(fc.files), fc.truncated, budget.held.Load(), maxHeldFiles)
	}
	files, _ = fc.take()
	closeFiles(files)
	if got := openFDs(t); got != before {
		t.Errorf("%d descriptors open after take and close, %d before", got, before)
	}
}
