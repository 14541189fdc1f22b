package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Bind sources inside the rootfs.
//
// A bind mount's source may be a path under the container's rootfs
// ("$rootfs/mnt/x"), often one that an earlier mount of the same config
// made: runc's mounts.bats builds a tree of binds and then binds parts of
// it elsewhere. Such a source is the rootfs as it is at that mount's turn,
// so it cannot be opened ahead of time (by the parent, for a user
// namespace or an idmap) and it is the image's ground: a symlink in it
// must not lead out to the host. So init resolves it at its turn, inside
// the rootfs by descriptor (openat2 RESOLVE_IN_ROOT, as every target), and
// binds from that descriptor. An idmapped one is cloned there by init and
// mapped by the parent, which alone may idmap the host's filesystems
// (msgIDMap). Destinations given as host paths under the rootfs are taken
// as paths inside it, as runc takes them.

// mountSource is how init gets a mount's source other than by its path:
// a detached tree the parent made, or the source's path inside the rootfs.
type mountSource struct {
	tree   *os.File
	inRoot string
	// idmap has the parent map a tree init cloned of an inRoot source.
	idmap func(tree *os.File) error
}

// inRootfs returns where the host path p is inside rootfs, as "/a/b",
// when p lies lexically at or below it.
func inRootfs(p, rootfs string) (string, bool) {
	p = filepath.Clean(p)
	switch {
	case p == rootfs:
		return "/", true
	case rootfs == "/" || !pathWithin(p, rootfs):
		return "", false
	}
	return p[len(rootfs):], true
}

// bindSourceInRootfs says whether m is a bind mount whose source lies in
// the rootfs, and where. A relative source is the bundle's.
func bindSourceInRootfs(m specs.Mount, bundle, rootfs string) (string, bool) {
	flags, _, _, err := parseMountOptions(m.Options)
	if err != nil || !isBindMount(m.Type, flags) {
		return "", false
	}
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(bundle, src)
	}
	return inRootfs(src, rootfs)
}

// destinationsInRootfs rewrites the destinations the config gives as host
// paths under rootfs into paths inside it.
func destinationsInRootfs(mounts []specs.Mount, rootfs string) {
	for i, m := range mounts {
		if rel, ok := inRootfs(m.Destination, rootfs); ok && filepath.IsAbs(m.Destination) {
			mounts[i].Destination = rel
		}
	}
}

// initMountSources lays out, by index in spec.Mounts, the trees the
// parent sent and the sources init resolves in the rootfs itself. idmap
// asks the parent to map a tree of mount i.
func initMountSources(cfg *initConfig, trees []*os.File, idmap func(i int, tree *os.File) error) []*mountSource {
	srcs := make([]*mountSource, len(cfg.Spec.Mounts))
	for i, m := range cfg.Spec.Mounts {
		if trees[i] != nil {
			srcs[i] = &mountSource{tree: trees[i]}
			continue
		}
		rel, ok := bindSourceInRootfs(m, cfg.Bundle, cfg.Rootfs)
		if !ok {
			continue
		}
		srcs[i] = &mountSource{inRoot: rel}
		if wantsIDMap(m) {
			srcs[i].idmap = func(tree *os.File) error { return idmap(i, tree) }
		}
	}
	return srcs
}

// openInRootSource resolves src.inRoot in root. With an idmap it returns
// the mapped clone (the caller attaches and closes it), else the path that
// names the descriptor for mount(2).
func openInRootSource(root *rootDir, src *mountSource, rbind bool) (path string, tree *os.File, closeFn func(), err error) {
	fd, err := openat2InRoot(root.fd, src.inRoot, unix.O_PATH, false)
	if err != nil {
		return "", nil, nil, fmt.Errorf("source in the rootfs: %w", err)
	}
	if src.idmap == nil {
		return procFD(fd), nil, func() { unix.Close(fd) }, nil
	}
	defer unix.Close(fd)
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
	if rbind {
		flags |= unix.AT_RECURSIVE
	}
	t, err := unix.OpenTree(fd, "", uint(flags))
	if err != nil {
		return "", nil, nil, fmt.Errorf("source in the rootfs: %w", &os.PathError{Op: "open_tree", Path: src.inRoot, Err: err})
	}
	tree = os.NewFile(uintptr(t), src.inRoot)
	if err := src.idmap(tree); err != nil {
		tree.Close()
		return "", nil, nil, err
	}
	return "", tree, func() { tree.Close() }, nil
}

// requestIDMap is init's side of msgIDMap: it sends the tree of mount i
// to the parent and waits until the parent has mapped it.
func requestIDMap(conn *syncConn, i int, tree *os.File) error {
	if err := conn.sendFiles(message{Type: msgIDMap, Message: strconv.Itoa(i)}, []*os.File{tree}); err != nil {
		return err
	}
	_, err := conn.expect(msgIDMapDone)
	return err
}

// idmapInitTree is the parent's side of msgIDMap: it maps the tree init
// cloned of mount i's source in the rootfs, as prepareIDMappedMounts maps
// the trees it clones itself.
func (c *Container) idmapInitTree(m message, nss *usernsSource) error {
	files := c.sync.takeFiles()
	defer closeFiles(files)
	i, err := strconv.Atoi(m.Message)
	if err != nil || i < 0 || i >= len(c.Spec.Mounts) || len(files) != 1 {
		return fmt.Errorf("sync: %s: bad request %q with %d descriptors", msgIDMap, m.Message, len(files))
	}
	mnt := c.Spec.Mounts[i]
	if _, ok := bindSourceInRootfs(mnt, c.Bundle, c.Rootfs); !ok || !wantsIDMap(mnt) {
		return fmt.Errorf("sync: %s: mount %d is not an idmapped mount of the rootfs", msgIDMap, i)
	}
	im, err := mountIDMapping(mnt, HasNamespace(c.Spec, specs.UserNamespace))
	if err == nil && im == nil {
		err = errors.New("not idmapped")
	}
	if err != nil {
		return mountErr(mnt, err)
	}
	ns, err := nss.get(im)
	if err != nil {
		return mountErr(mnt, err)
	}
	if err := idmapTree(files[0], mnt.Source, im.recursive, ns); err != nil {
		return mountErr(mnt, err)
	}
	return c.sync.send(message{Type: msgIDMapDone})
}
