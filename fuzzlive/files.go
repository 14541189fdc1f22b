package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fdPool holds descriptors of every kind the fuzzer attaches to requests.
// One of each is enough: a descriptor repeated in one SCM_RIGHTS message
// arrives as that many descriptors.
type fdPool struct {
	// execSafe are /dev/null, a memfd, a regular file, an O_PATH
	// directory and the helper's pidfd: none of them can block a read.
	execSafe []int
	// other are the rest: pipe ends, sockets, an eventfd, an epoll.
	other       []int
	helperPidfd int
}

// newFdPool opens the descriptors in dir; helper is a pidfd of a live
// child of ours, the process adopt requests name.
func newFdPool(dir string, helper int) (*fdPool, error) {
	p := &fdPool{helperPidfd: helper}
	add := func(list *[]int, fd int, err error, what string) error {
		if err != nil {
			return fmt.Errorf("fd pool: %s: %w", what, err)
		}
		*list = append(*list, fd)
		return nil
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err := add(&p.execSafe, null, err, "open /dev/null"); err != nil {
		return nil, err
	}
	mfd, err := unix.MemfdCreate("fuzz-config", unix.MFD_CLOEXEC)
	if err == nil {
		unix.Write(mfd, []byte(`{"process": not a config`))
	}
	if err := add(&p.execSafe, mfd, err, "memfd_create"); err != nil {
		return nil, err
	}
	reg, err := unix.Open(filepath.Join(dir, "regular"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err := add(&p.execSafe, reg, err, "open a regular file"); err != nil {
		return nil, err
	}
	opath, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err := add(&p.execSafe, opath, err, "open O_PATH"); err != nil {
		return nil, err
	}
	p.execSafe = append(p.execSafe, helper)
	var pipe [2]int
	err = unix.Pipe2(pipe[:], unix.O_CLOEXEC)
	if err := add(&p.other, pipe[0], err, "pipe"); err != nil {
		return nil, err
	}
	p.other = append(p.other, pipe[1])
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err := add(&p.other, pair[0], err, "socketpair"); err != nil {
		return nil, err
	}
	p.other = append(p.other, pair[1])
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err := add(&p.other, efd, err, "eventfd"); err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err := add(&p.other, ep, err, "epoll_create1"); err != nil {
		return nil, err
	}
	return p, nil
}

// any returns n descriptors of any kind.
func (p *fdPool) any(r *rand.Rand, n int) []int {
	fds := make([]int, n)
	all := len(p.execSafe) + len(p.other)
	for i := range fds {
		k := r.IntN(all)
		if k < len(p.execSafe) {
			fds[i] = p.execSafe[k]
		} else {
			fds[i] = p.other[k-len(p.execSafe)]
		}
	}
	return fds
}

// execFiles returns n descriptors for an exec: the first, its config,
// half the time a regular file (the stage then runs, and fails on what it
// reads), else anything (the shim refuses what is not a regular file).
func (p *fdPool) execFiles(r *rand.Rand, n int) []int {
	fds := p.any(r, n)
	if r.IntN(2) == 0 {
		fds[0] = p.execSafe[1+r.IntN(2)] // the memfd or the regular file
	}
	return fds
}

// notPidfd returns a descriptor of any kind but a pidfd.
func (p *fdPool) notPidfd(r *rand.Rand) int {
	for {
		if fd := p.any(r, 1)[0]; fd != p.helperPidfd {
			return fd
		}
	}
}
