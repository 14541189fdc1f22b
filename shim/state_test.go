package shim

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
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

func filled[T any](t *testing.T) *T {
	var v T
	n := 0
	fill(t, reflect.ValueOf(&v).Elem(), &n)
	return &v
}

func TestStateJSONMatchesEncodingJSON(t *testing.T) {
	full := filled[State](t)
	states := map[string]*State{
		"every field": full,
		"zero":        {},
		"created": {
			State: protocol.State{OCIVersion: "1.3.0", ID: "c1", Pid: 42, Status: protocol.StatusCreated, Bundle: "/b",
				Rootfs: "/b/rootfs", Created: protocol.FormatTime(time.Now()), Owner: "root"},
			PidStart: 1234, ShimPid: 41, ShimStart: 1200,
			Cgroup: &cgroup.Cgroup{Paths: map[string]string{"": "/sys/fs/cgroup/crier/c1"}},
		},
		"cgroup without paths":    {Cgroup: &cgroup.Cgroup{}},
		"cgroup with empty paths": {Cgroup: &cgroup.Cgroup{Paths: map[string]string{}, Created: []string{}}},
		"empty annotations":       {State: protocol.State{Annotations: map[string]string{}}},
	}
	for name, st := range states {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.appendJSON(nil); string(got) != string(want) {
				t.Errorf("state file\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestStateFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := filled[State](t)
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("ReadState = %+v, want %+v", got, st)
	}
}
