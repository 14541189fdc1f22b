package container

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
		if _, err := parseCaps([]string{c}); err != nil {
			t.Errorf("%s: %v", c, err)
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

func TestFeaturesSeccomp(t *testing.T) {
	for _, a := range SeccompActions() {
		if _, err := seccompAction(specs.LinuxSeccompAction(a), nil); err != nil {
			t.Errorf("action %s: %v", a, err)
		}
	}
	if _, err := seccompAction(specs.ActNotify, nil); err == nil || slices.Contains(SeccompActions(), string(specs.ActNotify)) {
		t.Error("SCMP_ACT_NOTIFY: refused by the compiler, so it must not be listed")
	}
	for _, op := range SeccompOperators() {
		if !seccompValidOp(specs.LinuxSeccompOperator(op)) {
			t.Errorf("operator %s refused", op)
		}
	}
	if len(SeccompOperators()) != 7 {
		t.Errorf("%d operators, the spec has 7", len(SeccompOperators()))
	}
	for _, a := range SeccompArchs() {
		if _, ok := seccompArchABI(specs.Arch(a)); !ok {
			t.Errorf("arch %s refused", a)
		}
	}
	for _, want := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32} {
		if !slices.Contains(SeccompArchs(), string(want)) {
			t.Errorf("arch %s missing", want)
		}
	}
	for _, f := range SeccompFlags() {
		if _, err := seccompFlag(specs.LinuxSeccompFlag(f)); err != nil {
			t.Errorf("flag %s: %v", f, err)
		}
	}
}
