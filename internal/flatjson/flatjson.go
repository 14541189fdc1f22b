package flatjson

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json.Marshal
// escapes it: HTML-sensitive characters and U+2028/U+2029 as \u escapes,
// invalid UTF-8 as \ufffd.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			esc := ""
			switch c {
			case '"':
				esc = `\"`
			case '\\':
				esc = `\\`
			case '\b':
				esc = `\b`
			case '\f':
				esc = `\f`
			case '\n':
				esc = `\n`
			case '\r':
				esc = `\r`
			case '\t':
				esc = `\t`
			default:
				if c >= 0x20 && c != '<' && c != '>' && c != '&' {
					i++
					continue
				}
			}
			b = append(b, s[done:i]...)
			if esc != "" {
				b = append(b, esc...)
			} else {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

// AppendStringMap appends m as a JSON object with its keys sorted, or null
// for a nil map.
func AppendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendString(b, m[k])
	}
	return append(b, '}')
}

// AppendStrings appends s as a JSON array, or null for a nil slice.
func AppendStrings(b []byte, s []string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, v)
	}
	return append(b, ']')
}

// Object writes one JSON object a member at a time, in the order of the
// calls, which is the order of the Go struct's fields for output identical
// to encoding/json's. Keys are written as given: they must be plain ASCII
// needing no escapes, as the field names of a json tag are.
type Object struct {
	b []byte
	n int
}

// Begin starts an object at the end of b.
func Begin(b []byte) Object { return Object{b: append(b, '{')} }

// Key starts a member; its value is appended next, with Append.
func (o *Object) Key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// Append gives a function the buffer to append a member's value to, as in
// o.Append(func(b []byte) []byte { return AppendStrings(b, v) }).
func (o *Object) Append(f func([]byte) []byte) { o.b = f(o.b) }

// String writes a string member.
func (o *Object) String(k, v string) {
	o.Key(k)
	o.b = AppendString(o.b, v)
}

// Int writes an integer member.
func (o *Object) Int(k string, v int64) {
	o.Key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

// Uint writes an unsigned integer member.
func (o *Object) Uint(k string, v uint64) {
	o.Key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
}

// Bool writes a boolean member.
func (o *Object) Bool(k string, v bool) {
	o.Key(k)
	o.b = strconv.AppendBool(o.b, v)
}

// End closes the object and returns the whole buffer.
func (o *Object) End() []byte { return append(o.b, '}') }
