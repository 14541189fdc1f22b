package flatjson

import (
	"encoding/json"
	"testing"
)

func TestIndentAsMarshalIndent(t *testing.T) {
	type inner struct {
		A string            `json:"a"`
		M map[string]string `json:"m"`
		L []string          `json:"l"`
		E map[string]string `json:"e"`
		N []int             `json:"n"`
	}
	for _, v := range []any{
		map[string]string{},
		map[string]string{"k": "v"},
		[]string{},
		"plain",
		42,
		inner{A: `quo"te {[,:]} \ back`, M: map[string]string{"x:y": "{,}", "a": "\u2028<&>"}, L: []string{"1", "", "[]"}, E: map[string]string{}, N: []int{}},
		[]any{map[string]any{}, []any{}, map[string]any{"nested": map[string]any{"deep": []any{1, "two", nil, true}}}},
	} {
		compact, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.MarshalIndent(v, "", "  ")
		if got := Indent(nil, compact, "  "); string(got) != string(want) {
			t.Errorf("Indent(%s)\n got %s\nwant %s", compact, got, want)
		}
	}
}
