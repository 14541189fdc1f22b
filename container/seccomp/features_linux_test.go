package seccomp

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The feature lists must say exactly what the compiler accepts.
func TestFeatures(t *testing.T) {
	for _, a := range Actions() {
		if _, err := retAction(specs.LinuxSeccompAction(a), nil); err != nil {
			t.Errorf("action %s: %v", a, err)
		}
	}
	if len(Actions()) != 9 || !slices.Contains(Actions(), string(specs.ActNotify)) {
		t.Errorf("actions %v: want the spec's 9, SCMP_ACT_NOTIFY among them", Actions())
	}
	for _, op := range Operators() {
		if !validOp(specs.LinuxSeccompOperator(op)) {
			t.Errorf("operator %s refused", op)
		}
	}
	if len(Operators()) != 7 {
		t.Errorf("%d operators, the spec has 7", len(Operators()))
	}
	for _, a := range Archs() {
		if _, ok := archABI(specs.Arch(a)); !ok {
			t.Errorf("arch %s refused", a)
		}
	}
	for _, want := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32} {
		if !slices.Contains(Archs(), string(want)) {
			t.Errorf("arch %s missing", want)
		}
	}
	for _, f := range Flags() {
		if _, err := filterFlag(specs.LinuxSeccompFlag(f)); err != nil {
			t.Errorf("flag %s: %v", f, err)
		}
	}
}
