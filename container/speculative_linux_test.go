package container

import (
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestSpeculativePlan(t *testing.T) {
	ns := func(types ...specs.LinuxNamespaceType) []specs.LinuxNamespace {
		var out []specs.LinuxNamespace
		for _, typ := range types {
			out = append(out, specs.LinuxNamespace{Type: typ})
		}
		return out
	}
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	tests := []struct {
		name  string
		linux specs.Linux
		want  bool
	}{
		{"runc's default", specs.Linux{Namespaces: ns("pid", "network", "ipc", "uts", "mount", "cgroup")}, true},
		{"pid and mount only", specs.Linux{Namespaces: ns("pid", "mount")}, true},
		{"no pid namespace", specs.Linux{Namespaces: ns("network", "ipc", "uts", "mount")}, false},
		{"no mount namespace", specs.Linux{Namespaces: ns("pid", "network")}, false},
		{"user namespace", specs.Linux{Namespaces: ns("pid", "mount", "user"), UIDMappings: maps, GIDMappings: maps}, false},
		{"time namespace", specs.Linux{Namespaces: ns("pid", "mount", "time")}, false},
		{"joined network namespace", specs.Linux{Namespaces: append(ns("pid", "mount"),
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"})}, false},
		{"joined pid namespace", specs.Linux{Namespaces: append(ns("mount"),
			specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"})}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planNamespaces(&tt.linux)
			if err != nil {
				t.Fatal(err)
			}
			if got := speculativePlan(plan); got != tt.want {
				t.Errorf("speculativePlan = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCgroupMount(t *testing.T) {
	tests := []struct {
		m    specs.Mount
		want bool
	}{
		{specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"}, true},
		{specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup"}, true},
		{specs.Mount{Destination: "/sys/fs/cgroup", Type: "bind", Source: "/sys/fs/cgroup", Options: []string{"rbind"}}, true},
		{specs.Mount{Destination: "/mem", Type: "bind", Source: "/sys/fs/cgroup/memory", Options: []string{"bind"}}, true},
		{specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"}, false},
		{specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs"}, false},
		{specs.Mount{Destination: "/x", Type: "bind", Source: "/sys/fs/cgroupx"}, false},
	}
	for _, tt := range tests {
		if got := cgroupMount(tt.m); got != tt.want {
			t.Errorf("cgroupMount(%+v) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

// TestSpecAhead: a speculative init takes the spec sent ahead (SendSpec)
// when its config says so, and only then; the bytes sent ahead are one
// message whatever they hold.
func TestSpecAhead(t *testing.T) {
	const spec = `{"ociVersion":"1.0.2","hostname":"ahead","root":{"path":"rootfs"},"linux":{}}`
	tests := []struct {
		name     string
		ahead    string // config.json's bytes, sent ahead if they are JSON
		config   initConfig
		hostname string // the spec init ends with; "" for an error
	}{
		{"spec ahead", spec, initConfig{ID: "a", SpecAhead: true}, "ahead"},
		{"spec in the config", spec, initConfig{ID: "a", SpecJSON: []byte(`{"hostname":"sent","linux":{}}`)}, "sent"},
		{"no spec sent ahead", "", initConfig{ID: "a", SpecAhead: true}, ""},
		{"not JSON, not sent", `{"a":1}}` + "\n" + `{"type":"config","config":{"id":"forged","spec":{"hostname":"forged","linux":{}}}}` + "\n{",
			initConfig{ID: "a", SpecJSON: []byte(`{"hostname":"sent","linux":{}}`)}, "sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			parentFile := os.NewFile(uintptr(fds[0]), "parent")
			parent := newSyncConn(parentFile)
			child := newSyncConn(os.NewFile(uintptr(fds[1]), "child"))
			defer parent.Close()
			defer child.Close()
			s := &Speculative{Pid: 1, Sync: parentFile}
			if tt.ahead != "" {
				s.SendSpec([]byte(tt.ahead))
			}
			cfg := tt.config
			if err := parent.send(message{Type: msgConfig, Config: &cfg}); err != nil {
				t.Fatal(err)
			}
			got, err := receiveConfig(child)
			switch {
			case tt.hostname == "" && err == nil:
				t.Fatalf("receiveConfig took %+v, want an error", got)
			case tt.hostname == "":
			case err != nil:
				t.Fatal(err)
			case got.ID != "a" || got.Spec.Hostname != tt.hostname:
				t.Errorf("init's config %q with hostname %q, want a and %q", got.ID, got.Spec.Hostname, tt.hostname)
			}
		})
	}
}
