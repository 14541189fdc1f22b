package container

import "testing"

func TestValidateID(t *testing.T) {
	long := make([]byte, MaxIDLength+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		id string
		ok bool
	}{
		{"c1", true}, {"a_b.c+d-e", true}, {string(long[:MaxIDLength]), true},
		{"", false}, {"../x", false}, {"a/b", false}, {".hidden", false},
		{"-flag", false}, {"sp ace", false}, {string(long), false}, {"é", false},
	}
	for _, tt := range tests {
		if err := ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestIsSemVer(t *testing.T) {
	tests := map[string]bool{
		"1.0.0": true, "1.3.0": true, "1.0.2-dev": true, "1.0.0-rc.1+build.5": true,
		"": false, "1.0": false, "invalid": false, "01.0.0": false, "1.0.0-": false,
		"1.0.0+": false, "1.a.0": false, "1.0.0.0": false,
	}
	for v, want := range tests {
		if got := isSemVer(v); got != want {
			t.Errorf("isSemVer(%q) = %v, want %v", v, got, want)
		}
	}
}
