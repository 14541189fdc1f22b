package container

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// inheritPassedFDs makes the descriptors passed to the container (3 up to
// the sync socket at syncFD: --preserve-fds and LISTEN_FDS) inheritable
// again. RunHooks marks them close-on-exec so that no hook gets them; init
// calls this once every hook has run, just before it execs the container's
// process, which is the only program that should have them.
func inheritPassedFDs(syncFD int) error {
	for fd := 3; fd < syncFD; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("passed descriptor %d: fcntl F_SETFD: %w", fd, err)
		}
	}
	return nil
}
