package container

import (
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// MountError is the error of one mount the config asks for: an entry of
// spec.Mounts, the bind of the rootfs onto itself, or the propagation of
// /. It is made once, where the mount is asked for, and names the mount;
// the functions below it return the bare cause.
type MountError struct {
	Source string  // as in the config: a path, or a name such as "tmpfs"
	Target string  // the destination, as in the config
	Type   string  // the filesystem type, "bind" for a bind; "" for propagation
	Flags  uintptr // the mount(2) flags the config's options make
	Err    error
}

// Error reads, for example,
// `mount /data: bind /srv/data, flags ro,rbind: stat /srv/data: no such file or directory`.
func (e *MountError) Error() string {
	var b strings.Builder
	b.WriteString("mount ")
	b.WriteString(e.Target)
	b.WriteString(": ")
	what := e.Type
	if e.Source != "" && e.Source != e.Type {
		what = strings.TrimSpace(what + " " + e.Source)
	}
	if what != "" {
		b.WriteString(what)
	}
	if f := mountFlagNames(e.Flags); f != "" {
		if what != "" {
			b.WriteString(", ")
		}
		b.WriteString("flags ")
		b.WriteString(f)
	}
	if what != "" || e.Flags != 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *MountError) Unwrap() error { return e.Err }

// mountErr names err as the error of the config's mount m, with the
// flags its options make (propagation included; none when the options are
// what is wrong, as err then says).
func mountErr(m specs.Mount, err error) error {
	flags, props, _, perr := parseMountOptions(m.Options)
	if perr != nil {
		flags = 0
	}
	for _, p := range props {
		flags |= p
	}
	return &MountError{Source: m.Source, Target: m.Destination, Type: m.Type, Flags: flags, Err: err}
}

// mountFlagBits names the mount(2) flags as the config's options do, in
// the order mount(8) prints them. A function returning an array, so that
// nobody can change it.
func mountFlagBits() [20]struct {
	flag uintptr
	name string
} {
	return [...]struct {
		flag uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_SYNCHRONOUS, "sync"}, {unix.MS_REMOUNT, "remount"},
		{unix.MS_MANDLOCK, "mand"}, {unix.MS_DIRSYNC, "dirsync"}, {unix.MS_NOSYMFOLLOW, "nosymfollow"},
		{unix.MS_NOATIME, "noatime"}, {unix.MS_NODIRATIME, "nodiratime"}, {unix.MS_BIND, "bind"},
		{unix.MS_REC, "rec"}, {unix.MS_SILENT, "silent"}, {unix.MS_PRIVATE, "private"},
		{unix.MS_SLAVE, "slave"}, {unix.MS_SHARED, "shared"}, {unix.MS_UNBINDABLE, "unbindable"},
		{unix.MS_RELATIME, "relatime"}, {unix.MS_STRICTATIME, "strictatime"},
	}
}

// mountFlagNames lists the flags set in flags, comma-separated; a bit with
// no name shows in hex.
func mountFlagNames(flags uintptr) string {
	var names []string
	for _, f := range mountFlagBits() {
		if flags&f.flag != 0 {
			names = append(names, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 {
		names = append(names, "0x"+strconv.FormatUint(uint64(flags), 16))
	}
	return strings.Join(names, ",")
}
