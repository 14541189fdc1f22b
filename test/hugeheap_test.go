package test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/internal/hugeheap"
)

// internal/hugeheap puts the heaps of crier's short-lived processes on
// transparent huge pages where page faults are dear: create's fork, which
// becomes the shim, has them until it re-executes; where faults are cheap
// it has none. The serving image must not (it stays small), and
// nothing the shim or the container starts may inherit THP turned off,
// which is how the serving image is kept from them (shim.execServing).

// thpMode is the host's transparent huge page mode, "" when it has none.
func thpMode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	s := string(b)
	if i, j := strings.Index(s, "["), strings.Index(s, "]"); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return ""
}

// anonHugeKB is the AnonHugePages of /proc/PID/smaps_rollup.
func anonHugeKB(t *testing.T, pid int) int {
	t.Helper()
	for _, line := range strings.Split(readFile(t, "/proc/"+strconv.Itoa(pid)+"/smaps_rollup"), "\n") {
		if v, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("/proc/%d/smaps_rollup has no AnonHugePages", pid)
	return 0
}

// hugeAdvised counts the mappings of PID advised MADV_HUGEPAGE ("hg"):
// once THP is on, their untouched blocks get huge pages when first touched.
func hugeAdvised(t *testing.T, pid int) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(readFile(t, "/proc/"+strconv.Itoa(pid)+"/smaps"), "\n") {
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && strings.Contains(v+" ", " hg ") {
			n++
		}
	}
	return n
}

func servingImage(t *testing.T, pid int) bool {
	t.Helper()
	return strings.Contains(readFile(t, "/proc/"+strconv.Itoa(pid)+"/cmdline"), "--serve")
}

func TestHugeHeapOnlyBeforeServing(t *testing.T) {
	t.Parallel()
	mode := thpMode()
	if mode == "" || mode == "never" {
		t.Skipf("no transparent huge pages here (%q)", mode)
	}
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	shimPid := e.shimState(id).ShimPid

	// The create image re-executes once idle for 200 ms; a reading taken
	// while its command line stayed the create image's is the create
	// image's.
	// Whether it should have them is the machine's: the same probe here
	// says, unless a fault costs too near the threshold to tell.
	cost := hugeheap.FaultCost()
	want := cost >= hugeheap.FaultDear
	sure := cost >= 2*hugeheap.FaultDear || 2*cost <= hugeheap.FaultDear
	if !servingImage(t, shimPid) && sure {
		kb := anonHugeKB(t, shimPid)
		switch {
		case servingImage(t, shimPid):
			t.Log("the shim re-executed while read; not checking the create image")
		case want && kb == 0:
			t.Errorf("create image (shim %d): no huge pages where a fault costs %d ns, want its heap on them", shimPid, cost)
		case !want && kb != 0:
			t.Errorf("create image (shim %d): %d kB of huge pages where a fault costs %d ns, want none", shimPid, kb, cost)
		}
	}

	waitServing(t, shimPid)
	// The serving image has started once it answers.
	e.state(id)
	if kb := anonHugeKB(t, shimPid); kb != 0 {
		t.Errorf("serving shim %d: AnonHugePages %d kB, want 0", shimPid, kb)
	}
	if n := hugeAdvised(t, shimPid); n != 0 {
		t.Errorf("serving shim %d: %d mappings advised for huge pages, want none", shimPid, n)
	}
	if v := procStatus(t, shimPid)["THP_enabled"]; v != "1" {
		t.Errorf("serving shim %d: THP_enabled %q, want 1: what it starts would inherit THP off", shimPid, v)
	}
	e.cliOK("start", id)
	if v := procStatus(t, e.state(id).Pid)["THP_enabled"]; v != "1" {
		t.Errorf("container's process: THP_enabled %q, want 1", v)
	}
	r := e.cliRun("exec", id, "grep", "THP_enabled", "/proc/self/status")
	if r.code != 0 || !strings.Contains(r.stdout, "THP_enabled:\t1") {
		t.Errorf("exec'd process: exit %d, %q (stderr %q), want THP_enabled 1", r.code, r.stdout, r.stderr)
	}
	e.cliOK("delete", "--force", id)
}
