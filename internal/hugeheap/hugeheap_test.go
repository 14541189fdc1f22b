package hugeheap

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// This test binary imports the package, so its init has run: where the
// kernel offers transparent huge pages on request, the heap is on them.
func TestHeapOnHugePages(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("Linux on amd64 only")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("no transparent huge pages here (%q)", mode)
	}
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if kb < hugePage>>10 {
				t.Fatalf("AnonHugePages %d kB, want at least one huge page (%d kB)", kb, hugePage>>10)
			}
			return
		}
	}
	t.Fatal("smaps_rollup has no AnonHugePages")
}
