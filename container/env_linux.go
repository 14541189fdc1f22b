package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The process's environment is what its config lists, made the way runc
// makes it, since images and tools are written against runc: a name given
// twice keeps its last value, and HOME, when missing or empty, comes from
// the container's /etc/passwd entry for the process's uid, else "/".

// maxPasswdSize bounds what is read of the container's /etc/passwd: the
// image decides what is there, and a multi-gigabyte file must not stall
// the init on it.
const maxPasswdSize = 4 << 20

// checkEnv rejects an environment that execve would mangle: an entry
// without "=", with an empty name, or with a NUL byte. runc refuses the
// same entries.
func checkEnv(env []string) error {
	for _, kv := range env {
		name, _, found := strings.Cut(kv, "=")
		switch {
		case !found:
			return fmt.Errorf("env: %q has no '='", kv)
		case name == "":
			return fmt.Errorf("env: %q has an empty name", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return fmt.Errorf("env: %s contains a NUL byte", name)
		}
	}
	return nil
}

// processEnv returns env with duplicates dropped (the last value of a name
// wins, in the place of its last occurrence) and HOME set when it is
// missing or empty. It reads /etc/passwd of the process's root, so it
// runs once init or the exec stage has entered the container's root; it
// reads nothing when HOME is set.
func processEnv(env []string, uid uint32) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env)+1)
	hasHome := false
	for i := len(env) - 1; i >= 0; i-- {
		name, val, _ := strings.Cut(env[i], "=")
		if seen[name] {
			continue
		}
		seen[name] = true
		if name == "HOME" {
			if val == "" {
				continue // replaced below, as runc does
			}
			hasHome = true
		}
		out = append(out, env[i])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if !hasHome {
		out = append(out, "HOME="+homeOf(uid))
	}
	return out
}

// homeOf returns uid's home directory from /etc/passwd of the current
// root, or "/" when the file or the entry is missing or unreadable.
func homeOf(uid uint32) string {
	const dflt = "/"
	f, err := openPasswd()
	if err != nil {
		return dflt
	}
	defer f.Close()
	return passwdHome(io.LimitReader(f, maxPasswdSize), uid, dflt)
}

// openPasswd opens /etc/passwd below the current root, which is the
// container's: symlinks resolve inside it and magic links are refused
// (openat2InRoot), and only a regular file is read, so that a FIFO or a
// device planted by the image cannot block or feed the init.
func openPasswd() (*os.File, error) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	fd, err := openat2InRoot(root, "etc/passwd", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, false)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/etc/passwd")
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("/etc/passwd: not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// passwdHome returns the home directory of the first entry for uid in a
// passwd file, or dflt.
func passwdHome(r io.Reader, uid uint32, dflt string) string {
	sc := bufio.NewScanner(r)
	want := strconv.FormatUint(uint64(uid), 10)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[2] == want {
			if fields[5] == "" {
				return dflt
			}
			return fields[5]
		}
	}
	return dflt
}
