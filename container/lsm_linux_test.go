package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// fakeLSMHost builds a procfs/sysfs tree under a temporary directory from
// files (path relative to the root: content; a trailing "/" makes a
// directory) and returns a host reading it. The magic numbers are those of
// the temporary directory's filesystem, so the fake passes the checks that
// the real tree would.
func fakeLSMHost(t *testing.T, files map[string]string) (lsmHost, string) {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	return lsmHost{
		proc:          filepath.Join(root, "proc"),
		sys:           filepath.Join(root, "sys"),
		procType:      int64(st.Type),
		selinuxfsType: int64(st.Type),
	}, root
}

func TestLSMEnabled(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// realMagic makes the host expect the real selinuxfs magic, which
		// the temporary directory does not have.
		realMagic bool
		want      LSMs
	}{
		{"nothing", map[string]string{"sys/": "", "proc/": ""}, false, LSMs{}},
		{"apparmor on", map[string]string{"sys/module/apparmor/parameters/enabled": "Y\n"}, false, LSMs{AppArmor: true}},
		{"apparmor built in, not chosen", map[string]string{"sys/module/apparmor/parameters/enabled": "N\n"}, false, LSMs{}},
		{"selinux with a policy", map[string]string{
			"sys/fs/selinux/":        "",
			"proc/self/attr/current": "system_u:system_r:unconfined_t:s0\x00",
		}, false, LSMs{SELinux: true}},
		{"selinux without a policy", map[string]string{
			"sys/fs/selinux/":        "",
			"proc/self/attr/current": "kernel\x00",
		}, false, LSMs{}},
		{"a directory that is not selinuxfs", map[string]string{
			"sys/fs/selinux/":        "",
			"proc/self/attr/current": "unconfined\n",
		}, true, LSMs{}},
		{"both", map[string]string{
			"sys/module/apparmor/parameters/enabled": "Y",
			"sys/fs/selinux/":                        "",
		}, false, LSMs{AppArmor: true, SELinux: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := fakeLSMHost(t, tt.files)
			if tt.realMagic {
				h.selinuxfsType = unix.SELINUX_MAGIC
			}
			if got := h.enabled(); got != tt.want {
				t.Errorf("enabled() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSetExecLabels(t *testing.T) {
	const (
		aaExec = "proc/thread-self/attr/apparmor/exec"
		exec   = "proc/thread-self/attr/exec"
	)
	tests := []struct {
		name     string
		files    map[string]string
		realProc bool // expect the real procfs magic
		process  specs.Process
		want     map[string]string // file: content after the call
		wantErr  []string
	}{
		{
			name:    "apparmor, 5.8 and later",
			files:   map[string]string{aaExec: "", exec: ""},
			process: specs.Process{ApparmorProfile: "crier-default"},
			want:    map[string]string{aaExec: "exec crier-default", exec: ""},
		},
		{
			name:    "apparmor, older kernels",
			files:   map[string]string{exec: ""},
			process: specs.Process{ApparmorProfile: "crier-default"},
			want:    map[string]string{exec: "exec crier-default"},
		},
		{
			name:    "selinux",
			files:   map[string]string{aaExec: "", exec: ""},
			process: specs.Process{SelinuxLabel: "system_u:system_r:container_t:s0:c1,c2"},
			want:    map[string]string{aaExec: "", exec: "system_u:system_r:container_t:s0:c1,c2"},
		},
		{
			name:    "no labels",
			files:   map[string]string{exec: ""},
			process: specs.Process{},
			want:    map[string]string{exec: ""},
		},
		{
			name:    "no attr file",
			files:   map[string]string{"proc/thread-self/": ""},
			process: specs.Process{ApparmorProfile: "crier-default"},
			wantErr: []string{`apparmorProfile "crier-default"`, "attr/exec", "no such file"},
		},
		{
			name:     "not procfs",
			files:    map[string]string{exec: ""},
			realProc: true,
			process:  specs.Process{SelinuxLabel: "system_u:system_r:container_t:s0"},
			want:     map[string]string{exec: ""},
			wantErr:  []string{`selinuxLabel "system_u:system_r:container_t:s0"`, "is not on procfs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, root := fakeLSMHost(t, tt.files)
			if tt.realProc {
				h.procType = unix.PROC_SUPER_MAGIC
			}
			err := h.setExecLabels(&tt.process)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("setExecLabels: %v", err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to contain %q", err, w)
				}
			}
			for name, want := range tt.want {
				b, err := os.ReadFile(filepath.Join(root, name))
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != want {
					t.Errorf("%s = %q, want %q", name, b, want)
				}
			}
		})
	}
}

func TestSpecForInit(t *testing.T) {
	labelled := func() *specs.Spec {
		return &specs.Spec{
			Process: &specs.Process{ApparmorProfile: "aa", SelinuxLabel: "se", Args: []string{"true"}},
			Linux:   &specs.Linux{MountLabel: "mnt", CgroupsPath: "/x"},
		}
	}
	tests := []struct {
		name       string
		on         LSMs
		wantAA     string
		wantSE     string
		wantMount  string
		sameAsSpec bool
	}{
		{"both on", LSMs{AppArmor: true, SELinux: true}, "aa", "se", "mnt", true},
		{"both off", LSMs{}, "", "", "", false},
		{"apparmor only", LSMs{AppArmor: true}, "aa", "", "", false},
		{"selinux only", LSMs{SELinux: true}, "", "se", "mnt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := labelled()
			got := specForInit(spec, tt.on)
			if (got == spec) != tt.sameAsSpec {
				t.Errorf("returned the spec itself: %v, want %v", got == spec, tt.sameAsSpec)
			}
			if got.Process.ApparmorProfile != tt.wantAA || got.Process.SelinuxLabel != tt.wantSE || got.Linux.MountLabel != tt.wantMount {
				t.Errorf("labels %q %q %q, want %q %q %q", got.Process.ApparmorProfile, got.Process.SelinuxLabel,
					got.Linux.MountLabel, tt.wantAA, tt.wantSE, tt.wantMount)
			}
			if got.Process.Args[0] != "true" || got.Linux.CgroupsPath != "/x" {
				t.Error("the rest of the spec was lost")
			}
			if want := labelled(); spec.Process.ApparmorProfile != want.Process.ApparmorProfile ||
				spec.Process.SelinuxLabel != want.Process.SelinuxLabel || spec.Linux.MountLabel != want.Linux.MountLabel {
				t.Error("the caller's spec was changed")
			}
		})
	}
	if s := (&specs.Spec{}); specForInit(s, LSMs{}) != s || hasLabels(s) {
		t.Error("a spec without labels or process must pass through")
	}
}

func TestMountLabelHow(t *testing.T) {
	tests := []struct {
		name string
		m    specs.Mount
		want int
	}{
		{"tmpfs", specs.Mount{Type: "tmpfs", Options: []string{"nosuid", "mode=755"}}, labelContext},
		{"devpts", specs.Mount{Type: "devpts", Options: []string{"newinstance", "ptmxmode=0666"}}, labelContext},
		{"shm", specs.Mount{Type: "tmpfs", Source: "shm", Options: []string{"size=65536k"}}, labelContext},
		{"overlay", specs.Mount{Type: "overlay", Options: []string{"lowerdir=/a"}}, labelContext},
		{"mqueue", specs.Mount{Type: "mqueue", Options: []string{"nosuid"}}, labelXattr},
		{"proc", specs.Mount{Type: "proc"}, labelNone},
		{"sysfs", specs.Mount{Type: "sysfs", Options: []string{"ro"}}, labelNone},
		{"cgroup", specs.Mount{Type: "cgroup", Options: []string{"ro"}}, labelNone},
		{"cgroup2", specs.Mount{Type: "cgroup2"}, labelNone},
		{"bind by type", specs.Mount{Type: "bind", Source: "/etc"}, labelNone},
		{"bind by option", specs.Mount{Type: "none", Source: "/etc", Options: []string{"rbind", "ro"}}, labelNone},
		{"tmpfs bound", specs.Mount{Type: "tmpfs", Source: "/tmp", Options: []string{"bind"}}, labelNone},
		{"own context", specs.Mount{Type: "tmpfs", Options: []string{`context="a:b:c:s0"`}}, labelNone},
		{"own fscontext", specs.Mount{Type: "tmpfs", Options: []string{"fscontext=a:b:c:s0"}}, labelNone},
		{"bad options", specs.Mount{Type: "tmpfs", Options: []string{"rro"}}, labelNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mountLabelHow(tt.m); got != tt.want {
				t.Errorf("mountLabelHow = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestContextOption(t *testing.T) {
	tests := []struct {
		label, want, wantErr string
	}{
		{"system_u:object_r:container_file_t:s0:c1,c2", `context="system_u:object_r:container_file_t:s0:c1,c2"`, ""},
		{`bad"label`, "", "double quote"},
	}
	for _, tt := range tests {
		got, err := contextOption(tt.label)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("contextOption(%q) = %q, %v; want %q, error with %q", tt.label, got, err, tt.want, tt.wantErr)
		}
	}
	// The option stays one word in the data string, commas and all.
	_, _, data, err := parseMountOptions([]string{"nosuid", `context="u:r:t:s0:c1,c2"`, "mode=755"})
	if err != nil || data != `context="u:r:t:s0:c1,c2",mode=755` {
		t.Errorf("data %q, err %v", data, err)
	}
}
