package flatjson

import "strconv"

// Kind is the kind of a member's value.
type Kind uint8

// Value kinds.
const (
	String Kind = iota + 1
	Number
	True
	False
	Null
)

// Value is one member's value as Scan found it.
type Value struct {
	Kind Kind
	raw  []byte // a string's contents without the quotes; a number's text
}

// Str returns a String value's contents.
func (v Value) Str() string { return string(v.raw) }

// Int returns a Number value as an int64, and false when it has a fraction
// or an exponent or does not fit.
func (v Value) Int() (int64, bool) {
	for _, c := range v.raw {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v.raw), 10, 64)
	return n, err == nil
}

// Scan calls member for each member of the JSON object in data, in order,
// and reports whether it handled data. It handles only the simple case: an
// object whose keys and string values are printable ASCII without escapes
// and whose values are strings, numbers, true, false or null, surrounded by
// JSON whitespace. For anything else, including any malformed input, it
// returns false, possibly after calling member for the members before; the
// caller then decodes data with encoding/json instead. member may also
// return false to give up.
func Scan(data []byte, member func(key []byte, v Value) bool) bool {
	s := scanner{data: data}
	s.space()
	if !s.take('{') {
		return false
	}
	s.space()
	if s.take('}') {
		return s.end()
	}
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return false
		}
		s.space()
		if !s.take(':') {
			return false
		}
		s.space()
		v, ok := s.value()
		if !ok || !member(key, v) {
			return false
		}
		s.space()
		if s.take('}') {
			return s.end()
		}
		if !s.take(',') {
			return false
		}
	}
}

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) take(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace follows the object.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.data)
}

// str reads a string with no escapes and no bytes outside printable ASCII.
func (s *scanner) str() ([]byte, bool) {
	if !s.take('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.data); s.i++ {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			return s.data[start : s.i-1], true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) value() (Value, bool) {
	if s.i >= len(s.data) {
		return Value{}, false
	}
	switch c := s.data[s.i]; {
	case c == '"':
		raw, ok := s.str()
		return Value{Kind: String, raw: raw}, ok
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	}
	for _, lit := range []struct {
		text string
		kind Kind
	}{{"true", True}, {"false", False}, {"null", Null}} {
		if len(s.data)-s.i >= len(lit.text) && string(s.data[s.i:s.i+len(lit.text)]) == lit.text {
			s.i += len(lit.text)
			return Value{Kind: lit.kind}, true
		}
	}
	return Value{}, false
}

// number reads a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() (Value, bool) {
	start := s.i
	s.take('-')
	switch {
	case s.take('0'):
	case s.digits() == 0:
		return Value{}, false
	}
	if s.take('.') && s.digits() == 0 {
		return Value{}, false
	}
	if s.take('e') || s.take('E') {
		if !s.take('+') {
			s.take('-')
		}
		if s.digits() == 0 {
			return Value{}, false
		}
	}
	return Value{Kind: Number, raw: s.data[start:s.i]}, true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}
