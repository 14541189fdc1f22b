package container

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestInitConfigSpec: init receives the spec it needs whether the parent
// sends config.json's bytes as they are or encodes the spec, without
// linux.resources and other platforms' sections.
func TestInitConfigSpec(t *testing.T) {
	raw := []byte(`{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},
		"windows":{"layerFolders":["x"]},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],
		"resources":{"devices":[{"allow":false,"access":"rwm"}]},"maskedPaths":["/proc/kcore"]}}`)
	want := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
		Linux: &specs.Linux{
			Namespaces:  []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			MaskedPaths: []string{"/proc/kcore"},
		},
	}
	for _, tc := range []struct {
		name     string
		specJSON []byte
	}{
		{"config.json's bytes", raw},
		{"encoded again", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ls linuxSpec
			if err := json.Unmarshal(raw, &ls); err != nil {
				t.Fatal(err)
			}
			c := &Container{ID: "x", Spec: &ls.Spec, specJSON: tc.specJSON}
			ic, err := c.initConfig()
			if err != nil {
				t.Fatal(err)
			}
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			parent := newSyncConn(os.NewFile(uintptr(fds[0]), "parent"))
			child := newSyncConn(os.NewFile(uintptr(fds[1]), "child"))
			defer parent.Close()
			defer child.Close()
			if err := parent.send(message{Type: msgConfig, Config: ic}); err != nil {
				t.Fatal(err)
			}
			m, err := child.expect(msgConfig)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Config.Spec, want) {
				t.Errorf("init got spec %+v (linux %+v), want %+v (linux %+v)", m.Config.Spec, m.Config.Spec.Linux, want, want.Linux)
			}
		})
	}
}
