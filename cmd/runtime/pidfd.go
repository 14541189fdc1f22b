package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
)

// errGone says a process is no longer the one the state file names.
var errGone = errors.New("no longer running")

// openChecked returns a pidfd of pid, once it is sure to be the process
// that started at start. The pidfd is opened first and the start time read
// after: if the pid was reused in between the check fails, and if it is
// reused after, the pidfd still names the process that was checked.
func openChecked(pid int, start uint64) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, errGone
		}
		return -1, os.NewSyscallError("pidfd_open", err)
	}
	if !container.Alive(pid, start) {
		unix.Close(fd)
		return -1, errGone
	}
	return fd, nil
}

// signalChecked sends sig to pid only if it is still the process that
// started at start, through a pidfd so that a recycled pid is never hit.
func signalChecked(pid int, start uint64, sig unix.Signal) error {
	fd, err := openChecked(pid, start)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errGone
		}
		return fmt.Errorf("signal %d: %w", pid, os.NewSyscallError("pidfd_send_signal", err))
	}
	return nil
}
