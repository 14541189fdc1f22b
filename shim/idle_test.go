package shim

import (
	"testing"
	"time"
)

// The re-exec waits while the CPUs are taken, for reexecBusyMax at most.
func TestReexecWaitsForCPU(t *testing.T) {
	k := newFakeOps()
	s := &server{}
	s.ops = k.ops(s)
	t0 := time.Now()
	steps := []struct {
		busy bool
		at   time.Duration
		want bool
	}{
		{false, 0, false},
		{true, 0, true},
		{true, reexecBusyMax / 2, true},
		{true, reexecBusyMax, false}, // waited long enough
		{false, reexecBusyMax + time.Second, false},
		{true, reexecBusyMax + 2*time.Second, true}, // a new busy spell
	}
	for i, st := range steps {
		k.busyCPU.Store(st.busy)
		if got := s.cpuTaken(t0.Add(st.at)); got != st.want {
			t.Errorf("step %d (busy %v at %v): cpuTaken %v, want %v", i, st.busy, st.at, got, st.want)
		}
	}
}

func TestLoadavgBusy(t *testing.T) {
	for _, c := range []struct {
		loadavg string
		cpus    int
		want    bool
	}{
		{"0.93 2.46 2.78 1/412 12345\n", 2, false}, // the reader alone
		{"0.93 2.46 2.78 2/412 12345\n", 2, false},
		{"0.93 2.46 2.78 3/412 12345\n", 2, true},
		{"4.00 4.00 4.00 9/412 12345\n", 8, true},
		{"4.00 4.00 4.00 8/412 12345\n", 8, false},
		{"", 2, false},
		{"0.1 0.1 0.1 x/412 1\n", 2, false},
	} {
		if got := loadavgBusy(c.loadavg, c.cpus); got != c.want {
			t.Errorf("loadavgBusy(%q, %d) = %v, want %v", c.loadavg, c.cpus, got, c.want)
		}
	}
}
