package container

import (
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct{ in, mask, err string }{
		{"0", "0x1", ""},
		{"1", "0x2", ""},
		{"0-1", "0x3", ""},
		{"0,2-3", "0xd", ""},
		{"64", "0x10000000000000000", ""},
		{"1023", "0x8" + strings.Repeat("0", 255), ""},
		{"1024", "", "above the highest supported"},
		{"", "", "empty"},
		{"3-1", "", "ends before it starts"},
		{"a", "", "not a CPU number"},
		{"0,", "", "not a CPU number"},
	} {
		set, err := ParseCPUList(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case CPUMaskString(set) != tc.mask:
			t.Errorf("%q: mask %s, want %s", tc.in, CPUMaskString(set), tc.mask)
		}
	}
}
