package jsondec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// shadowSpec is container's linuxSpec: fields of the embedded Spec hidden
// by shallower ones.
type shadowSpec struct {
	specs.Spec
	Windows json.RawMessage `json:"windows,omitempty"`
	VM      json.RawMessage `json:"vm,omitempty"`
}

// wireLike is container's wireSpec: an unexported embedded struct, and an
// anonymous struct embedding specs.Linux with a field that hides one of it.
type wireLike struct {
	shadowSpec
	Linux *struct {
		specs.Linux
		Resources json.RawMessage `json:"resources,omitempty"`
	} `json:"linux,omitempty"`
}

type inner struct {
	A int    `json:"a"`
	B string `json:"b"`
}

type twice1 struct{ inner }
type twice2 struct{ inner }

// odd has what the fast path leaves to encoding/json, and the kinds it
// decodes itself.
type odd struct {
	I8     int8              `json:"i8"`
	U16    uint16            `json:"u16"`
	F32    float32           `json:"f32"`
	F64    float64           `json:"f64"`
	Quoted int               `json:"quoted,string"`
	Any    any               `json:"any"`
	Num    json.Number       `json:"num"`
	Arr    [2]int            `json:"arr"`
	Bytes  []byte            `json:"bytes"`
	Raw    json.RawMessage   `json:"raw"`
	RawP   *json.RawMessage  `json:"rawp"`
	M      map[string]*inner `json:"m"`
	IntKey map[int]string    `json:"intkey"`
	P      **int             `json:"p"`
	S      []*inner          `json:"s"`
	Named  specs.LinuxNamespaceType
	Bad    int `json:"bad tag\x01"`
	Dash   int `json:"-,"`
	Skip   int `json:"-"`
	*inner     // promoted through a pointer
	twice1     // A and B of twice1 and twice2 hide each other,
	twice2     // and inner's through the pointer is deeper
	hidden int //nolint:unused // unexported: not decoded
}

// specJSON is a config like runc spec's with hooks, seccomp and resources.
const specJSON = `{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0,"additionalGids":[1,2]},
"args":["sh","-c","echo \"hi\\n\" \u00e9\u4e2d"],"env":["PATH=/bin","TERM=xterm"],"cwd":"/",
"capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]},
"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"oomScoreAdj":-17},
"root":{"path":"rootfs","readonly":true},"hostname":"h","annotations":{"a":"b","c":""},
"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],
"hooks":{"prestart":[{"path":"/bin/true","args":["true"],"timeout":5}],"poststop":[]},
"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}],
"memory":{"limit":1048576,"swap":-1},"cpu":{"shares":512,"quota":-1,"cpus":"0-1"},"pids":{"limit":100},"unified":{"memory.high":"max"}},
"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
"sysctl":{"net.ipv4.ip_forward":"1"},"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],
"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"flags":[],
"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]},
"timeOffsets":{"monotonic":{"secs":-3,"nanosecs":7}},"cgroupsPath":"/a/b"},
"windows":{"layerFolders":["x"]},"vm":null}`

// decoders are the types the cases decode into.
var decoders = map[string]func() any{
	"spec":   func() any { return new(specs.Spec) },
	"shadow": func() any { return new(shadowSpec) },
	"wire":   func() any { return new(wireLike) },
	"odd":    func() any { return new(odd) },
	"map":    func() any { return new(map[string]string) },
	"slice":  func() any { return new([]int64) },
	"ptr":    func() any { return new(*inner) },
	"raw":    func() any { return new(json.RawMessage) },
	"res":    func() any { return new(specs.LinuxResources) },
}

// agree decodes doc into a fresh value of each type with encoding/json and
// with Unmarshal, and fails unless the two agree on the value and on the
// error. It returns whether the fast path took it, for every type.
func agree(t *testing.T, doc []byte) (fastEverywhere bool) {
	t.Helper()
	fastEverywhere = true
	for name, mk := range decoders {
		want, got := mk(), mk()
		wantErr := json.Unmarshal(doc, want)
		gotErr := Unmarshal(doc, got)
		if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
			t.Fatalf("%s: %q: error %v, encoding/json's %v", name, doc, gotErr, wantErr)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: %q:\ngot  %#v\nwant %#v", name, doc, got, want)
		}
		if !fast(doc, reflect.ValueOf(mk()).Elem()) {
			fastEverywhere = false
		}
	}
	return fastEverywhere
}

func TestAgreesWithJSON(t *testing.T) {
	for _, c := range []struct {
		name string
		doc  string
		fast string // the decoder the fast path must take it in, if any
	}{
		{"a full spec", specJSON, "spec"},
		{"a full spec, shadowed", specJSON, "shadow"},
		{"a full spec, as init's", specJSON, "wire"},
		{"resources", `{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":5}}`, "res"},
		{"null fields", `{"process":null,"linux":{"namespaces":null,"sysctl":null,"cgroupsPath":null},"hostname":null}`, "spec"},
		{"null document", `null`, "spec"},
		{"white space", " \t\n{ \"hostname\" : \"x\" ,\r\n\"mounts\" : [ ] } \n", "spec"},
		{"unknown keys of every kind", `{"zz":{"a":[1,-2.5e+3,true,false,null,"s\u0041"]},"hostname":"h","yy":[]}`, "spec"},
		{"empty things", `{"mounts":[],"annotations":{},"process":{}}`, "spec"},
		{"case-folded key", `{"Hostname":"x"}`, ""},
		{"key twice", `{"hostname":"x","hostname":"y"}`, ""},
		{"struct twice", `{"process":{"cwd":"/"},"process":{"args":["a"]}}`, ""},
		{"map key twice", `{"a":"1","a":"2"}`, "map"},
		{"escaped key", `{"host\u006eame":"x"}`, "spec"},
		{"escapes", `{"hostname":"\"\\\/\b\f\n\r\t\u0000\u00ff\uffff"}`, "spec"},
		{"surrogate pair", `{"hostname":"\ud83d\ude00"}`, ""},
		{"lone surrogate", `{"hostname":"\ud83d"}`, ""},
		{"invalid UTF-8", "{\"hostname\":\"\xff\"}", ""},
		{"raw UTF-8", `{"hostname":"é中😀"}`, "spec"},
		{"control character", "{\"hostname\":\"a\x01\"}", ""},
		{"bad escape", `{"hostname":"\x"}`, ""},
		{"number into string", `{"hostname":1}`, ""},
		{"string into number", `{"linux":{"resources":{"pids":{"limit":"1"}}}}`, ""},
		{"fraction into int", `{"process":{"oomScoreAdj":1.0}}`, ""},
		{"exponent into int", `{"process":{"oomScoreAdj":1e2}}`, ""},
		{"negative into uint", `{"process":{"user":{"uid":-1}}}`, ""},
		{"uint32 overflow", `{"process":{"user":{"uid":4294967296}}}`, ""},
		{"uint64 max", `{"linux":{"resources":{"memory":{"limit":9223372036854775807}}}}`, "spec"},
		{"int64 overflow", `{"linux":{"resources":{"memory":{"limit":9223372036854775808}}}}`, ""},
		{"minus zero", `{"process":{"oomScoreAdj":-0}}`, "spec"},
		{"leading zero", `{"process":{"oomScoreAdj":01}}`, ""},
		{"bare minus", `{"process":{"oomScoreAdj":-}}`, ""},
		{"trailing garbage", `{"hostname":"x"} x`, ""},
		{"two documents", `{} {}`, ""},
		{"truncated", `{"hostname":"x"`, ""},
		{"trailing comma", `{"hostname":"x",}`, ""},
		{"array into struct", `[]`, ""},
		{"bad literal", `{"hostname":nul}`, ""},
		{"literal run on", `{"process":{"terminal":truex}}`, ""},
		{"BOM", "\xef\xbb\xbf{}", ""},
		{"empty", ``, ""},
		{"odd: numbers", `{"i8":-128,"u16":65535,"f32":1.5e3,"f64":-0.25E-2,"Named":"pid","s":[{"a":1},null]}`, "odd"},
		{"odd: int8 overflow", `{"i8":128}`, ""},
		{"odd: float32 overflow", `{"f32":1e39}`, ""},
		{"odd: quoted", `{"quoted":"5"}`, ""},
		{"odd: interface", `{"any":{"x":1}}`, ""},
		{"odd: number", `{"num":5}`, ""},
		{"odd: array", `{"arr":[1,2]}`, ""},
		{"odd: bytes from base64", `{"bytes":"AQI="}`, ""},
		{"odd: bytes from numbers", `{"bytes":[1,2]}`, "odd"},
		{"odd: raw", `{"raw":  {"x" : [1, 2]} ,"rawp":[3]}`, "odd"},
		{"odd: raw null", `{"raw":null,"rawp":null}`, "odd"},
		{"odd: map of pointers", `{"m":{"k":{"a":1},"n":null}}`, "odd"},
		{"odd: int keys", `{"intkey":{"1":"a"}}`, ""},
		{"odd: pointer to pointer", `{"p":5}`, "odd"},
		{"odd: pointer to pointer null", `{"p":null}`, "odd"},
		{"odd: bad tag keeps the Go name", `{"Bad":1,"bad tag\u0001":2}`, "odd"},
		{"odd: dash name", `{"-":3,"Skip":4}`, "odd"},
		{"odd: hidden by each other", `{"a":1,"b":"x"}`, ""},
		{"odd: unexported", `{"hidden":1}`, "odd"},
		{"deep", strings.Repeat(`{"zz":`, 1200) + `1` + strings.Repeat(`}`, 1200), ""},
		{"deep enough", strings.Repeat(`[`, 900) + strings.Repeat(`]`, 900), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			agree(t, []byte(c.doc))
			if c.fast != "" && !fast([]byte(c.doc), reflect.ValueOf(decoders[c.fast]()).Elem()) {
				t.Errorf("the fast path left it to encoding/json for %s", c.fast)
			}
		})
	}
}

// TestSpecOnFastPath: configs as encoding/json writes them, and a full
// one, take the fast path.
func TestSpecOnFastPath(t *testing.T) {
	b, err := json.Marshal(&specs.Spec{Version: "1.0.2", Process: &specs.Process{Args: []string{"sh"}, Env: []string{}},
		Root: &specs.Root{Path: "rootfs"}, Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "pid"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range [][]byte{b, []byte(specJSON)} {
		if !fast(doc, reflect.ValueOf(new(specs.Spec)).Elem()) {
			t.Errorf("%s: left to encoding/json", doc)
		}
	}
}

// TestClientConfigs: the configs podman, containerd and docker wrote on
// this machine's kind (testdata, from docs' sample configs) decode on the
// fast path, as encoding/json decodes them.
func TestClientConfigs(t *testing.T) {
	for _, name := range []string{"podman", "containerd", "docker"} {
		t.Run(name, func(t *testing.T) {
			doc, err := os.ReadFile(filepath.Join("testdata", name+"-config.json"))
			if err != nil {
				t.Fatal(err)
			}
			agree(t, doc)
			for _, typ := range []string{"spec", "shadow", "wire"} {
				if !fast(doc, reflect.ValueOf(decoders[typ]()).Elem()) {
					t.Errorf("%s: left to encoding/json", typ)
				}
			}
		})
	}
}

func TestNilPointer(t *testing.T) {
	var s *specs.Spec
	if err, want := Unmarshal([]byte(`{}`), s), json.Unmarshal([]byte(`{}`), s); err == nil || err.Error() != want.Error() {
		t.Errorf("Unmarshal into a nil pointer: %v, want %v", err, want)
	}
}

func FuzzAgreesWithJSON(f *testing.F) {
	f.Add([]byte(specJSON))
	f.Add([]byte(`{"i8":1,"m":{"a":{"b":"c"}},"raw":[1],"s":[]}`))
	f.Add([]byte(`{"a":"1","b":"\u00e9"}`))
	for _, name := range []string{"podman", "containerd", "docker"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name+"-config.json")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		agree(t, doc)
	})
}
