package pidfd

import (
	"errors"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDecodeExit(t *testing.T) {
	for _, c := range []struct {
		name     string
		in       info
		known    bool
		exited   bool
		status   int
		signaled bool
		signal   unix.Signal
		core     bool
	}{
		{name: "not reaped or no PIDFD_INFO_EXIT", in: info{mask: 0x7, exitCode: 0}},
		{name: "exit 0", in: info{mask: infoExit}, known: true, exited: true},
		{name: "exit 3", in: info{mask: infoExit | 0x7, exitCode: 3 << 8}, known: true, exited: true, status: 3},
		{name: "exit 200", in: info{mask: infoExit, exitCode: 200 << 8}, known: true, exited: true, status: 200},
		{name: "exit 255", in: info{mask: infoExit, exitCode: 255 << 8}, known: true, exited: true, status: 255},
		{name: "SIGKILL", in: info{mask: infoExit, exitCode: 9}, known: true, signaled: true, signal: unix.SIGKILL},
		{name: "SIGSEGV with core", in: info{mask: infoExit, exitCode: 0x80 | 11}, known: true, signaled: true, signal: unix.SIGSEGV, core: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, known := decodeExit(&c.in)
			if known != c.known {
				t.Fatalf("known = %v, want %v", known, c.known)
			}
			if !known {
				return
			}
			if ws.Exited() != c.exited || ws.ExitStatus() != c.status && c.exited {
				t.Errorf("exited %v status %d, want %v %d", ws.Exited(), ws.ExitStatus(), c.exited, c.status)
			}
			if ws.Signaled() != c.signaled || c.signaled && (ws.Signal() != c.signal || ws.CoreDump() != c.core) {
				t.Errorf("signaled %v %v core %v, want %v %v %v", ws.Signaled(), ws.Signal(), ws.CoreDump(), c.signaled, c.signal, c.core)
			}
		})
	}
}

// The layout and request number against the running kernel: the real
// parent (this test) reaps, and the exit read afterwards from a pidfd must
// be what the parent got, every time.
func TestExitStatusAfterParentReaps(t *testing.T) {
	if n := unsafe.Sizeof(info{}); n != 64 {
		t.Fatalf("struct pidfd_info is %d bytes, want PIDFD_INFO_SIZE_VER0 (64)", n)
	}
	const runs = 200
	for i := 0; i < runs; i++ {
		code := (i + 1) % 256
		pidfd := -1
		cmd := exec.Command("/bin/sh", "-c", "exit $0", strconv.Itoa(code))
		if i%10 == 9 {
			cmd = exec.Command("/bin/sh", "-c", "kill -9 $$")
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
		if err := cmd.Start(); err != nil {
			t.Skipf("no shell to run: %v", err)
		}
		cmd.Wait()
		want := cmd.ProcessState.Sys().(syscall.WaitStatus)
		ws, known, err := ExitStatus(pidfd)
		reaped, rerr := Reaped(pidfd)
		unix.Close(pidfd)
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) || err == nil && !known && i == 0 {
			t.Skipf("kernel without PIDFD_INFO_EXIT (6.15): %v", err)
		}
		if err != nil || !known {
			t.Fatalf("run %d: ExitStatus = %v, known %v, %v", i, ws, known, err)
		}
		if uint32(ws) != uint32(want) {
			t.Fatalf("run %d: wait status %#x from the pidfd, the parent reaped %#x", i, uint32(ws), uint32(want))
		}
		if !reaped || rerr != nil {
			t.Fatalf("run %d: Reaped = %v, %v after the reap", i, reaped, rerr)
		}
	}
}

// A reader asking over and over while the parent reaps never gets an
// error, and gets the status the parent got: the kernel answers ESRCH
// to a call that the reap overtakes (ExitStatus).
func TestExitStatusRacingTheReap(t *testing.T) {
	const runs = 300
	for i := 0; i < runs; i++ {
		pidfd := -1
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
		if err := cmd.Start(); err != nil {
			t.Skipf("no /bin/true: %v", err)
		}
		type result struct {
			ws    unix.WaitStatus
			known bool
			err   error
		}
		read := make(chan result, 1)
		go func() {
			for {
				ws, known, err := ExitStatus(pidfd)
				if known || err != nil {
					read <- result{ws, known, err}
					return
				}
			}
		}()
		cmd.Wait()
		got := <-read
		unix.Close(pidfd)
		if errors.Is(got.err, unix.ENOTTY) || errors.Is(got.err, unix.EINVAL) {
			t.Skipf("kernel without PIDFD_GET_INFO (6.13): %v", got.err)
		}
		if got.err != nil {
			t.Fatalf("run %d: ExitStatus racing the reap: %v", i, got.err)
		}
		if want := cmd.ProcessState.Sys().(syscall.WaitStatus); uint32(got.ws) != uint32(want) {
			t.Fatalf("run %d: wait status %#x from the pidfd, the parent reaped %#x", i, uint32(got.ws), uint32(want))
		}
	}
}

// Before the reap there is no exit to read, and the pidfd is not hung up.
func TestExitStatusBeforeReap(t *testing.T) {
	cmd, fd := sleeper(t)
	cmd.Process.Signal(unix.SIGKILL)
	if err := Wait(fd, -1); err != nil {
		t.Fatal(err)
	}
	if _, known, err := ExitStatus(fd); known || err != nil && !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("ExitStatus before the reap: known %v, %v", known, err)
	}
	if reaped, err := Reaped(fd); reaped || err != nil {
		t.Fatalf("Reaped before the reap = %v, %v", reaped, err)
	}
}

// NotifyReap tells of the exit, then of the reap, then ends.
func TestNotifyReap(t *testing.T) {
	cmd, fd := sleeper(t)
	events := make(chan error, 4)
	if err := NotifyReap(fd, func(err error) { events <- err }); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(unix.SIGKILL)
	if err := <-events; err != nil {
		t.Fatalf("exit event: %v", err)
	}
	if r, _ := Reaped(fd); r {
		t.Fatal("reaped before the parent waited")
	}
	cmd.Wait()
	if err := <-events; err != nil {
		t.Fatalf("reap event: %v", err)
	}
	if r, _ := Reaped(fd); !r {
		t.Fatal("second event before the reap")
	}
}
