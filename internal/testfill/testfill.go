package testfill

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

// fill sets every exported field reachable from v to a value that is not
// the zero one, so that a test comparing hand-written encoding with
// encoding/json notices a field added later that the hand-written code
// misses. Strings carry characters JSON escapes.
func fill(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s<" + strconv.Itoa(*n) + ">\"\n\u2028")
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		v.SetInt(int64(*n % 100))
	case reflect.Uint, reflect.Uint64:
		v.SetUint(uint64(*n) << 40)
	case reflect.Uint32, reflect.Uint16, reflect.Uint8:
		v.SetUint(uint64(*n % 100))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) / 4)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 3 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, n)
			fill(t, e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(1_700_000_000, int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), n)
			}
		}
	case reflect.Interface:
		// Left nil: nothing the shim encodes by hand holds one.
	default:
		t.Fatalf("fill: no rule for %s", v.Type())
	}
}

// Filled returns a T with every exported field reachable from it set.
func Filled[T any](t *testing.T) *T {
	var v T
	n := 0
	fill(t, reflect.ValueOf(&v).Elem(), &n)
	return &v
}
