package flatjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Strings that exercise every escape json.Marshal makes.
var strs = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"\b\f\n\r\t",
	"\x00\x01\x1f\x7f",
	"<html> & </html>",
	"caf\u00e9 \u4e16\u754c \U0001f600",
	"\u2028 line \u2029 para",
	"bad \xff utf8 \xc3 cut \xed\xa0\x80 surrogate",
	"\xf4\x90\x80\x80 too high",
	"mixed\x1b[31m\u2028<\xfe",
}

func TestAppendStringMatchesJSON(t *testing.T) {
	for _, s := range strs {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range strs {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

func checkString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString(nil, s); string(got) != string(want) {
		t.Errorf("AppendString(%q) = %s, json.Marshal gives %s", s, got, want)
	}
}

func TestAppendCollectionsMatchJSON(t *testing.T) {
	maps := []map[string]string{
		nil,
		{},
		{"one": "1"},
		{"b": "2", "a": "1", "c": "<3>", "": "empty", "B": "upper", "\u00e9": "e"},
	}
	for _, m := range maps {
		want, _ := json.Marshal(m)
		if got := AppendStringMap(nil, m); string(got) != string(want) {
			t.Errorf("AppendStringMap(%q) = %s, want %s", m, got, want)
		}
	}
	slices := [][]string{nil, {}, {"a"}, {"a", "", "c\n"}}
	for _, s := range slices {
		want, _ := json.Marshal(s)
		if got := AppendStrings(nil, s); string(got) != string(want) {
			t.Errorf("AppendStrings(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestObject(t *testing.T) {
	type inner struct {
		X []string `json:"x"`
	}
	type outer struct {
		S string `json:"s"`
		I int64  `json:"i"`
		U uint64 `json:"u"`
		B bool   `json:"b"`
		N inner  `json:"n"`
	}
	v := outer{S: "a\"b", I: -1 << 63, U: 1<<64 - 1, B: true, N: inner{X: []string{"y"}}}
	want, _ := json.Marshal(v)
	o := Begin([]byte("prefix "))
	o.String("s", v.S)
	o.Int("i", v.I)
	o.Uint("u", v.U)
	o.Bool("b", v.B)
	o.Key("n")
	o.Append(func(b []byte) []byte {
		in := Begin(b)
		in.Key("x")
		in.Append(func(b []byte) []byte { return AppendStrings(b, v.N.X) })
		return in.End()
	})
	if got := string(o.End()); got != "prefix "+string(want) {
		t.Errorf("got %s, want prefix %s", got, want)
	}
	if e := Begin(nil); string(e.End()) != "{}" {
		t.Errorf("empty object is not {}")
	}
}

type member struct {
	Key  string
	Kind Kind
	Raw  string
}

func scanAll(data string) ([]member, bool) {
	var got []member
	ok := Scan([]byte(data), func(key []byte, v Value) bool {
		got = append(got, member{string(key), v.Kind, string(v.raw)})
		return true
	})
	return got, ok
}

func TestScan(t *testing.T) {
	good := []struct {
		in   string
		want []member
	}{
		{`{}`, nil},
		{" \t\r\n{ } \r\n", nil},
		{`{"a":"x"}`, []member{{"a", String, "x"}}},
		{`{"a":""}`, []member{{"a", String, ""}}},
		{`{ "n" : -12 , "t":true,"f":false,"z":null }`, []member{{"n", Number, "-12"}, {"t", True, ""}, {"f", False, ""}, {"z", Null, ""}}},
		{`{"n":0,"m":-0,"f":1.5e+3,"g":2E-1,"h":10.25}`, []member{{"n", Number, "0"}, {"m", Number, "-0"}, {"f", Number, "1.5e+3"}, {"g", Number, "2E-1"}, {"h", Number, "10.25"}}},
		{`{"dup":"1","dup":"2"}`, []member{{"dup", String, "1"}, {"dup", String, "2"}}},
	}
	for _, tc := range good {
		got, ok := scanAll(tc.in)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Scan(%q) = %v, %v; want %v, true", tc.in, got, ok, tc.want)
		}
		if !json.Valid([]byte(tc.in)) {
			t.Errorf("Scan accepted %q, which is not JSON", tc.in)
		}
	}
	// Not handled: malformed, or beyond the simple case.
	bad := []string{
		``, ` `, `null`, `[]`, `"s"`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`,
		`{"a":1}{}`, `{"a":1} x`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":True}`, `{a:1}`, `{'a':1}`,
		`{"a":{"b":1}}`, `{"a":[1]}`, `{"a\"":1}`, `{"a":"\n"}`, `{"a":"\u0041"}`, "{\"a\":\"\x01\"}",
		"{\"\xc3\xa9\":1}", "{\"a\":\"\xff\"}", "{\"a\":\"\x7f\"}", `{"a":"x`, `{"a":1 "b":2}`,
	}
	for _, in := range bad {
		if got, ok := scanAll(in); ok {
			t.Errorf("Scan(%q) = %v, true; want false", in, got)
		}
	}
}

func TestScanStops(t *testing.T) {
	n := 0
	ok := Scan([]byte(`{"a":1,"b":2,"c":3}`), func(key []byte, v Value) bool {
		n++
		return string(key) != "b"
	})
	if ok || n != 2 {
		t.Errorf("Scan after a member said stop: ok %v after %d members, want false after 2", ok, n)
	}
}

// FuzzScan checks that Scan handles only valid JSON, and reads the members
// encoding/json reads.
func FuzzScan(f *testing.F) {
	f.Add(`{"a":"x","n":-1.5e3,"t":true,"z":null}`)
	f.Add(`{"a":{"b":1}}`)
	f.Add(` {} `)
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := scanAll(in)
		if !ok {
			return
		}
		if !json.Valid([]byte(in)) {
			t.Fatalf("Scan accepted %q, which is not JSON", in)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			t.Fatalf("Scan accepted %q; json.Unmarshal: %v", in, err)
		}
		last := map[string]member{}
		for _, g := range got {
			last[g.Key] = g
		}
		if len(last) != len(m) {
			t.Fatalf("Scan(%q) found %d keys, encoding/json %d", in, len(last), len(m))
		}
		for k, g := range last {
			var want string
			switch v := m[k].(type) {
			case string:
				want = v
			case float64:
				var x, y float64
				json.Unmarshal([]byte(g.Raw), &x)
				json.Unmarshal(mustMarshal(t, v), &y)
				if x != y {
					t.Fatalf("Scan(%q)[%q] = %s, encoding/json %v", in, k, g.Raw, v)
				}
				continue
			default:
				want = string(mustMarshal(t, v))
				g.Raw = map[Kind]string{True: "true", False: "false", Null: "null"}[g.Kind]
			}
			if g.Raw != want {
				t.Fatalf("Scan(%q)[%q] = %s, encoding/json %s", in, k, g.Raw, want)
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
