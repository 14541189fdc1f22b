package relay

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func header(args, cwd uint32) []byte {
	h := []byte(Magic)
	h = binary.LittleEndian.AppendUint32(h, args)
	return binary.LittleEndian.AppendUint32(h, cwd)
}

func TestParseHeader(t *testing.T) {
	for _, c := range []struct {
		name      string
		h         []byte
		args, cwd int
		ok        bool
	}{
		{"plain", header(12, 5), 12, 5, true},
		{"limits", header(MaxArgs, MaxCwd), MaxArgs, MaxCwd, true},
		{"args over", header(MaxArgs+1, 1), 0, 0, false},
		{"cwd over", header(1, MaxCwd+1), 0, 0, false},
		{"huge", header(1<<32-1, 1<<32-1), 0, 0, false},
		{"short", header(1, 1)[:HeaderSize-1], 0, 0, false},
		{"JSON", []byte(`{"op":"state"}` + "\n\n"), 0, 0, false},
		{"version", append([]byte("\x00crelay\x02"), header(1, 1)[8:]...), 0, 0, false},
	} {
		args, cwd, err := ParseHeader(c.h)
		if (err == nil) != c.ok || args != c.args || cwd != c.cwd {
			t.Errorf("%s: got %d, %d, %v", c.name, args, cwd, err)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"state\x00c1\x00", []string{"state", "c1"}},
		{"\x00", []string{""}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"state\x00c1", nil},
		{"", nil},
	} {
		got, err := SplitArgs([]byte(c.in))
		if (err == nil) != (c.want != nil) || len(got) != len(c.want) {
			t.Errorf("%q: got %q, %v", c.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: got %q", c.in, got)
			}
		}
	}
}

func TestAppendFrame(t *testing.T) {
	if got := AppendFrame(nil, Exit, []byte{3}); !bytes.Equal(got, []byte{'X', 1, 0, 0, 3}) {
		t.Errorf("exit frame: %v", got)
	}
	if got := AppendFrame(nil, Stdout, nil); !bytes.Equal(got, []byte{'O', 0, 0, 0}) {
		t.Errorf("empty frame: %v", got)
	}
	big := bytes.Repeat([]byte("x"), MaxPayload+10)
	got := AppendFrame(nil, Stderr, big)
	if len(got) != 4+MaxPayload+4+10 || got[0] != 'E' || got[1] != 0 || got[2] != 0 || got[3] != 1 ||
		got[4+MaxPayload] != 'E' || got[4+MaxPayload+1] != 10 {
		t.Errorf("a payload over MaxPayload: %d bytes, headers %v and %v", len(got), got[:4], got[4+MaxPayload:4+MaxPayload+4])
	}
}
