package jsondec

import (
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// errUnsupported means the fast path cannot promise encoding/json's
// result for this document; Unmarshal then leaves it to encoding/json.
var errUnsupported = errors.New("jsondec: left to encoding/json")

// maxDepth bounds nesting on the fast path; deeper documents go to
// encoding/json, which has its own limit and error.
const maxDepth = 1000

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	numberType      = reflect.TypeFor[json.Number]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Unmarshal decodes data into v as json.Unmarshal(data, v) does, with the
// same result and the same error. v must point to a zero value: when the
// fast path gives up half way, v is zeroed and encoding/json decodes it
// from the start.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return json.Unmarshal(data, v) // its InvalidUnmarshalError
	}
	if fast(data, rv.Elem()) {
		return nil
	}
	rv.Elem().SetZero()
	return json.Unmarshal(data, v)
}

// fast decodes data into v and reports whether it could, on the fast path.
func fast(data []byte, v reflect.Value) bool {
	d := decoder{data: data, structs: map[reflect.Type]*structType{}, custom: map[reflect.Type]bool{}}
	if d.value(v) != nil {
		return false
	}
	d.ws()
	return d.off == len(d.data)
}

// decoder is one Unmarshal's state: the document, where it is in it, and
// what it learnt of the types it met.
type decoder struct {
	data    []byte
	off     int
	depth   int
	structs map[reflect.Type]*structType
	custom  map[reflect.Type]bool // types that decode themselves
}

// ws skips white space.
func (d *decoder) ws() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

// next skips white space and returns the byte there, 0 at the end.
func (d *decoder) next() byte {
	d.ws()
	if d.off == len(d.data) {
		return 0
	}
	return d.data[d.off]
}

// value decodes the value at d.off into v.
func (d *decoder) value(v reflect.Value) error {
	c := d.next()
	t := v.Type()
	if t == rawMessageType {
		start := d.off
		if err := d.skip(); err != nil {
			return err
		}
		// As RawMessage.UnmarshalJSON: the bytes of the value, a null
		// included.
		v.SetBytes(append([]byte(nil), d.data[start:d.off]...))
		return nil
	}
	if d.decodesItself(t) {
		return errUnsupported
	}
	if c == 'n' {
		if !d.literal("null") {
			return errUnsupported
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.SetZero()
		}
		return nil // a null leaves other kinds as they are
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(v.Elem())
	case reflect.Struct:
		if c != '{' {
			return errUnsupported
		}
		return d.object(v)
	case reflect.Map:
		if c != '{' {
			return errUnsupported
		}
		return d.mapObject(v)
	case reflect.Slice:
		if c != '[' {
			return errUnsupported
		}
		return d.array(v)
	case reflect.String:
		if c != '"' {
			return errUnsupported
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		switch {
		case c == 't' && d.literal("true"):
			v.SetBool(true)
		case c == 'f' && d.literal("false"):
			v.SetBool(false)
		default:
			return errUnsupported
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return d.number(v)
	}
	return errUnsupported // interfaces, fixed-size arrays, channels, functions
}

// decodesItself reports whether encoding/json would hand values of t to a
// method of theirs (json.Number, an UnmarshalJSON or UnmarshalText of t or
// *t), which the fast path does not call. json.RawMessage's and a pointer
// to one are the exception: value copies the bytes as the method would.
func (d *decoder) decodesItself(t reflect.Type) bool {
	if yes, ok := d.custom[t]; ok {
		return yes
	}
	yes := false
	if t != rawMessageType && !(t.Kind() == reflect.Pointer && t.Elem() == rawMessageType) {
		pt := reflect.PointerTo(t)
		yes = t == numberType || t.Implements(jsonUnmarshaler) || pt.Implements(jsonUnmarshaler) ||
			t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler)
	}
	d.custom[t] = yes
	return yes
}

// literal consumes word if it is at d.off.
func (d *decoder) literal(word string) bool {
	if len(d.data)-d.off < len(word) || string(d.data[d.off:d.off+len(word)]) != word {
		return false
	}
	d.off += len(word)
	return true
}

// enter and leave count nesting.
func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return errUnsupported
	}
	return nil
}

func (d *decoder) leave() { d.depth-- }

// members walks the JSON object at d.off, calling member with each key
// once the ':' after it is consumed; member consumes the value.
func (d *decoder) members(member func(key string) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	d.off++ // {
	if d.next() == '}' {
		d.off++
		return nil
	}
	for {
		if d.next() != '"' {
			return errUnsupported
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if d.next() != ':' {
			return errUnsupported
		}
		d.off++
		if err := member(key); err != nil {
			return err
		}
		switch d.next() {
		case ',':
			d.off++
		case '}':
			d.off++
			return nil
		default:
			return errUnsupported
		}
	}
}

// elements walks the JSON array at d.off, calling element for each
// value, which it consumes.
func (d *decoder) elements(element func() error) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	d.off++ // [
	if d.next() == ']' {
		d.off++
		return nil
	}
	for {
		if err := element(); err != nil {
			return err
		}
		switch d.next() {
		case ',':
			d.off++
		case ']':
			d.off++
			return nil
		default:
			return errUnsupported
		}
	}
}

// object decodes a JSON object into the struct v: each key into the field
// encoding/json would pick by its exact name (structType), skipping keys
// that name no field.
func (d *decoder) object(v reflect.Value) error {
	st := d.structOf(v.Type())
	var seen []bool
	return d.members(func(key string) error {
		i, ok := st.byName[key]
		switch {
		case ok:
			if seen == nil {
				seen = make([]bool, len(st.fields))
			}
			if seen[i] {
				return errUnsupported // encoding/json merges the two
			}
			seen[i] = true
			fv, err := fieldOf(v, st.fields[i])
			if err != nil {
				return err
			}
			return d.value(fv)
		case st.foldsTo(key):
			return errUnsupported
		}
		return d.skip()
	})
}

// fieldOf is the settable field f of the struct v.
func fieldOf(v reflect.Value, f field) (reflect.Value, error) {
	if f.quoted {
		return reflect.Value{}, errUnsupported
	}
	for n, i := range f.index {
		if n > 0 && v.Kind() == reflect.Pointer {
			return reflect.Value{}, errUnsupported // through an embedded pointer
		}
		v = v.Field(i)
	}
	if !v.CanSet() {
		return reflect.Value{}, errUnsupported
	}
	return v, nil
}

// mapObject decodes a JSON object into the map v, whose keys are strings.
func (d *decoder) mapObject(v reflect.Value) error {
	t := v.Type()
	kt := t.Key()
	if kt.Kind() != reflect.String || d.decodesItself(kt) {
		return errUnsupported
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	return d.members(func(key string) error {
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(elem); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(key).Convert(kt), elem) // a key given twice: the last wins, as in encoding/json
		return nil
	})
}

// array decodes a JSON array into the slice v: a new slice, empty but not
// nil for [].
func (d *decoder) array(v reflect.Value) error {
	t := v.Type()
	s := reflect.MakeSlice(t, 0, 0)
	err := d.elements(func() error {
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(elem); err != nil {
			return err
		}
		s = reflect.Append(s, elem)
		return nil
	})
	if err == nil {
		v.Set(s)
	}
	return err
}

// number decodes a JSON number into the numeric v, as encoding/json does:
// integers only from integer literals within the field's range.
func (d *decoder) number(v reflect.Value) error {
	lit, isInt, err := d.numberLiteral()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(lit, 10, 64)
		if !isInt || err != nil || v.OverflowInt(n) {
			return errUnsupported
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(lit, 10, 64)
		if !isInt || err != nil || v.OverflowUint(n) {
			return errUnsupported
		}
		v.SetUint(n)
	default: // float
		n, err := strconv.ParseFloat(lit, v.Type().Bits())
		if err != nil || v.OverflowFloat(n) {
			return errUnsupported
		}
		v.SetFloat(n)
	}
	return nil
}

// numberLiteral consumes a number as JSON's grammar has it and says
// whether it has neither fraction nor exponent.
func (d *decoder) numberLiteral() (lit string, isInt bool, err error) {
	b, start := d.data, d.off
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return "", false, errUnsupported
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		if i == len(b) || !isDigit(b[i]) {
			return "", false, errUnsupported
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return "", false, errUnsupported
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	d.off = i
	return string(b[start:i]), isInt, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// str consumes a JSON string and returns its value. Strings encoding/json
// would mend (invalid UTF-8, an escaped lone surrogate) it leaves to
// encoding/json; escaped surrogate pairs too, which are rare.
func (d *decoder) str() (string, error) {
	b := d.data
	i := d.off + 1 // past "
	start, ascii := i, true
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		switch c := b[i]; {
		case c < 0x20:
			return "", errUnsupported
		case c >= utf8.RuneSelf:
			ascii = false
		}
		i++
	}
	if i == len(b) {
		return "", errUnsupported
	}
	if b[i] == '"' {
		s := b[start:i]
		if !ascii && !utf8.Valid(s) {
			return "", errUnsupported
		}
		d.off = i + 1
		return string(s), nil
	}
	buf := append([]byte(nil), b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", errUnsupported
			}
			d.off = i + 1
			return string(buf), nil
		case c < 0x20:
			return "", errUnsupported
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		i++ // the escape's letter
		if i == len(b) {
			return "", errUnsupported
		}
		switch e := b[i]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if len(b)-i < 5 {
				return "", errUnsupported
			}
			r, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 32)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return "", errUnsupported
			}
			buf = utf8.AppendRune(buf, rune(r))
			i += 4
		default:
			return "", errUnsupported
		}
		i++
	}
	return "", errUnsupported
}

// skip consumes any one JSON value, checking its syntax, for a key that
// names no field: encoding/json refuses a document with a syntax error
// anywhere.
func (d *decoder) skip() error {
	switch c := d.next(); {
	case c == '{':
		return d.members(func(string) error { return d.skip() })
	case c == '[':
		return d.elements(d.skip)
	case c == '"':
		_, err := d.str()
		return err
	case c == 't' && d.literal("true"), c == 'f' && d.literal("false"), c == 'n' && d.literal("null"):
		return nil
	case c == '-' || isDigit(c):
		_, _, err := d.numberLiteral()
		return err
	}
	return errUnsupported
}
