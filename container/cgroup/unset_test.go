package cgroup

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithZeroAsUnset(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name    string
		in, out *specs.LinuxResources
	}{
		{"nil", nil, nil},
		{
			// docker 20.10's default spec
			name: "docker's zero shares and weight",
			in: &specs.LinuxResources{
				CPU:     &specs.LinuxCPU{Shares: u64(0)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(0)},
			},
			out: &specs.LinuxResources{CPU: &specs.LinuxCPU{}, BlockIO: &specs.LinuxBlockIO{}},
		},
		{
			name: "every zero that means unset",
			in: &specs.LinuxResources{
				CPU: &specs.LinuxCPU{Shares: u64(0), Quota: i64(0), Period: u64(0),
					RealtimeRuntime: i64(0), RealtimePeriod: u64(0)},
				Memory: &specs.LinuxMemory{Limit: i64(0), Reservation: i64(0), Swap: i64(0),
					Kernel: i64(0), KernelTCP: i64(0)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(0), LeafWeight: u16(0)},
				Network: &specs.LinuxNetwork{ClassID: u32(0)},
			},
			out: &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{},
				BlockIO: &specs.LinuxBlockIO{}, Network: &specs.LinuxNetwork{}},
		},
		{
			name: "zeros that mean zero, and values, are kept",
			in: &specs.LinuxResources{
				CPU:     &specs.LinuxCPU{Shares: u64(512), Quota: i64(-1), Idle: i64(0), Burst: u64(0)},
				Memory:  &specs.LinuxMemory{Limit: i64(-1), Swappiness: u64(0)},
				Pids:    &specs.LinuxPids{Limit: i64(0)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(100)},
			},
			out: &specs.LinuxResources{
				CPU:     &specs.LinuxCPU{Shares: u64(512), Quota: i64(-1), Idle: i64(0), Burst: u64(0)},
				Memory:  &specs.LinuxMemory{Limit: i64(-1), Swappiness: u64(0)},
				Pids:    &specs.LinuxPids{Limit: i64(0)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(100)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *specs.LinuxResources
			if tt.in != nil {
				c := *tt.in
				before = &c
			}
			got := withZeroAsUnset(tt.in)
			if !reflect.DeepEqual(got, tt.out) {
				t.Errorf("got %+v, want %+v", got, tt.out)
			}
			if tt.in != nil && !reflect.DeepEqual(*tt.in, *before) {
				t.Errorf("the caller's resources were modified")
			}
		})
	}
}

// TestZeroValuesNeedNoController: a config of zeros asks for no controller,
// so a host without it (blkio without BFQ here) is no reason to fail.
func TestZeroValuesNeedNoController(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	r := &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{Shares: u64(0)},
		BlockIO: &specs.LinuxBlockIO{Weight: u16(0)},
	}
	for _, v2 := range []bool{false, true} {
		if need := requiredControllers(withZeroAsUnset(r), v2); len(need) != 0 {
			t.Errorf("v2=%v: controllers %v needed for zeros", v2, need)
		}
	}
}
