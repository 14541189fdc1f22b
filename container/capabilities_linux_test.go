package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCapabilityNamesTable(t *testing.T) {
	table := capabilityNames()
	if len(table) != unix.CAP_LAST_CAP+1 {
		t.Errorf("table has %d entries, x/sys/unix knows %d", len(table), unix.CAP_LAST_CAP+1)
	}
	seen := map[string]bool{}
	for n, name := range table {
		if !strings.HasPrefix(name, "CAP_") {
			t.Errorf("capability %d has name %q", n, name)
		}
		if seen[name] {
			t.Errorf("name %q appears twice", name)
		}
		seen[name] = true
		if got := parseCaps([]string{name}); !slices.Equal(got, []int{n}) {
			t.Errorf("parseCaps(%q) = %v; want [%d]", name, got, n)
		}
	}
}

func TestParseCaps(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []int
	}{
		{name: "nil", in: nil, want: []int{}},
		{name: "first", in: []string{"CAP_CHOWN"}, want: []int{0}},
		{name: "last", in: []string{"CAP_CHECKPOINT_RESTORE"}, want: []int{40}},
		{
			name: "order kept",
			in:   []string{"CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_KILL"},
			want: []int{unix.CAP_SYS_ADMIN, unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL},
		},
		{
			name: "duplicates dropped",
			in:   []string{"CAP_KILL", "CAP_BPF", "CAP_KILL"},
			want: []int{unix.CAP_KILL, unix.CAP_BPF},
		},
		// Names it does not know are left out (runc's warning).
		{name: "unknown", in: []string{"CAP_CHOWN", "CAP_FOO"}, want: []int{0}},
		{name: "lower case", in: []string{"cap_chown"}, want: []int{}},
		{name: "no prefix", in: []string{"CHOWN"}, want: []int{}},
		{name: "empty name", in: []string{""}, want: []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseCaps(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCapWords(t *testing.T) {
	tests := []struct {
		name    string
		caps    []int
		lastCap int
		want    [2]uint32
	}{
		{name: "empty", caps: nil, lastCap: 40, want: [2]uint32{0, 0}},
		{name: "chown", caps: []int{0}, lastCap: 40, want: [2]uint32{1, 0}},
		{name: "net bind", caps: []int{unix.CAP_NET_BIND_SERVICE}, lastCap: 40, want: [2]uint32{0x400, 0}},
		{name: "word boundary", caps: []int{31, 32}, lastCap: 40, want: [2]uint32{1 << 31, 1}},
		{name: "checkpoint restore", caps: []int{40}, lastCap: 40, want: [2]uint32{0, 1 << 8}},
		{name: "above kernel skipped", caps: []int{1, 38, 40}, lastCap: 37, want: [2]uint32{2, 0}},
		{name: "out of range skipped", caps: []int{-1, 64, 100}, lastCap: 200, want: [2]uint32{0, 0}},
		{name: "high kernel cap", caps: []int{63}, lastCap: 63, want: [2]uint32{0, 1 << 31}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := capWords(tt.caps, tt.lastCap); got != tt.want {
				t.Errorf("capWords(%v, %d) = %#x, want %#x", tt.caps, tt.lastCap, got, tt.want)
			}
		})
	}
}

func TestCapSetData(t *testing.T) {
	got := capSetData([]int{unix.CAP_KILL}, []int{unix.CAP_KILL, unix.CAP_BPF}, []int{unix.CAP_BPF}, 40)
	want := [2]unix.CapUserData{
		{Effective: 1 << unix.CAP_KILL, Permitted: 1 << unix.CAP_KILL},
		{Permitted: 1 << (unix.CAP_BPF - 32), Inheritable: 1 << (unix.CAP_BPF - 32)},
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseProcessCaps(t *testing.T) {
	pc := parseProcessCaps(nil)
	if len(pc.bounding)+len(pc.effective)+len(pc.inheritable)+len(pc.permitted)+len(pc.ambient) != 0 {
		t.Errorf("nil capabilities gave %+v, want all sets empty", pc)
	}

	pc = parseProcessCaps(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_KILL", "CAP_CHOWN"},
		Permitted: []string{"CAP_KILL"},
		Ambient:   []string{"CAP_CHOWN"},
	})
	if !slices.Equal(pc.bounding, []int{unix.CAP_KILL, unix.CAP_CHOWN}) ||
		!slices.Equal(pc.permitted, []int{unix.CAP_KILL}) ||
		!slices.Equal(pc.ambient, []int{unix.CAP_CHOWN}) ||
		len(pc.effective) != 0 || len(pc.inheritable) != 0 {
		t.Errorf("got %+v", pc)
	}

}

func TestCapabilityWarnings(t *testing.T) {
	got := CapabilityWarnings(&specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_KILL", "CAP_NOPE", "CAP_CHOWN"},
		Inheritable: []string{"CAP_KILL", "CAP_NOPE", "CAP_CHOWN"},
		Permitted:   []string{"CAP_KILL", "NOPE"},
		Ambient:     []string{"CAP_KILL", "CAP_CHOWN"},
	}})
	want := []string{
		"ignoring unknown or unavailable capabilities: [CAP_NOPE NOPE]",
		"can't raise ambient capability CAP_CHOWN: it is not both inheritable and permitted",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if w := CapabilityWarnings(&specs.Process{}); w != nil {
		t.Errorf("no capabilities: %q", w)
	}
}

func TestCapKernelLast(t *testing.T) {
	last, err := kernelLastCap()
	if err != nil {
		t.Fatal(err)
	}
	if last < unix.CAP_AUDIT_READ {
		t.Fatalf("kernelLastCap = %d, implausibly low", last)
	}
	if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(last), 0, 0, 0); err != nil {
		t.Errorf("PR_CAPBSET_READ %d: %v, want success", last, err)
	}
	if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(last+1), 0, 0, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("PR_CAPBSET_READ %d: %v, want EINVAL", last+1, err)
	}
	// The test's /proc is the host's: the probe agrees with it.
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := strconv.Atoi(strings.TrimSpace(string(b))); last != want {
		t.Errorf("kernelLastCap = %d, /proc/sys/kernel/cap_last_cap = %d", last, want)
	}
}

const capHelperEnv = "CRIER_TEST_CAP_HELPER"

// TestHelperCapBounding runs in a child of TestCapBoundingFakeProc, in its
// own mount namespace, with a cap_last_cap of 0 bound over the real one:
// the drop must not believe it.
func TestHelperCapBounding(t *testing.T) {
	dir := os.Getenv(capHelperEnv)
	if dir == "" {
		t.Skip("helper")
	}
	runtime.LockOSThread()
	report := func(format string, a ...any) {
		fmt.Printf(format+"\n", a...)
		os.Exit(0)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		report("error=unshare: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		report("error=make / rslave: %v", err)
	}
	fake := filepath.Join(dir, "cap_last_cap")
	if err := unix.Mount(fake, "/proc/sys/kernel/cap_last_cap", "", unix.MS_BIND, ""); err != nil {
		report("error=bind fake cap_last_cap: %v", err)
	}
	last, err := kernelLastCap()
	if err != nil {
		report("error=%v", err)
	}
	if err := dropBoundingSet([]int{unix.CAP_KILL}); err != nil {
		report("error=%v", err)
	}
	var held []string
	for c := 0; c <= maxCapIndex; c++ {
		if v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && v == 1 {
			held = append(held, capName(c))
		}
	}
	report("last=%d\nheld=%s", last, strings.Join(held, ","))
}

// TestCapBoundingFakeProc: a cap_last_cap of 0 over the real one (finding
// 1 of issue 8) changes neither the last capability learned nor the drop,
// which leaves exactly what keep lists.
func TestCapBoundingFakeProc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace and PR_CAPBSET_DROP")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cap_last_cap"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := kernelLastCap()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperCapBounding$", "-test.count=1")
	cmd.Env = append(os.Environ(), capHelperEnv+"="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	if kv["error"] != "" {
		t.Fatalf("helper: %s", kv["error"])
	}
	if kv["last"] != strconv.Itoa(want) {
		t.Errorf("last capability with a fake cap_last_cap = %q, want %d", kv["last"], want)
	}
	if kv["held"] != "CAP_KILL" {
		t.Errorf("bounding set after the drop = %q, want CAP_KILL alone", kv["held"])
	}
}

func TestCapName(t *testing.T) {
	if got := capName(unix.CAP_SYS_ADMIN); got != "CAP_SYS_ADMIN" {
		t.Errorf("capName(CAP_SYS_ADMIN) = %q", got)
	}
	if got := capName(45); got != "capability 45" {
		t.Errorf("capName(45) = %q", got)
	}
}
