package container

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseNodeList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		mask  []uint64
		count int
		err   string
	}{
		{"", nil, 0, ""},
		{"0", []uint64{1}, 1, ""},
		{"0-7", []uint64{0xff}, 8, ""},
		{"1,3-4,3", []uint64{0x1a}, 3, ""},
		{"64", []uint64{0, 1}, 1, ""},
		{"1023", nil, 0, ""},
		{"1024", nil, 0, "above the kernel's maximum"},
		{"0-9876543210", nil, 0, "invalid memory policy node"},
		{"3-1", nil, 0, "ends before it starts"},
		{"-1", nil, 0, "not a node number"},
		{"0,,1", nil, 0, "not a node number"},
	} {
		mask, count, err := parseNodeList(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.mask != nil && (!slices.Equal(mask, tc.mask) || count != tc.count):
			t.Errorf("%q: mask %x count %d, want %x %d", tc.in, mask, count, tc.mask, tc.count)
		}
	}
}

// Every mode and flag `crier features` lists is one the parser takes.
func TestFeaturesKnownMemoryPolicy(t *testing.T) {
	modes, flags := KnownMemoryPolicy()
	if len(modes) != 7 || len(flags) != 3 {
		t.Errorf("modes %v flags %v", modes, flags)
	}
	for _, m := range modes {
		nodes := "0"
		if m == string(specs.MpolDefault) || m == string(specs.MpolLocal) {
			nodes = ""
		}
		if _, err := parseMemoryPolicy(&specs.LinuxMemoryPolicy{Mode: specs.MemoryPolicyModeType(m), Nodes: nodes}); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, f := range flags {
		mp := &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0", Flags: []specs.MemoryPolicyFlagType{specs.MemoryPolicyFlagType(f)}}
		if _, err := parseMemoryPolicy(mp); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
