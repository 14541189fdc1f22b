package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Idmapped mounts are made in two halves. The parent (Create, as real root
// in the runtime's namespaces) clones each source into a detached mount
// tree and applies the mapping to it: init cannot, since inside a user
// namespace of its own it has no privilege over the host's filesystems.
// The trees go to init with its config (SCM_RIGHTS on the sync socket),
// and init attaches each with move_mount(2) where its mount comes in the
// config's order. The same path serves containers without a user
// namespace, so there is one way to make these mounts.

// sendConfig sends init its config, with a detached tree attached for
// every idmapped mount and, with a user namespace, every bind mount
// (bindsrc_linux.go).
func (c *Container) sendConfig() error {
	ic, err := c.initConfig()
	if err != nil {
		return err
	}
	idx, trees, err := c.prepareMountTrees()
	if err != nil {
		return err
	}
	defer closeFiles(trees)
	ic.Trees = idx
	return c.sync.sendFiles(message{Type: msgConfig, Config: ic}, trees)
}

// prepareIDMappedMounts returns, for each idmapped mount of spec in order
// whose source is not in rootfs, its index in spec.Mounts and its
// detached, idmapped tree. initPid is
// init's pid, whose user namespace is the container's; exe is the sealed
// init binary (usernsWithMappings). The caller closes the trees; a tree
// closed before it is attached is simply dissolved.
func prepareIDMappedMounts(spec *specs.Spec, bundle, rootfs string, initPid int, exe *os.File) (idx []int, trees []*os.File, err error) {
	userns := HasNamespace(spec, specs.UserNamespace)
	nss := usernsSource{initPid: initPid, label: bundle, exe: exe}
	defer nss.close()
	defer func() {
		if err != nil {
			closeFiles(trees)
			idx, trees = nil, nil
		}
	}()
	for i, m := range spec.Mounts {
		im, err := mountIDMapping(m, userns)
		if err != nil {
			return idx, trees, mountErr(m, err)
		}
		if _, inRoot := bindSourceInRootfs(m, bundle, rootfs); im == nil || inRoot {
			// One in the rootfs is cloned by init at its turn
			// (rootfssrc_linux.go).
			continue
		}
		if len(trees) == maxSyncFiles {
			return idx, trees, mountErr(m, fmt.Errorf("more than %d idmapped mounts", maxSyncFiles))
		}
		ns, err := nss.get(im)
		if err != nil {
			return idx, trees, mountErr(m, err)
		}
		flags, _, _, _ := parseMountOptions(m.Options)
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		tree, err := idmappedTree(src, m.Type == "rbind" || flags&unix.MS_REC != 0, im.recursive, ns)
		if err != nil {
			return idx, trees, mountErr(m, err)
		}
		idx, trees = append(idx, i), append(trees, tree)
	}
	return idx, trees, nil
}

// idmappedTree returns a detached copy of the mount at src, with the
// mounts below it when rbind, whose IDs are mapped as the user namespace
// ns maps them: an ID on disk is read as an ID inside ns and shown as the
// one it maps to outside. recursive maps the mounts below too.
func idmappedTree(src string, rbind, recursive bool, ns *os.File) (*os.File, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if rbind {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: src, Err: err}
	}
	tree := os.NewFile(uintptr(fd), src)
	// The clone is made in the shim's mount namespace, the host's, and a
	// clone of a shared mount joins its peer group: attached in the
	// container, it would carry every mount the container makes under it
	// back to the host, to stay there. A slave receives the host's
	// mounts and sends none, as the container's other binds do under
	// its default rslave root; the config's own propagation options
	// apply once it is attached.
	slave := unix.MountAttr{Propagation: unix.MS_SLAVE}
	treeAt := unix.AT_EMPTY_PATH
	if rbind {
		treeAt |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", uint(treeAt), &slave); err != nil {
		tree.Close()
		return nil, &os.PathError{Op: "mount_setattr MS_SLAVE", Path: src, Err: err}
	}
	if err := idmapTree(tree, src, recursive, ns); err != nil {
		tree.Close()
		return nil, err
	}
	return tree, nil
}

// idmapTree maps the IDs of the detached tree (a clone of src) as the user
// namespace ns maps them; recursive maps the mounts below its top too.
func idmapTree(tree *os.File, src string, recursive bool, ns *os.File) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	at := unix.AT_EMPTY_PATH
	if recursive {
		at |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(int(tree.Fd()), "", uint(at), &attr); err != nil {
		return idmapError(src, recursive, err)
	}
	return nil
}

// idmapError says why the kernel refused to idmap src (and the mounts
// below it, recursive), in the terms the user can act on.
func idmapError(src string, recursive bool, err error) error {
	var why string
	switch {
	case errors.Is(err, unix.ENOSYS):
		why = "the kernel does not support idmapped mounts"
	case errors.Is(err, unix.EINVAL) && recursive:
		why = "its filesystem (" + fsTypeName(src) + ") or that of a mount below it does not support idmapped mounts"
	case errors.Is(err, unix.EINVAL):
		why = "its filesystem (" + fsTypeName(src) + ") does not support idmapped mounts"
	case errors.Is(err, unix.EPERM):
		why = "not permitted (is it already idmapped?)"
	default:
		why = "cannot idmap it"
	}
	return fmt.Errorf("%s: %s: %w", src, why, os.NewSyscallError("mount_setattr", err))
}

// fsTypeNames names the filesystems an idmap is most often refused on. A
// constant lookup table.
var fsTypeNames = map[int64]string{
	unix.OVERLAYFS_SUPER_MAGIC: "overlay",
	unix.PROC_SUPER_MAGIC:      "proc",
	unix.SYSFS_MAGIC:           "sysfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.FUSE_SUPER_MAGIC:      "fuse",
	unix.DEVPTS_SUPER_MAGIC:    "devpts",
	unix.CGROUP_SUPER_MAGIC:    "cgroup",
	unix.CGROUP2_SUPER_MAGIC:   "cgroup2",
	unix.EXT4_SUPER_MAGIC:      "ext4",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
}

func fsTypeName(p string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "unknown"
	}
	if name, ok := fsTypeNames[int64(st.Type)]; ok {
		return name
	}
	return fmt.Sprintf("magic %#x", st.Type)
}

// usernsSource hands out user namespaces for idmaps: the container's own,
// or one per distinct mapping made for the purpose and shared by the
// mounts that ask for the same one.
type usernsSource struct {
	initPid int
	label   string   // on the helpers' command lines, for ps and leak checks
	exe     *os.File // what the helpers exec
	byMap   map[string]*os.File
}

func (s *usernsSource) get(im *idmapping) (*os.File, error) {
	key := "container"
	if im.uids != nil {
		key = idmapKey(im.uids) + ";" + idmapKey(im.gids)
	}
	if f, ok := s.byMap[key]; ok {
		return f, nil
	}
	var f *os.File
	var err error
	if im.uids == nil {
		// Init is this process's unreaped child, so its pid cannot
		// have been reused.
		f, err = os.Open("/proc/" + strconv.Itoa(s.initPid) + "/ns/user")
	} else {
		f, err = usernsWithMappings(im.uids, im.gids, s.label, s.exe)
	}
	if err != nil {
		return nil, err
	}
	if s.byMap == nil {
		s.byMap = map[string]*os.File{}
	}
	s.byMap[key] = f
	return f, nil
}

func (s *usernsSource) close() {
	for _, f := range s.byMap {
		f.Close()
	}
	s.byMap = nil
}

func idmapKey(ms []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d:%d:%d,", m.ContainerID, m.HostID, m.Size)
	}
	return b.String()
}

// usernsWithMappings returns a new user namespace with these mappings. A
// user namespace lives as long as something refers to it, and only a
// process can be made in a new one from a multithreaded program: a child
// is made in it that never runs a single instruction of its own (traced,
// it stops at its execve of exe, the sealed init binary: never the host's
// file, see sealedexe_linux.go), the namespace is opened from its /proc
// entry, and the child is killed and reaped before this returns.
func usernsWithMappings(uids, gids []specs.LinuxIDMapping, label string, exe *os.File) (*os.File, error) {
	// The forking thread is the tracer: it must not be handed back to
	// the runtime while the child lives.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pidfd := -1
	attr := &syscall.ProcAttr{
		Files: []uintptr{exe.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: idMaps(uids),
			GidMappings: idMaps(gids),
			Ptrace:      true,
			Pdeathsig:   unix.SIGKILL,
			PidFD:       &pidfd,
		},
	}
	pid, err := syscall.ForkExec(execPathFor(0), []string{"crier-idmap-userns", label}, attr)
	if err != nil {
		return nil, fmt.Errorf("user namespace for the mappings: %w", err)
	}
	defer killAndReap(pid, pidfd)
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("user namespace for the mappings: %w", err)
	}
	return f, nil
}

// killAndReap ends a child made by usernsWithMappings. Being traced, it
// may first report its stop at execve; only its death ends the wait.
func killAndReap(pid, pidfd int) {
	if pidfd >= 0 {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		unix.Close(pidfd)
	} else {
		// Still this process's unreaped child: the pid is its own.
		unix.Kill(pid, unix.SIGKILL)
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// attachDetachedTree attaches tree, made by idmappedTree or
// bindSourceTree, over t's descriptor and applies the per-mount flags,
// returning a descriptor of the attached mount's root.
func attachDetachedTree(tree *os.File, t *target, flags uintptr) (int, error) {
	before, _, err := mountID(t.fd)
	if err != nil {
		return -1, err
	}
	if err := attachTree(int(tree.Fd()), t.fd); err != nil {
		return -1, fmt.Errorf("attach %s: %w", tree.Name(), err)
	}
	dst, err := landed(t, before)
	if err != nil {
		return -1, err
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
		if err := remountBind(procFD(dst), rest); err != nil {
			unix.Close(dst)
			return -1, err
		}
	}
	return dst, nil
}

// mountTreesFor lays out the trees that came with init's config by the
// index of their mount in spec.Mounts.
func mountTreesFor(cfg *initConfig, files []*os.File) ([]*os.File, error) {
	if len(files) != len(cfg.Trees) {
		closeFiles(files)
		return nil, fmt.Errorf("init: %d mount trees for %d mounts that take one", len(files), len(cfg.Trees))
	}
	trees := make([]*os.File, len(cfg.Spec.Mounts))
	for i, idx := range cfg.Trees {
		if idx < 0 || idx >= len(trees) || trees[idx] != nil {
			closeFiles(files)
			return nil, fmt.Errorf("init: mount tree index %d is not valid", idx)
		}
		trees[idx] = files[i]
	}
	return trees, nil
}
