package container

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Bind sources in a user namespace.
//
// With a user namespace, init builds the rootfs as root of that namespace,
// which on the host is an unprivileged uid: a bind source that only the
// host's root may reach (a directory of mode 0700 on its way) would fail
// it, where runc, which opens the sources as the host's root, succeeds.
// So, as runc does, the parent opens them for init. A throwaway thread
// joins init's mount namespace, which is still a copy of the host's view
// (init mounts nothing before it has its config), and clones each source
// there with open_tree(2): the clone is what a bind made by init would be
// (the flags the copy locked stay locked, and it is a slave of the host's
// mounts, as the copy's are), but it was reached with the host root's
// permissions. The detached trees go to init with the idmapped ones
// (idmap_linux.go) and init attaches each in its turn, on the target it
// resolves as always (resolve_linux.go).

// prepareMountTrees returns the detached trees for init, and the index in
// spec.Mounts of each: the idmapped mounts' and, with a user namespace,
// the bind mounts'.
func (c *Container) prepareMountTrees() (idx []int, trees []*os.File, err error) {
	idx, trees, err = prepareIDMappedMounts(c.Spec, c.Bundle, c.Rootfs, c.Pid, c.exe)
	if err != nil || !HasNamespace(c.Spec, specs.UserNamespace) {
		return idx, trees, err
	}
	bidx, btrees, err := c.bindSourceTrees()
	if err != nil {
		closeFiles(trees)
		return nil, nil, err
	}
	if n := len(trees) + len(btrees); n > maxSyncFiles {
		closeFiles(trees)
		closeFiles(btrees)
		return nil, nil, fmt.Errorf("mounts: %d idmapped and bind mounts in a user namespace, at most %d", n, maxSyncFiles)
	}
	return append(idx, bidx...), append(trees, btrees...), nil
}

// bindSourceTrees clones the source of every bind mount of the config
// that is not idmapped, in init's mount namespace, and returns the trees
// with their mounts' indexes.
func (c *Container) bindSourceTrees() (idx []int, trees []*os.File, err error) {
	for i, m := range c.Spec.Mounts {
		flags, _, _, err := parseMountOptions(m.Options)
		_, inRoot := bindSourceInRootfs(m, c.Bundle, c.Rootfs)
		// A malformed entry is init's to report, in its turn; one in
		// the rootfs init resolves there (rootfssrc_linux.go).
		if err == nil && isBindMount(m.Type, flags) && !wantsIDMap(m) && !inRoot {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, nil, nil
	}
	err = c.inMountNamespace(func() error {
		for _, i := range idx {
			m := c.Spec.Mounts[i]
			flags, _, _, _ := parseMountOptions(m.Options)
			src := m.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(c.Bundle, src)
			}
			tree, err := bindSourceTree(src, m.Type == "rbind" || flags&unix.MS_REC != 0)
			if err != nil {
				return mountErr(m, err)
			}
			trees = append(trees, tree)
		}
		return nil
	})
	if err != nil {
		closeFiles(trees)
		return nil, nil, err
	}
	return idx, trees, nil
}

// bindSourceTree returns a detached copy of the mount at src, with the
// mounts below it when rbind, as mount(2) with MS_BIND would attach it.
func bindSourceTree(src string, rbind bool) (*os.File, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if rbind {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: src, Err: err}
	}
	return os.NewFile(uintptr(fd), src), nil
}

// inMountNamespace runs fn on a throwaway OS thread that has joined init's
// mount namespace. The thread is never unlocked: the Go runtime discards
// it when fn returns rather than reuse it in the container's namespace.
func (c *Container) inMountNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- c.joinMountNamespace(fn)
	}()
	return <-errc
}

func (c *Container) joinMountNamespace(fn func() error) error {
	// Threads share their filesystem context, and setns into a mount
	// namespace refuses a shared one: give this thread its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare CLONE_FS", err)
	}
	// Init's pidfd names it even when a supervisor has reaped it and
	// its pid is someone else's.
	fd := c.PidFD
	if fd < 0 {
		p := "/proc/" + strconv.Itoa(c.Pid) + "/ns/mnt"
		var err error
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("init's mount namespace: %w", &os.PathError{Op: "open", Path: p, Err: err})
		}
		defer unix.Close(fd)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("init's mount namespace: %w", os.NewSyscallError("setns", err))
	}
	return fn()
}
