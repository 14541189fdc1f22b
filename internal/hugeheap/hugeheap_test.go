package hugeheap

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func linuxTHP(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("Linux on amd64 only")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("no transparent huge pages here (%q)", mode)
	}
}

// anonHuge is this process's AnonHugePages in kB.
func anonHuge(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	t.Fatal("smaps_rollup has no AnonHugePages")
	return 0
}

// collapse puts the heap on huge pages where the kernel offers them on
// request, whatever the init decided on this machine.
func TestCollapse(t *testing.T) {
	linuxTHP(t)
	collapse()
	if kb := anonHuge(t); kb < hugePage>>10 {
		t.Fatalf("AnonHugePages %d kB after collapse, want at least one huge page (%d kB)", kb, hugePage>>10)
	}
}

// FaultCost times page faults, not writes: the first write to a page of
// a fresh mapping costs a fault, at least some hundreds of nanoseconds on
// any machine, and a second write to the same pages costs next to
// nothing.
func TestFaultCost(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("Linux on amd64 only")
	}
	cost := FaultCost()
	if cost < 300 {
		t.Fatalf("FaultCost %d ns, want a page fault's cost (300 ns or more)", cost)
	}
	const size = probePages * pageSize
	p := mmap(size)
	if int(p) < 0 {
		t.Fatalf("mmap: errno %d", -int(p))
	}
	defer munmap(p, size)
	for i := range uintptr(probePages) {
		touch(p + i*pageSize)
	}
	again := int64(1<<63 - 1)
	for i := range uintptr(probePages) {
		t0 := nanotime()
		touch(p + i*pageSize)
		again = min(again, nanotime()-t0)
	}
	if again*4 > cost {
		t.Fatalf("a write to a page already there took %d ns, a fault %d: the probe does not tell them apart", again, cost)
	}
	t.Logf("a page fault here: %d ns (the huge heap from %d)", cost, FaultDear)
}
