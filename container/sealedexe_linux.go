package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The init stage must not run the host's crier-shim file (CVE-2019-5736):
// its /proc/PID/exe is visible to every process in the container's pid
// namespace, and an image whose entrypoint is "#!/proc/self/exe" makes the
// kernel run init's own executable as the container's process. Whoever
// reaches that file could overwrite the host's runtime; only "text file
// busy" stood in the way, and only while some process ran it.
//
// So init is exec'd from a descriptor of a copy nobody can write:
//
//   - first choice, a file of a private, read-only overlayfs whose only
//     real layer is the binary's directory (the other is an empty tmpfs,
//     as overlayfs wants two layers when it has no upper one). Overlayfs
//     without an upper layer has nowhere to write, whatever the mount
//     flags, so unlike a read-only bind mount there is no writable mount
//     underneath to unwrap. Both mounts are detached: they are never in
//     any mount table and go away with the last reference. It copies
//     nothing and costs some tens of microseconds per create.
//   - otherwise (a kernel without overlayfs layers given by descriptor,
//     Linux 6.13, or a binary that was replaced on disk), a memfd copy
//     sealed against writing, shrinking and growing: about 1.5 ms and the
//     binary's size in memory for as long as init runs.
//
// The descriptor is exec'd as /proc/self/fd/N; stage two of a two-stage
// init and the idmap helper exec the same copy (nsenter_linux.go,
// idmap_linux.go).

// exeAhead is sealedExe running in the background: the shim starts it
// first thing (SealExeAhead), and it overlaps reading the config, so that
// it costs a create no time when the second P is free.
type exeAhead chan exeResult

// ExeAhead is the sealed copy of the init binary being made in the
// background, to be handed to a SpecLoad (UseExe) or dropped.
type ExeAhead struct{ a exeAhead }

// SealExeAhead starts making the sealed copy of the init binary at
// initPath, which Create would otherwise wait for just before it forks
// init.
func SealExeAhead(initPath string) *ExeAhead {
	return &ExeAhead{sealExeAhead(initPath)}
}

// Drop closes the copy once it is made: create failed before it took it.
func (e *ExeAhead) Drop() {
	if e != nil {
		e.a.drop()
	}
}

type exeResult struct {
	f   *os.File
	err error
}

func sealExeAhead(path string) exeAhead {
	a := make(exeAhead, 1)
	go func() {
		f, err := sealedExe(path)
		a <- exeResult{f, err}
	}()
	return a
}

// wait returns what sealedExe returned; call it, or drop, once.
func (a exeAhead) wait() (*os.File, error) {
	r := <-a
	return r.f, r.err
}

// drop waits for the copy and closes it: the create failed before fork.
func (a exeAhead) drop() {
	if f, err := a.wait(); err == nil {
		f.Close()
	}
}

// exeSealKind says which of sealedExe's ways made f: "overlayfs" or
// "memfd".
func exeSealKind(f *os.File) string {
	var fs unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &fs) == nil && fs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return "overlayfs"
	}
	return "memfd"
}

// sealedExe returns a descriptor of an unwritable copy of the executable
// at path.
func sealedExe(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal the init binary: %w", err)
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if f, err := overlayExe(src, &st); err == nil {
		return f, nil
	}
	return memfdExe(src, st.Size)
}

// overlayExe opens src, whose stat is st, through a private read-only
// overlayfs of its directory.
func overlayExe(src *os.File, st *unix.Stat_t) (*os.File, error) {
	// The name it was opened by; " (deleted)" if it was since replaced.
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(src.Fd())))
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(real) || strings.HasSuffix(real, " (deleted)") {
		return nil, fmt.Errorf("%s: no longer on disk", real)
	}
	dir, name := filepath.Split(real)
	dirFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dirFD)
	mnt, err := readOnlyOverlay(dirFD)
	if err != nil {
		return nil, err
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open in overlay", Path: real, Err: err}
	}
	f := os.NewFile(uintptr(fd), real)
	// The directory may have changed since the readlink: make sure this
	// is the file the caller opened (overlayfs has its own st_dev).
	var got unix.Stat_t
	err = unix.Fstat(fd, &got)
	if err == nil && (got.Mode&unix.S_IFMT != unix.S_IFREG || got.Size != st.Size || got.Mtim != st.Mtim) {
		err = errors.New("not the binary that was opened")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s in overlay: %w", real, err)
	}
	return f, nil
}

// readOnlyOverlay mounts, detached, an overlayfs with the directory dirFD
// as its top layer over an empty tmpfs, and returns the mount.
func readOnlyOverlay(dirFD int) (int, error) {
	empty, err := detachedMount("tmpfs", unix.MOUNT_ATTR_RDONLY, nil)
	if err != nil {
		return -1, err
	}
	defer unix.Close(empty)
	return detachedMount("overlay", unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID,
		func(ctx int) error {
			for _, layer := range []int{dirFD, empty} {
				if err := unix.FsconfigSetFd(ctx, "lowerdir+", layer); err != nil {
					return os.NewSyscallError("fsconfig lowerdir+", err)
				}
			}
			// Only for its inode numbers, and it would log when it
			// cannot have them: not needed here.
			unix.FsconfigSetString(ctx, "xino", "off")
			return nil
		})
}

// detachedMount makes a new fstype superblock, configured by config when
// not nil, and returns a detached mount of it with attrs.
func detachedMount(fstype string, attrs int, config func(ctx int) error) (int, error) {
	ctx, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen "+fstype, err)
	}
	defer unix.Close(ctx)
	if config != nil {
		if err := config(ctx); err != nil {
			return -1, err
		}
	}
	if err := unix.FsconfigCreate(ctx); err != nil {
		return -1, os.NewSyscallError("fsconfig create "+fstype, err)
	}
	mnt, err := unix.Fsmount(ctx, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, os.NewSyscallError("fsmount "+fstype, err)
	}
	return mnt, nil
}

// memfdSeals forbid any change to the copy's bytes, and any later change
// to the seals themselves.
const memfdSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// memfdExe copies size bytes of src into a sealed memfd.
func memfdExe(src *os.File, size int64) (*os.File, error) {
	const name = "crier-shim"
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		// Before Linux 6.3 a memfd is executable without MFD_EXEC.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("seal the init binary %s: %w", src.Name(), os.NewSyscallError("memfd_create", err))
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := copySeal(f, src, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the init binary %s: %w", src.Name(), err)
	}
	return f, nil
}

// copySeal copies the first size bytes of src into dst, skipping src's
// holes: crier-shim is installed with the padding between its 2 MB-aligned
// segments left as holes (the Makefile, internal/writebig), half the file,
// which the copy need not hold either.
func copySeal(dst, src *os.File, size int64) error {
	if err := dst.Truncate(size); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		data, hole, err := dataExtent(src, off, size)
		if err != nil {
			return err
		}
		if data >= size {
			break
		}
		if _, err := dst.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if err := sendfileRange(dst, src, data, hole); err != nil {
			return err
		}
		off = hole
	}
	if err := dst.Chmod(0o555); err != nil {
		return err
	}
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, memfdSeals); err != nil {
		return os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	return nil
}

// dataExtent returns the extent of src's data that starts at or after
// off, ending at its next hole or at size: [size, size) when only a hole
// is left. A file system that cannot say has all its bytes as data.
func dataExtent(src *os.File, off, size int64) (data, hole int64, err error) {
	fd := int(src.Fd())
	data, err = unix.Seek(fd, off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO:
		return size, size, nil
	case err != nil:
		return off, size, nil
	}
	if hole, err = unix.Seek(fd, data, unix.SEEK_HOLE); err != nil {
		hole = size
	}
	return data, min(hole, size), nil
}

// sendfileRange copies src's bytes [from, to) to dst's offset.
func sendfileRange(dst, src *os.File, from, to int64) error {
	off := from
	for off < to {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, int(to-off))
		if err != nil && err != unix.EINTR && err != unix.EAGAIN {
			return os.NewSyscallError("sendfile", err)
		}
		if err == nil && n == 0 {
			return fmt.Errorf("copied %d of %d bytes", off, to)
		}
	}
	return nil
}

// execPathFor returns the name by which a child execs the descriptor
// that is its index-th (counting from 0) in syscall.ProcAttr.Files. It
// has to be one of those: the descriptors the child inherits unlisted
// may be dup2'd over while ForkExec lays out the listed ones (Go issue
// 61751), before execve resolves the name. That one is inherited without
// close-on-exec; init sets it again (Init) and it is gone at the user's
// process.
func execPathFor(index int) string {
	return "/proc/self/fd/" + strconv.Itoa(index)
}
