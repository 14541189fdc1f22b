package container

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinkFollows matches the kernel's own limit on links followed in one
// lookup, so a path that resolves inside the container resolves here too.
const maxSymlinkFollows = 255

// secureJoin resolves unsafePath as if root were "/": symlinks are followed
// component by component, absolute targets restart at root and ".." stops at
// root, so the result is always lexically inside root. Components that do
// not exist (or sit below a non-directory) are joined as they are, so the
// caller can create them.
//
// The result is only as trustworthy as the tree is quiet: nothing may swap a
// component for a symlink between this call and the use of the path, which
// holds in the init stage because the container's processes have not
// started yet.
func secureJoin(root, unsafePath string) (string, error) {
	root = filepath.Clean(root)
	// resolved is clean, relative to root, "" for root itself, and never
	// holds ".." or a symlink.
	resolved := ""
	remaining := unsafePath
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = parentOfRelative(resolved)
			continue
		}
		next := filepath.Join(resolved, part)
		target, isLink, err := readLinkIfSymlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !isLink {
			resolved = next
			continue
		}
		links++
		if links > maxSymlinkFollows {
			return "", &os.PathError{Op: "securejoin", Path: unsafePath, Err: unix.ELOOP}
		}
		if strings.HasPrefix(target, "/") {
			resolved = ""
		}
		remaining = target + "/" + remaining
	}
	return filepath.Join(root, resolved), nil
}

// parentOfRelative is filepath.Dir for secureJoin's root-relative paths,
// where the parent of a top-level name, and of root itself, is root.
func parentOfRelative(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// readLinkIfSymlink reports a missing path, or one below a non-directory,
// as a plain non-link: secureJoin joins such components unresolved.
func readLinkIfSymlink(p string) (target string, isLink bool, err error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return "", false, nil
	}
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false, err
	}
	target, err = os.Readlink(p)
	return target, err == nil, err
}
