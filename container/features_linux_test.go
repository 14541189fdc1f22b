package container

import (
	"slices"
	"testing"
)

// The feature lists must say exactly what the config parsers accept.

func TestFeaturesKnownCapabilities(t *testing.T) {
	caps := KnownCapabilities()
	if len(caps) != numCaps {
		t.Fatalf("%d capabilities, want %d", len(caps), numCaps)
	}
	for _, c := range caps {
		if c == "" {
			t.Fatal("an empty capability name: capabilityNames has a hole")
		}
		if got := parseCaps([]string{c}); len(got) != 1 {
			t.Errorf("%s: not parsed", c)
		}
	}
	caps[0] = "changed"
	if KnownCapabilities()[0] == "changed" {
		t.Error("KnownCapabilities shares its slice")
	}
}

func TestFeaturesKnownMountOptions(t *testing.T) {
	opts := KnownMountOptions()
	if !slices.IsSorted(opts) || len(slices.Compact(slices.Clone(opts))) != len(opts) {
		t.Errorf("not sorted and unique: %v", opts)
	}
	for _, o := range opts {
		_, _, data, err := parseMountOptions([]string{o})
		if err != nil || data != "" {
			t.Errorf("%s: data %q, err %v; want a flag or propagation", o, data, err)
		}
	}
	for _, o := range []string{"ro", "rw", "nosuid", "rbind", "rprivate", "runbindable", "nosymfollow", "idmap", "ridmap"} {
		if !slices.Contains(opts, o) {
			t.Errorf("%s missing", o)
		}
	}
	for o := range unsupportedMountOptions {
		if slices.Contains(opts, o) {
			t.Errorf("%s is refused but listed", o)
		}
	}
}
