package container

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlagOption is what one fstab-style option word does to the flags of
// mount(2): set or clear bits. Later words win over earlier ones, as with
// mount(8), so "ro,rw" ends up read-write.
type mountFlagOption struct {
	clear bool
	flag  uintptr
}

// mountFlagOptions is a constant lookup table; it is never written to.
var mountFlagOptions = map[string]mountFlagOption{
	"defaults":      {false, 0},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"suid":          {true, unix.MS_NOSUID},
	"nosuid":        {false, unix.MS_NOSUID},
	"dev":           {true, unix.MS_NODEV},
	"nodev":         {false, unix.MS_NODEV},
	"exec":          {true, unix.MS_NOEXEC},
	"noexec":        {false, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"iversion":      {false, unix.MS_I_VERSION},
	"noiversion":    {true, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
}

// mountPropagationOptions is a constant lookup table; it is never written to.
var mountPropagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// unsupportedMountOptions would otherwise land in the data string, where the
// kernel ignores them for bind mounts: "rro" silently giving a writable
// mount is worse than refusing the configuration.
var unsupportedMountOptions = map[string]bool{
	"idmap": true, "ridmap": true,
	"rro": true, "rrw": true,
	"rnosuid": true, "rsuid": true,
	"rnodev": true, "rdev": true,
	"rnoexec": true, "rexec": true,
	"rnoatime": true, "ratime": true,
	"rnodiratime": true, "rdiratime": true,
	"rrelatime": true, "rnorelatime": true,
	"rstrictatime": true, "rnostrictatime": true,
	"rnosymfollow": true, "rsymfollow": true,
}

// parseMountOptions splits fstab-style options into mount(2) flags,
// propagation changes (each needs its own mount(2) call, in order) and the
// filesystem-specific data string.
func parseMountOptions(opts []string) (flags uintptr, propagation []uintptr, data string, err error) {
	var extra []string
	for _, o := range opts {
		if f, ok := mountFlagOptions[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := mountPropagationOptions[o]; ok {
			propagation = append(propagation, p)
			continue
		}
		if unsupportedMountOptions[o] {
			return 0, nil, "", fmt.Errorf("mount option %q is not supported", o)
		}
		if o != "" {
			extra = append(extra, o)
		}
	}
	return flags, propagation, strings.Join(extra, ","), nil
}

// mountinfoEntry is the part of a /proc/self/mountinfo line used here.
type mountinfoEntry struct {
	root       string // path of the mount's root within its filesystem
	mountpoint string
	shared     bool // has a "shared:N" optional field
	unbindable bool
	fstype     string
	superOpts  string
}

// parseMountinfoLine parses one line as described in proc(5):
// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions.
func parseMountinfoLine(line string) (mountinfoEntry, error) {
	fields := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) < sep+4 {
		return mountinfoEntry{}, fmt.Errorf("mountinfo: malformed line %q", line)
	}
	m := mountinfoEntry{
		root:       unescapeMountinfo(fields[3]),
		mountpoint: unescapeMountinfo(fields[4]),
		fstype:     fields[sep+1],
		superOpts:  fields[sep+3],
	}
	for _, f := range fields[6:sep] {
		m.shared = m.shared || strings.HasPrefix(f, "shared:")
		m.unbindable = m.unbindable || f == "unbindable"
	}
	return m, nil
}

// unescapeMountinfo undoes the kernel's octal escaping of space, tab,
// newline and backslash in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
