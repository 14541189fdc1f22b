package container

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestMessageMarshalAgrees: message.marshal says what json.Marshal says,
// as the receiver's decoder reads it, and fails where it fails.
func TestMessageMarshalAgrees(t *testing.T) {
	full := &initConfig{
		ID: "c1", Pid: 42, Bundle: "/b <&> \u2028 \"q\" \\", Rootfs: "/b/rootfs\n\x01é",
		SpecJSON:   json.RawMessage(" {\"ociVersion\" : \"1.0.2\", \"x\": [1, 2,\n3], \"h\":\"<a&b>\"} "),
		NewMountNS: true, NewCgroupNS: true, NewUTSNS: true, NoPivot: true, Trees: []int{0, 3, 12},
		SeccompNoFlags: true, Chdir: "/bundle", Unshare: 0x6c020000, Placed: true, SpecAhead: true, StartAtOnce: true,
		MoveSelf: []string{"/sys/fs/cgroup/pids/c", "/sys/fs/cgroup/name=\"q\"/c"},
	}
	for _, c := range []struct {
		name string
		m    message
	}{
		{"type only", message{Type: msgPlaced}},
		{"error", message{Type: msgError, Message: "mount /proc: \"x\" <failed>\t\xff"}},
		{"full config", message{Type: msgConfig, Config: full}},
		{"empty config", message{Type: msgConfig, Config: &initConfig{}}},
		{"config, spec ahead", message{Type: msgConfig, Config: &initConfig{ID: "c", SpecAhead: true, Placed: true}}},
		{"spec", message{Type: msgSpec, SpecJSON: json.RawMessage(`{"a" : [ true , null ]}`)}},
		{"pty", message{Type: msgTerminal, Pty: "/dev/pts/3"}},
		{"bad spec", message{Type: msgSpec, SpecJSON: json.RawMessage(`{"a":`)}},
		{"bad config spec", message{Type: msgConfig, Config: &initConfig{SpecJSON: json.RawMessage(`nul`)}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, wantErr := json.Marshal(c.m)
			got, err := c.m.marshal()
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("marshal: %v, json.Marshal: %v", err, wantErr)
			}
			if err != nil {
				return
			}
			var gm, wm message
			if err := json.Unmarshal(got, &gm); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			if err := json.Unmarshal(want, &wm); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gm, wm) {
				t.Errorf("decoded:\n%s\n%#v\nwant, from json.Marshal:\n%s\n%#v", got, gm, want, wm)
			}
		})
	}
}
