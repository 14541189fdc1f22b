package container

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name  string
		opts  []string
		flags uintptr
		prop  []uintptr
		data  string
	}{
		{name: "empty"},
		{name: "ro", opts: []string{"ro"}, flags: unix.MS_RDONLY},
		{name: "ro then rw", opts: []string{"ro", "rw"}},
		{name: "rw then ro", opts: []string{"rw", "ro"}, flags: unix.MS_RDONLY},
		{
			name:  "proc defaults",
			opts:  []string{"nosuid", "noexec", "nodev"},
			flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV,
		},
		{name: "suid clears", opts: []string{"nosuid", "suid", "nodev", "dev", "noexec", "exec"}},
		{
			name:  "tmpfs dev",
			opts:  []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			flags: unix.MS_NOSUID | unix.MS_STRICTATIME,
			data:  "mode=755,size=65536k",
		},
		{
			name:  "devpts",
			opts:  []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			flags: unix.MS_NOSUID | unix.MS_NOEXEC,
			data:  "newinstance,ptmxmode=0666,mode=0620,gid=5",
		},
		{name: "bind", opts: []string{"bind"}, flags: unix.MS_BIND},
		{name: "rbind", opts: []string{"rbind", "ro"}, flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY},
		{name: "sync async", opts: []string{"sync", "async"}},
		{name: "sync dirsync", opts: []string{"sync", "dirsync"}, flags: unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC},
		{name: "remount", opts: []string{"remount", "ro"}, flags: unix.MS_REMOUNT | unix.MS_RDONLY},
		{name: "mand", opts: []string{"mand"}, flags: unix.MS_MANDLOCK},
		{name: "nomand", opts: []string{"mand", "nomand"}},
		{name: "atime", opts: []string{"noatime", "atime"}},
		{name: "noatime", opts: []string{"noatime", "nodiratime"}, flags: unix.MS_NOATIME | unix.MS_NODIRATIME},
		{name: "diratime", opts: []string{"nodiratime", "diratime"}},
		{name: "relatime", opts: []string{"relatime"}, flags: unix.MS_RELATIME},
		{name: "norelatime", opts: []string{"relatime", "norelatime"}},
		{name: "nostrictatime", opts: []string{"strictatime", "nostrictatime"}},
		{name: "silent", opts: []string{"silent"}, flags: unix.MS_SILENT},
		{name: "loud", opts: []string{"silent", "loud"}},
		{name: "lazytime", opts: []string{"lazytime"}, flags: unix.MS_LAZYTIME},
		{name: "nolazytime", opts: []string{"lazytime", "nolazytime"}},
		{name: "defaults", opts: []string{"defaults"}},
		{
			name:  "propagation in order",
			opts:  []string{"rbind", "rprivate", "shared", "rslave"},
			flags: unix.MS_BIND | unix.MS_REC,
			prop: []uintptr{
				unix.MS_PRIVATE | unix.MS_REC,
				unix.MS_SHARED,
				unix.MS_SLAVE | unix.MS_REC,
			},
		},
		{
			name: "all propagation",
			opts: []string{"private", "rshared", "slave", "unbindable", "runbindable"},
			prop: []uintptr{
				unix.MS_PRIVATE,
				unix.MS_SHARED | unix.MS_REC,
				unix.MS_SLAVE,
				unix.MS_UNBINDABLE,
				unix.MS_UNBINDABLE | unix.MS_REC,
			},
		},
		{name: "unknown kept in order", opts: []string{"z", "ro", "", "lowerdir=/a:/b", "xattr"}, flags: unix.MS_RDONLY, data: "z,lowerdir=/a:/b,xattr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, prop, data, err := parseMountOptions(tt.opts)
			if err != nil {
				t.Fatalf("parseMountOptions(%q): %v", tt.opts, err)
			}
			if flags != tt.flags {
				t.Errorf("flags = %#x, want %#x", flags, tt.flags)
			}
			if !slices.Equal(prop, tt.prop) {
				t.Errorf("propagation = %#x, want %#x", prop, tt.prop)
			}
			if data != tt.data {
				t.Errorf("data = %q, want %q", data, tt.data)
			}
		})
	}
}

func TestParseMountOptionsUnsupported(t *testing.T) {
	for _, o := range []string{"rro", "rnosuid"} {
		if _, _, _, err := parseMountOptions([]string{"rbind", o}); err == nil {
			t.Errorf("parseMountOptions(rbind,%s) succeeded, want an error", o)
		}
	}
}

// The idmap options are crier's, never the filesystem's.
func TestParseMountOptionsIDMap(t *testing.T) {
	flags, prop, data, err := parseMountOptions([]string{"rbind", "idmap", "ridmap", "ro", "x=1"})
	if err != nil {
		t.Fatal(err)
	}
	if flags != unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY || prop != nil || data != "x=1" {
		t.Errorf("flags %#x, propagation %v, data %q", flags, prop, data)
	}
}

func TestMountIDMapping(t *testing.T) {
	ids := func(c, h, n uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: c, HostID: h, Size: n}}
	}
	two := func(a, b specs.LinuxIDMapping) []specs.LinuxIDMapping { return []specs.LinuxIDMapping{a, b} }
	m := func(typ string, opts []string, uids, gids []specs.LinuxIDMapping) specs.Mount {
		return specs.Mount{Destination: "/d", Type: typ, Source: "/s", Options: opts, UIDMappings: uids, GIDMappings: gids}
	}
	tests := []struct {
		name   string
		m      specs.Mount
		userns bool
		want   *idmapping // nil with wantErr "": not idmapped
		err    string
	}{
		{name: "plain bind", m: m("bind", []string{"rbind"}, nil, nil)},
		{name: "mappings alone", m: m("none", []string{"bind"}, ids(0, 1, 2), ids(3, 4, 5)),
			want: &idmapping{uids: ids(0, 1, 2), gids: ids(3, 4, 5)}},
		{name: "idmap", m: m("bind", []string{"idmap"}, ids(0, 1, 2), ids(0, 1, 2)),
			want: &idmapping{uids: ids(0, 1, 2), gids: ids(0, 1, 2)}},
		{name: "ridmap", m: m("none", []string{"rbind", "ridmap"}, ids(0, 1, 2), ids(0, 1, 2)),
			want: &idmapping{recursive: true, uids: ids(0, 1, 2), gids: ids(0, 1, 2)}},
		{name: "container's", m: m("rbind", []string{"idmap"}, nil, nil), userns: true, want: &idmapping{}},
		{name: "container's, none", m: m("bind", []string{"idmap"}, nil, nil), err: "there is none"},
		{name: "not bind", m: m("tmpfs", []string{"idmap"}, ids(0, 1, 2), ids(0, 1, 2)), err: "only bind mounts"},
		{name: "bad option", m: m("bind", []string{"idmap", "rro"}, nil, nil), userns: true, err: `"rro"`},
		{name: "uids only", m: m("bind", nil, ids(0, 1, 2), nil), err: "together"},
		{name: "gids only", m: m("bind", []string{"idmap"}, nil, ids(0, 1, 2)), userns: true, err: "together"},
		{name: "empty", m: m("bind", nil, []specs.LinuxIDMapping{}, ids(0, 1, 2)), err: "uidMappings is empty"},
		{name: "size 0", m: m("bind", nil, ids(0, 1, 2), ids(0, 1, 0)), err: "gidMappings[0]: size is 0"},
		{name: "container past end", m: m("bind", nil, ids(0xffffffff, 1, 1), ids(0, 1, 1)), err: "uidMappings[0]: range goes past"},
		{name: "host past end", m: m("bind", nil, ids(0, 0xfffffff0, 0x10), ids(0, 1, 1)), err: "uidMappings[0]: range goes past"},
		{name: "last ID", m: m("bind", nil, ids(0, 0xfffffff0, 0xf), ids(0, 1, 1)),
			want: &idmapping{uids: ids(0, 0xfffffff0, 0xf), gids: ids(0, 1, 1)}},
		{name: "container overlap", m: m("bind", nil, ids(0, 1, 1), two(
			specs.LinuxIDMapping{ContainerID: 10, HostID: 100, Size: 10},
			specs.LinuxIDMapping{ContainerID: 19, HostID: 200, Size: 1})),
			err: "gidMappings[1]: containerID range overlaps gidMappings[0]"},
		{name: "host overlap", m: m("bind", nil, two(
			specs.LinuxIDMapping{ContainerID: 10, HostID: 100, Size: 10},
			specs.LinuxIDMapping{ContainerID: 0, HostID: 95, Size: 6}), ids(0, 1, 1)),
			err: "uidMappings[1]: hostID range overlaps uidMappings[0]"},
		{name: "adjacent", m: m("bind", nil, two(
			specs.LinuxIDMapping{ContainerID: 10, HostID: 100, Size: 10},
			specs.LinuxIDMapping{ContainerID: 20, HostID: 90, Size: 10}), ids(0, 1, 1)),
			want: &idmapping{uids: two(
				specs.LinuxIDMapping{ContainerID: 10, HostID: 100, Size: 10},
				specs.LinuxIDMapping{ContainerID: 20, HostID: 90, Size: 10}), gids: ids(0, 1, 1)}},
		{name: "too many", m: m("bind", nil, ids(0, 1, 1), make([]specs.LinuxIDMapping, maxIDMapEntries+1)), err: "at most 340"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mountIDMapping(tt.m, tt.userns)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if wantsIDMap(tt.m) != (tt.want != nil) {
				t.Errorf("wantsIDMap = %v", wantsIDMap(tt.m))
			}
		})
	}
}

func TestParseMountinfoLine(t *testing.T) {
	tests := []struct {
		line string
		want mountinfoEntry
	}{
		{
			line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			want: mountinfoEntry{root: "/mnt1", mountpoint: "/mnt2", fstype: "ext3", superOpts: "rw,errors=continue"},
		},
		{
			line: "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
			want: mountinfoEntry{root: "/", mountpoint: "/", shared: true, fstype: "ext4", superOpts: "rw"},
		},
		{
			line: "40 31 0:37 / /sys/fs/cgroup/cpu,cpuacct rw shared:7 master:2 - cgroup cgroup rw,cpu,cpuacct",
			want: mountinfoEntry{root: "/", mountpoint: "/sys/fs/cgroup/cpu,cpuacct", shared: true, fstype: "cgroup", superOpts: "rw,cpu,cpuacct"},
		},
		{
			line: `50 27 0:50 /a\134b /with\040space\011tab rw unbindable - tmpfs tmpfs rw`,
			want: mountinfoEntry{root: `/a\b`, mountpoint: "/with space\ttab", unbindable: true, fstype: "tmpfs", superOpts: "rw"},
		},
	}
	for _, tt := range tests {
		got, err := parseMountinfoLine(tt.line)
		if err != nil {
			t.Errorf("parseMountinfoLine(%q): %v", tt.line, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseMountinfoLine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
	for _, bad := range []string{"", "1 2 3 4 5 6 7", "36 35 98:0 / / rw - ext4 /dev/vda"} {
		if _, err := parseMountinfoLine(bad); err == nil {
			t.Errorf("parseMountinfoLine(%q) succeeded, want an error", bad)
		}
	}
}

func TestCgroupV1MountOptions(t *testing.T) {
	tests := map[string]string{
		"rw,cpu,cpuacct":                           "cpu,cpuacct",
		"ro,xattr,name=systemd":                    "xattr,name=systemd",
		"rw,release_agent=/sbin/agent,memory":      "memory",
		"rw,nosuid,noprefix,cpuset,clone_children": "nosuid,noprefix,cpuset,clone_children",
	}
	for in, want := range tests {
		if got := cgroupV1MountData(in); got != want {
			t.Errorf("cgroupV1MountData(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwnCgroupDir(t *testing.T) {
	procCgroup := "12:cpu,cpuacct:/a/b\n3:name=systemd:/sys.slice\n2:memory:/m\n0::/unified/x\n"
	tests := []struct {
		m    mountinfoEntry
		want string
	}{
		{mountinfoEntry{root: "/", mountpoint: "/sys/fs/cgroup/cpu,cpuacct", fstype: "cgroup", superOpts: "rw,cpu,cpuacct"}, "/sys/fs/cgroup/cpu,cpuacct/a/b"},
		{mountinfoEntry{root: "/", mountpoint: "/sys/fs/cgroup/systemd", fstype: "cgroup", superOpts: "rw,xattr,name=systemd"}, "/sys/fs/cgroup/systemd/sys.slice"},
		{mountinfoEntry{root: "/", mountpoint: "/sys/fs/cgroup", fstype: "cgroup2", superOpts: "rw,nsdelegate"}, "/sys/fs/cgroup/unified/x"},
		{mountinfoEntry{root: "/m", mountpoint: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: "rw,memory"}, "/sys/fs/cgroup/memory"},
		{mountinfoEntry{root: "/other", mountpoint: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: "rw,memory"}, ""},
		{mountinfoEntry{root: "/", mountpoint: "/sys/fs/cgroup/pids", fstype: "cgroup", superOpts: "rw,pids"}, ""},
	}
	for _, tt := range tests {
		if got := ownCgroupDir(procCgroup, tt.m); got != tt.want {
			t.Errorf("ownCgroupDir(%s) = %q, want %q", tt.m.mountpoint, got, tt.want)
		}
	}
}
