package sysmon

import "testing"

func TestMonitorThread(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		tids []int
		want int
		ok   bool
	}{
		{"main and sysmon", 100, []int{100, 102}, 102, true},
		{"the first after main", 100, []int{100, 104, 102, 107}, 102, true},
		{"listed in any order", 100, []int{107, 102, 100}, 102, true},
		{"ids wrapped after sysmon", 4000, []int{4000, 12, 4002}, 4002, true},
		{"ids wrapped before sysmon", 4000, []int{4000, 15, 12}, 12, true},
		{"the main thread alone", 100, []int{100}, 0, false},
		{"not this process's", 100, []int{101, 102}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := monitorThread(c.pid, c.tids)
			if got != c.want || ok != c.ok {
				t.Errorf("monitorThread(%d, %v) = %d, %v; want %d, %v", c.pid, c.tids, got, ok, c.want, c.ok)
			}
		})
	}
}
