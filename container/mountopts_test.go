package container

import (
	"slices"
	"testing"

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
	for _, o := range []string{"idmap", "ridmap", "rro", "rnosuid"} {
		if _, _, _, err := parseMountOptions([]string{"rbind", o}); err == nil {
			t.Errorf("parseMountOptions(rbind,%s) succeeded, want an error", o)
		}
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
