package container

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDying: this process is not dying; a zombie and a pid that is gone
// are; SIGKILL pending in SigPnd or ShdPnd is.
func TestDying(t *testing.T) {
	if Dying(os.Getpid()) {
		t.Error("Dying(self) = true")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Exited and not reaped (WNOWAIT): a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !Dying(pid) {
		t.Errorf("Dying(%d) = false for a zombie", pid)
	}
	cmd.Wait()
	if !Dying(pid) {
		t.Errorf("Dying(%d) = false for a reaped process", pid)
	}
	for _, tt := range []struct {
		status string
		want   bool
	}{
		{"SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", false},
		{"SigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n", true},
		{"SigPnd:\t0000000000000000\nShdPnd:\t0000000000004100\n", true},
		{"SigPnd:\t0000000000000080\nShdPnd:\t0000000000000200\n", false},
	} {
		if got := killPending([]byte(tt.status)); got != tt.want {
			t.Errorf("killPending(%q) = %v, want %v", tt.status, got, tt.want)
		}
	}
}
