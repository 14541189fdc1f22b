package container

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// idmapMountOptions ask for an idmapped mount; the value says whether the
// mapping applies to the mounts below too (runtime-spec config.md). They
// are for crier, never for mount(2). A constant lookup table.
var idmapMountOptions = map[string]bool{"idmap": false, "ridmap": true}

// tmpcopyupOption asks that a tmpfs start with a copy of what the
// directory it covers holds (runc's extension, tmpcopyup_linux.go). It is
// for crier, never for mount(2), and means nothing on other types.
const tmpcopyupOption = "tmpcopyup"

// parseMountOptions splits fstab-style options into mount(2) flags,
// propagation changes (each needs its own mount(2) call, in order) and the
// filesystem-specific data string. The idmap options are left to
// mountIDMapping.
func parseMountOptions(opts []string) (flags uintptr, propagation []uintptr, data string, err error) {
	var extra []string
	for _, o := range opts {
		if _, ok := idmapMountOptions[o]; ok || o == tmpcopyupOption {
			continue
		}
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

// wantsTmpcopyup reports whether m is a tmpfs that starts with a copy of
// the directory it covers.
func wantsTmpcopyup(m specs.Mount) bool {
	return m.Type == "tmpfs" && slices.Contains(m.Options, tmpcopyupOption)
}

// wantsIDMap reports whether m asks to be idmapped, rightly or not.
func wantsIDMap(m specs.Mount) bool {
	if m.UIDMappings != nil || m.GIDMappings != nil {
		return true
	}
	for _, o := range m.Options {
		if _, ok := idmapMountOptions[o]; ok {
			return true
		}
	}
	return false
}

// idmapping is how one mount is idmapped.
type idmapping struct {
	// recursive: every mount of an rbind tree gets the mapping, not only
	// its top (ridmap).
	recursive bool
	// uids and gids are the mount's own mappings, both nil for the
	// container's user namespace.
	uids, gids []specs.LinuxIDMapping
}

// maxIDMapEntries is how many lines the kernel accepts in uid_map.
const maxIDMapEntries = 340

// mountIDMapping says whether m is an idmapped mount and how, or why it
// cannot be one. Where the runtime-spec leaves a choice, crier does as
// runc: uidMappings without an idmap option make an idmap mount (the
// option is a SHOULD), an option without mappings takes the container's
// user namespace (an error without one), and only bind mounts can be
// idmapped, since the mapping needs an existing mount to clone. userns
// says whether the container has a user namespace, new or joined.
func mountIDMapping(m specs.Mount, userns bool) (*idmapping, error) {
	if !wantsIDMap(m) {
		return nil, nil
	}
	var r idmapping
	for _, o := range m.Options {
		r.recursive = r.recursive || idmapMountOptions[o]
	}
	flags, _, _, err := parseMountOptions(m.Options)
	if err != nil {
		return nil, err
	}
	if !isBindMount(m.Type, flags) {
		return nil, errors.New("only bind mounts can be idmapped (add the bind or rbind option)")
	}
	switch {
	case (m.UIDMappings == nil) != (m.GIDMappings == nil):
		return nil, errors.New("uidMappings and gidMappings must be given together")
	case m.UIDMappings == nil && !userns:
		return nil, errors.New("idmap without uidMappings and gidMappings takes the container's user namespace, and there is none")
	case m.UIDMappings == nil:
		return &r, nil
	}
	if err := validIDMappings("uidMappings", m.UIDMappings); err != nil {
		return nil, err
	}
	if err := validIDMappings("gidMappings", m.GIDMappings); err != nil {
		return nil, err
	}
	r.uids, r.gids = m.UIDMappings, m.GIDMappings
	return &r, nil
}

// validIDMappings checks what the kernel would refuse when the mapping is
// written to uid_map or gid_map, so that the error names the entry: no
// empty list or range, no range past the last ID, no two ranges
// overlapping on either side.
func validIDMappings(field string, ms []specs.LinuxIDMapping) error {
	if len(ms) == 0 {
		return fmt.Errorf("%s is empty", field)
	}
	if len(ms) > maxIDMapEntries {
		return fmt.Errorf("%s has %d entries, the kernel takes at most %d", field, len(ms), maxIDMapEntries)
	}
	const idLimit = 1 << 32 // IDs are 32 bits; (uid_t)-1 is never valid
	for i, m := range ms {
		if m.Size == 0 {
			return fmt.Errorf("%s[%d]: size is 0", field, i)
		}
		if uint64(m.ContainerID)+uint64(m.Size) >= idLimit || uint64(m.HostID)+uint64(m.Size) >= idLimit {
			return fmt.Errorf("%s[%d]: range goes past the last ID", field, i)
		}
		for j, o := range ms[:i] {
			if overlaps(m.ContainerID, o.ContainerID, m.Size, o.Size) {
				return fmt.Errorf("%s[%d]: containerID range overlaps %s[%d]", field, i, field, j)
			}
			if overlaps(m.HostID, o.HostID, m.Size, o.Size) {
				return fmt.Errorf("%s[%d]: hostID range overlaps %s[%d]", field, i, field, j)
			}
		}
	}
	return nil
}

func overlaps(a, b, asize, bsize uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsize) && uint64(b) < uint64(a)+uint64(asize)
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
