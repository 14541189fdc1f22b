package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestParseEarly checks that the early part of a config is what the full
// decode makes of the same fields, whichever way earlyResources goes.
func TestParseEarly(t *testing.T) {
	tests := []struct {
		name, linux string
	}{
		{"no resources", `{"namespaces":[{"type":"pid"},{"type":"mount"}]}`},
		{"null resources", `{"resources":null}`},
		{"empty resources", `{"resources":{}}`},
		{"device rules only", `{"resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}}`},
		{"limits", `{"resources":{"devices":[{"allow":false}],"memory":{"limit":1048576},"pids":{"limit":10},"unified":{"pids.max":"5"}}}`},
		{"key in another case", `{"resources":{"Devices":[{"allow":true,"access":"r"}]}}`},
		{"devices and mappings", `{"namespaces":[{"type":"user"},{"type":"time"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":10}],"gidMappings":[{"containerID":0,"hostID":1000,"size":10}],"timeOffsets":{"monotonic":{"secs":5}},"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438}],"cgroupsPath":"/a/b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"annotations":{"a":"b"},"process":{"terminal":true,"args":["sh"],"cwd":"/"},"linux":` + tt.linux + `}`)
			var full specs.Spec
			if err := json.Unmarshal(b, &full); err != nil {
				t.Fatal(err)
			}
			early := parseEarly(b)
			if early == nil {
				t.Fatal("parseEarly = nil")
			}
			want := &specs.Spec{
				Root:        full.Root,
				Annotations: full.Annotations,
				Process:     &specs.Process{Terminal: full.Process.Terminal},
				Linux: &specs.Linux{
					Namespaces:  full.Linux.Namespaces,
					UIDMappings: full.Linux.UIDMappings,
					GIDMappings: full.Linux.GIDMappings,
					TimeOffsets: full.Linux.TimeOffsets,
					CgroupsPath: full.Linux.CgroupsPath,
					Resources:   full.Linux.Resources,
					Devices:     full.Linux.Devices,
				},
			}
			if !reflect.DeepEqual(early, want) {
				e, _ := json.Marshal(early)
				w, _ := json.Marshal(want)
				t.Errorf("parseEarly:\n got %s\nwant %s", e, w)
			}
		})
	}
}

// TestParseEarlyUnusable checks that configs only the full decode can
// explain give no early part, and that Wait gives LoadSpecJSON's error.
func TestParseEarlyUnusable(t *testing.T) {
	tests := map[string]string{
		"not JSON":         `{"root":`,
		"no root":          `{"ociVersion":"1.0.2","linux":{}}`,
		"empty root path":  `{"ociVersion":"1.0.2","root":{"path":""},"linux":{}}`,
		"no linux":         `{"ociVersion":"1.0.2","root":{"path":"r"}}`,
		"bad resources":    `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"resources":{"devices":3}}}`,
		"bad linux device": `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"devices":[{"major":"x"}]}}`,
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := StartLoadSpec(bundle, nil)
			if err != nil {
				t.Fatal(err)
			}
			if l.Early != nil {
				t.Errorf("Early = %+v, want nil", l.Early)
			}
			_, werr := l.Wait()
			_, _, want := LoadSpecJSON(bundle)
			if werr == nil || want == nil || werr.Error() != want.Error() {
				t.Errorf("Wait error %v, want %v", werr, want)
			}
			if !strings.Contains(werr.Error(), "config.json") {
				t.Errorf("Wait error %q does not name the file", werr)
			}
		})
	}
}
