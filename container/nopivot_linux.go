package container

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// moveRootInto enters rootfs without pivot_root, as runc's --no-pivot
// does (for a rootfs that pivot_root refuses, as on an initramfs): the
// rootfs mount is moved over / and the process chroots into it. The old
// root stays in the mount namespace underneath, out of reach of the
// chroot but not of the kernel's check that lets a user namespace mount
// a procfs or sysfs only where a fully visible one already is: left
// there, the host's /proc would let the container's process mount a
// procfs without the masks (`unshare -mrpf mount -t proc`) and write
// /proc/sysrq-trigger. So every procfs and sysfs mounted whole outside
// the rootfs is detached first, or covered by a tmpfs where the kernel
// refuses the detach. Those mounts are this mount namespace's copies of
// the host's; the host keeps its own.
func moveRootInto(rootfs string) error {
	if err := hideHostKernelFilesystems(rootfs); err != nil {
		return err
	}
	if err := unix.Chdir(rootfs); err != nil {
		return &os.PathError{Op: "chdir", Path: rootfs, Err: err}
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return &MountError{Source: rootfs, Target: "/", Flags: unix.MS_MOVE, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: rootfs, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// hideHostKernelFilesystems detaches (or covers) every whole procfs and
// sysfs mount outside rootfs. Paths come from mountinfo, the host's
// layout outside the rootfs: nothing there is the image's.
func hideHostKernelFilesystems(rootfs string) error {
	resolved, mounts, err := mountsAround(rootfs)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.root != "/" || (m.fstype != "proc" && m.fstype != "sysfs") || pathWithin(m.mountpoint, resolved) {
			continue
		}
		// The detach must not reach the host's peers.
		err := setMountPropagation(m.mountpoint, unix.MS_SLAVE|unix.MS_REC)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			continue // below one detached already
		}
		if err != nil {
			return &MountError{Target: m.mountpoint, Flags: unix.MS_SLAVE | unix.MS_REC, Err: err}
		}
		err = unix.Unmount(m.mountpoint, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			err = unix.Mount("tmpfs", m.mountpoint, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}
		if err != nil {
			return &MountError{Target: m.mountpoint, Type: m.fstype, Err: err}
		}
	}
	return nil
}
