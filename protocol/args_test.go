package protocol

import (
	"slices"
	"testing"
)

func TestJoinArgs(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"memory:sub"},
		{"cpu,cpuacct:a b", "", "%", `q"\`, "new\nline", "tab\t", "é"},
	} {
		s := JoinArgs(args)
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
				t.Errorf("JoinArgs(%q) = %q: byte %q needs a JSON escape", args, s, c)
			}
		}
		got, err := SplitArgs(s)
		if err != nil || !slices.Equal(got, args) {
			t.Errorf("SplitArgs(JoinArgs(%q)) = %q, %v", args, got, err)
		}
	}
	if _, err := SplitArgs("a%4"); err == nil {
		t.Error("SplitArgs accepted a truncated escape")
	}
	req, ok := scanRequest([]byte(`{"op":"exec","files":1,"cgroup":"` + JoinArgs([]string{"a b", "c"}) + `"}`))
	if !ok || req.Cgroup != "a%20b c" {
		t.Errorf("scanRequest: %+v %v", req, ok)
	}
}
