package cgroup

import (
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateDeviceAccess(t *testing.T) {
	for access, ok := range map[string]bool{
		"": true, "r": true, "w": true, "m": true, "rw": true, "wr": true, "rwm": true, "mwr": true,
		"rr": false, "rwmr": false, "x": false, "rwx": false, "R": false, "a": false, " r": false, "rw m": false,
	} {
		err := ValidateDeviceAccess(access)
		if (err == nil) != ok {
			t.Errorf("ValidateDeviceAccess(%q) = %v, want ok %v", access, err, ok)
		}
	}
}

func TestValidateUpdate(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	tests := []struct {
		name  string
		r     *specs.LinuxResources
		field string // "" for valid
	}{
		{"nil", nil, ""},
		{"empty", &specs.LinuxResources{}, ""},
		{"zeros are unset", &specs.LinuxResources{
			CPU: &specs.LinuxCPU{Period: u64(0), Quota: i64(0)}, BlockIO: &specs.LinuxBlockIO{Weight: u16(0)},
			Memory: &specs.LinuxMemory{Limit: i64(0), Swap: i64(0)}}, ""},
		{"valid everything", &specs.LinuxResources{
			CPU:     &specs.LinuxCPU{Period: u64(100000), Quota: i64(50000), Shares: u64(512), Cpus: "0-1,3", Mems: "0"},
			Memory:  &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(2 << 20), Reservation: i64(-1)},
			BlockIO: &specs.LinuxBlockIO{Weight: u16(500)},
			Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rw"}, {Allow: false, Access: "rwm"}},
		}, ""},
		{"quota -1", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1)}}, ""},
		{"period too small", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(999)}}, "cpu.period"},
		{"period too large", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(1000001)}}, "cpu.period"},
		{"quota too small", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(500)}}, "cpu.quota"},
		{"quota negative", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-2)}}, "cpu.quota"},
		{"idle 2", &specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(2)}}, "cpu.idle"},
		{"bad cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-"}}, "cpu.cpus"},
		{"bad mems", &specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "a"}}, "cpu.mems"},
		{"memory -2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, "memory.limit"},
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(10), Swap: i64(5)}}, "memory.swap"},
		{"swap with unlimited memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(5)}}, "memory.swap"},
		{"weight 5", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}, "blockIO.weight"},
		{"weight 1001", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(1001)}}, "blockIO.weight"},
		{"device access twice", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
			{Access: "rw"}, {Access: "rwr"}}}, "devices[1].access"},
		{"device access x", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "rwx"}}}, "devices[0].access"},
		{"device type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "p", Access: "r"}}}, "devices[0].type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUpdate(tt.r)
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.field != "" && !errors.As(err, &fe):
				t.Fatalf("got %v, want a FieldError for %s", err, tt.field)
			case tt.field != "" && fe.Field != tt.field:
				t.Fatalf("got field %q (%v), want %q", fe.Field, err, tt.field)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error %q is not one line", err)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"0", []int{0}}, {"0-3", []int{0, 1, 2, 3}}, {"0,2-3,7", []int{0, 2, 3, 7}},
		{"", nil}, {"-1", nil}, {"3-1", nil}, {"a", nil}, {"1,", nil}, {"0-99999999", nil},
	}
	for _, tt := range tests {
		got, err := parseList(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("parseList(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseList(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	if err := subsetOf("1", "0-1"); err != nil {
		t.Errorf("subsetOf(1, 0-1): %v", err)
	}
	if err := subsetOf("0,2", "0-1"); err == nil {
		t.Error("subsetOf(0,2, 0-1): no error")
	}
}

// TestWithCurrent checks how an update is merged with what the cgroup
// holds, from a fake set of files.
func TestWithCurrent(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		name  string
		v2    bool
		files map[string]string // "ctl/file" on v1, "file" on v2
		in    *specs.LinuxResources
		want  *specs.LinuxResources
	}{
		{"v1 period alone stays alone", false, nil,
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}}},
		{"v2 period alone keeps the quota", true, map[string]string{"cpu.max": "30000 100000"},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000), Quota: i64(30000)}}},
		{"v2 period alone with no quota", true, map[string]string{"cpu.max": "max 100000"},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000), Quota: i64(-1)}}},
		{"v2 quota alone", true, map[string]string{"cpu.max": "max 100000"},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(20000)}},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(20000)}}},
		{"v2 swap alone takes the memory limit", true, map[string]string{"memory.max": "33554432"},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(64 << 20)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(64 << 20), Limit: i64(32 << 20)}}},
		{"v2 swap alone without a memory limit", true, map[string]string{"memory.max": "max"},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(64 << 20)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(64 << 20)}}},
		{"v1 unlimited memory lifts swap", false, map[string]string{"memory/memory.memsw.limit_in_bytes": "1"},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}}},
		{"v1 unlimited memory without swap accounting", false, nil,
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}}},
		{"v1 unlimited memory with a swap setting", false, map[string]string{"memory/memory.memsw.limit_in_bytes": "1"},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}}},
		{"v2 unlimited memory lifts swap", true, map[string]string{"memory.swap.max": "0"},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(ctl, file string) (string, error) {
				key := ctl + "/" + file
				if tt.v2 {
					key = file
				}
				if v, ok := tt.files[key]; ok {
					return v, nil
				}
				return "", fs.ErrNotExist
			}
			got, err := withCurrent(tt.in, tt.v2, read)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %s, want %s", dump(got), dump(tt.want))
			}
		})
	}
}

func dump(r *specs.LinuxResources) string {
	var b strings.Builder
	if c := r.CPU; c != nil {
		b.WriteString("cpu{")
		if c.Period != nil {
			b.WriteString(" period=" + itoa(int64(*c.Period)))
		}
		if c.Quota != nil {
			b.WriteString(" quota=" + itoa(*c.Quota))
		}
		b.WriteString(" }")
	}
	if m := r.Memory; m != nil {
		b.WriteString("memory{")
		if m.Limit != nil {
			b.WriteString(" limit=" + itoa(*m.Limit))
		}
		if m.Swap != nil {
			b.WriteString(" swap=" + itoa(*m.Swap))
		}
		b.WriteString(" }")
	}
	return b.String()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
