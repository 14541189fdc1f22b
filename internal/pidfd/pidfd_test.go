package pidfd

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper starts a process that runs until killed, and returns it with a
// pidfd of it.
func sleeper(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to run: %v", err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skipf("pidfd_open: %v", err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, fd
}

func TestWait(t *testing.T) {
	cmd, fd := sleeper(t)
	if err := Wait(fd, 10*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait on a running process = %v, want a timeout", err)
	}
	if exited, err := Exited(fd); exited || err != nil {
		t.Fatalf("Exited on a running process = %v, %v", exited, err)
	}
	notified := make(chan error, 1)
	if err := Notify(fd, func(err error) { notified <- err }); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := Wait(fd, -1); err != nil {
		t.Fatalf("Wait after SIGKILL = %v", err)
	}
	if exited, err := Exited(fd); !exited || err != nil {
		t.Fatalf("Exited after the exit = %v, %v", exited, err)
	}
	select {
	case err := <-notified:
		if err != nil {
			t.Errorf("Notify's done got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify's done not called after the exit")
	}
}

func TestReap(t *testing.T) {
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 3"}, &syscall.ProcAttr{})
	if err != nil {
		t.Skipf("no /bin/sh to run: %v", err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Wait4(pid, nil, 0, nil)
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	if err := Reap(fd); err != nil {
		t.Fatalf("Reap = %v", err)
	}
	if _, err := unix.Wait4(pid, nil, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Errorf("wait4 after Reap = %v, want ECHILD: the child was not reaped", err)
	}
}

func TestBadDescriptor(t *testing.T) {
	if err := Wait(-1, -1); !errors.Is(err, unix.EBADF) {
		t.Errorf("Wait(-1) = %v, want EBADF", err)
	}
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if err := Wait(fd, time.Second); !errors.Is(err, unix.EBADF) {
		t.Errorf("Wait on a closed descriptor = %v, want EBADF", err)
	}
}

// TestOpenNamespace: each descriptor is of the process's own namespace
// (the same inode as /proc/PID/ns/NAME).
func TestOpenNamespace(t *testing.T) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	for name, kind := range map[string]Namespace{"mnt": MountNamespace, "net": NetNamespace, "ipc": IPCNamespace} {
		ns, err := OpenNamespace(fd, kind)
		if errors.Is(err, unix.ENOTTY) {
			t.Skipf("kernel before 6.11: %v", err)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got, want unix.Stat_t
		if err := unix.Fstat(ns, &got); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat("/proc/self/ns/"+name, &want); err != nil {
			t.Fatal(err)
		}
		if got.Ino != want.Ino || got.Dev != want.Dev {
			t.Errorf("%s: namespace inode %d:%d, want /proc/self/ns/%s's %d:%d", name, got.Dev, got.Ino, name, want.Dev, want.Ino)
		}
		if flags, err := unix.FcntlInt(uintptr(ns), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: descriptor flags %#x, %v; want close-on-exec", name, flags, err)
		}
		unix.Close(ns)
	}
}
