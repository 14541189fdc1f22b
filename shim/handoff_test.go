package shim

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
)

// servingHandoff is a handoff with every field set, its config trimmed as
// reexec trims it. Filling every field by reflection makes the round trip
// fail for a field added to the handoff, to container.Handoff or to what
// servingSpec keeps, until the format carries it.
func servingHandoff(t *testing.T) *handoff {
	h := filled[handoff](t)
	h.Container.Spec = servingSpec(filled[specs.Spec](t))
	return h
}

func TestHandoffRoundTrip(t *testing.T) {
	zero := 0
	tests := map[string]*handoff{
		"every field": servingHandoff(t),
		"zero":        {},
		"empty, not nil": {
			Rec: record{Buffer: map[string]bool{}, History: []protocol.Event{}},
			Container: &container.Handoff{
				Spec: &specs.Spec{
					Root: &specs.Root{}, Annotations: map[string]string{}, Process: &specs.Process{},
					Hooks: &specs.Hooks{Poststart: []specs.Hook{{Args: []string{}, Env: []string{}, Timeout: &zero}}, Poststop: []specs.Hook{}},
				},
				Cgroup: &cgroup.Cgroup{Paths: map[string]string{}, Created: []string{}},
			},
		},
		"negative descriptors": {Container: &container.Handoff{PidFD: -1, SyncFD: -1}, ListenFD: -1},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := unmarshalHandoff(h.marshal())
			if err != nil {
				t.Fatal(err)
			}
			// Times come back in UTC, as they did from JSON.
			h.Rec.CreatedAt, h.Rec.LastAt = h.Rec.CreatedAt.UTC(), h.Rec.LastAt.UTC()
			if !reflect.DeepEqual(got, h) {
				t.Errorf("round trip\n got %+v\nwant %+v", got, h)
			}
		})
	}
}

func TestServingSpecKeepsWhatServingNeeds(t *testing.T) {
	full := filled[specs.Spec](t)
	got := servingSpec(full)
	if got.Process == nil || got.Root != full.Root || !reflect.DeepEqual(got.Annotations, full.Annotations) ||
		!reflect.DeepEqual(got.Hooks.Poststart, full.Hooks.Poststart) || !reflect.DeepEqual(got.Hooks.Poststop, full.Hooks.Poststop) {
		t.Errorf("servingSpec lost something serving uses: %+v", got)
	}
	// Of linux, the seccomp listener only, to which start and exec send
	// a notifying filter's listener.
	if got.Linux == nil || got.Linux.Seccomp == nil || got.Linux.Seccomp.ListenerPath != full.Linux.Seccomp.ListenerPath ||
		got.Linux.Seccomp.ListenerMetadata != full.Linux.Seccomp.ListenerMetadata {
		t.Errorf("servingSpec lost the seccomp listener: %+v", got.Linux)
	}
	if got.Hooks.Prestart != nil || got.Mounts != nil || got.Linux.Seccomp.Syscalls != nil || got.Linux.Namespaces != nil { //nolint:staticcheck // prestart is deprecated, still carried
		t.Errorf("servingSpec kept more than serving uses: %+v", got)
	}
}

func TestHandoffCorrupt(t *testing.T) {
	b := servingHandoff(t).marshal()
	// Every truncation must fail cleanly, never panic or succeed.
	for n := range len(b) {
		if _, err := unmarshalHandoff(b[:n]); err == nil {
			t.Fatalf("a handoff cut to %d of %d bytes decoded", n, len(b))
		}
	}
	if _, err := unmarshalHandoff(append(b, 0)); err == nil {
		t.Error("a handoff with a trailing byte decoded")
	}
	if _, err := unmarshalHandoff([]byte(`{"root":"/run/crier"}`)); err == nil {
		t.Error("a JSON handoff decoded")
	}
}

func FuzzUnmarshalHandoff(f *testing.F) {
	f.Add((&handoff{}).marshal())
	f.Add([]byte(handoffMagic + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := unmarshalHandoff(b)
		if err != nil {
			return
		}
		again, err := unmarshalHandoff(h.marshal())
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("%q decoded to %+v, which does not survive a round trip: %+v, %v", b, h, again, err)
		}
	})
}
