package shim

import (
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// supervisedExit on a real process whose parent (this test, standing in
// for the supervisor) reaps it: nothing before the exit, nothing between
// the exit and the reap, the exact status after it.
func TestSupervisedExit(t *testing.T) {
	pidfd := -1
	cmd := exec.Command("/bin/sh", "-c", "read x; exit 7")
	cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("no shell: %v", err)
	}
	defer unix.Close(pidfd)
	if _, _, ok := supervisedExit(pidfd); ok {
		t.Fatal("exit reported while the process runs")
	}
	in.Close()
	// Exited, not reaped: the supervisor has not collected it yet.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := supervisedExit(pidfd); ok {
		t.Fatal("exit reported before the parent reaped")
	}
	cmd.Wait()
	ws, known, ok := supervisedExit(pidfd)
	if !ok {
		t.Fatal("no exit after the parent reaped")
	}
	if !known {
		t.Skip("kernel without PIDFD_INFO_EXIT (6.15): unknown, as documented")
	}
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Fatalf("status %#x, want exit 7", uint32(ws))
	}
}
