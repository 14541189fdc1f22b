package statedir

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/internal/testfill"
	"github.com/crier-runtime/crier/protocol"
)

func TestStateJSONMatchesEncodingJSON(t *testing.T) {
	full := testfill.Filled[State](t)
	timeout := 5
	states := map[string]*State{
		"every field": full,
		"zero":        {},
		"created": {
			State: protocol.State{OCIVersion: "1.3.0", ID: "c1", Pid: 42, Status: protocol.StatusCreated, Bundle: "/b",
				Rootfs: "/b/rootfs", Created: protocol.FormatTime(time.Now()), Owner: "root"},
			PidStart: 1234, ShimPid: 41, ShimStart: 1200,
			Cgroup: &cgroup.Cgroup{Paths: map[string]string{"": "/sys/fs/cgroup/crier/c1"}},
		},
		"creating":                {CgroupsPath: "/a/b", Poststop: []specs.Hook{}},
		"hooks":                   {Poststop: []specs.Hook{{Path: "/x"}, {Path: "/y", Args: []string{}, Env: []string{"A=b"}, Timeout: &timeout}}},
		"cgroup without paths":    {Cgroup: &cgroup.Cgroup{}},
		"cgroup with empty paths": {Cgroup: &cgroup.Cgroup{Paths: map[string]string{}, Created: []string{}}},
		"empty annotations":       {State: protocol.State{Annotations: map[string]string{}}},
	}
	for name, st := range states {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.AppendJSON(nil); string(got) != string(want) {
				t.Errorf("state file\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestStateFileRoundTrip(t *testing.T) {
	root := t.TempDir()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.NewTemp(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Publish("c1"); err != nil {
		t.Fatal(err)
	}
	st := testfill.Filled[State](t)
	if err := d.WriteState(st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("ReadState = %+v, want %+v", got, st)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if r.Exists("c1") {
		t.Error("c1 still exists after Remove")
	}
}
