package cgroup

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// devRule parses "allow c 1:3 rwm", "deny a" or "deny" (no type); "*"
// leaves a number out.
func devRule(t testing.TB, s string) specs.LinuxDeviceCgroup {
	t.Helper()
	f := strings.Fields(s)
	if len(f) == 0 || (f[0] != "allow" && f[0] != "deny") {
		t.Fatalf("bad rule %q", s)
	}
	r := specs.LinuxDeviceCgroup{Allow: f[0] == "allow"}
	num := func(s string) *int64 {
		if s == "*" {
			return nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("bad number %q", s)
		}
		return &v
	}
	if len(f) > 1 {
		r.Type = f[1]
	}
	if len(f) > 2 {
		major, minor, _ := strings.Cut(f[2], ":")
		r.Major, r.Minor = num(major), num(minor)
	}
	if len(f) > 3 {
		r.Access = f[3]
	}
	return r
}

func devRules(t testing.TB, lines ...string) []specs.LinuxDeviceCgroup {
	var rs []specs.LinuxDeviceCgroup
	for _, l := range lines {
		rs = append(rs, devRule(t, l))
	}
	return rs
}

// devReq is one access the kernel asks the program about.
type devReq struct {
	typ, major, minor, access uint32
	text                      string
}

// parseDevReq parses "c 1:3 rw".
func parseDevReq(t testing.TB, s string) devReq {
	t.Helper()
	var typ, access string
	var major, minor uint32
	if _, err := fmt.Sscanf(s, "%s %d:%d %s", &typ, &major, &minor, &access); err != nil {
		t.Fatalf("bad request %q: %v", s, err)
	}
	q := devReq{major: major, minor: minor, text: s}
	switch typ {
	case "b":
		q.typ = unix.BPF_DEVCG_DEV_BLOCK
	case "c":
		q.typ = unix.BPF_DEVCG_DEV_CHAR
	default:
		t.Fatalf("bad request type in %q", s)
	}
	for _, c := range access {
		q.access |= map[rune]uint32{'r': unix.BPF_DEVCG_ACC_READ, 'w': unix.BPF_DEVCG_ACC_WRITE, 'm': unix.BPF_DEVCG_ACC_MKNOD}[c]
	}
	return q
}

// ctx is the request as struct bpf_cgroup_dev_ctx.
func (q devReq) ctx() [3]uint32 {
	return [3]uint32{q.typ | q.access<<16, q.major, q.minor}
}

// probeable reports whether a real process can ask exactly q: one mknod,
// or one open for reading, writing or both, of a number mknod can encode.
func (q devReq) probeable() bool {
	switch q.access {
	case unix.BPF_DEVCG_ACC_MKNOD, unix.BPF_DEVCG_ACC_READ, unix.BPF_DEVCG_ACC_WRITE,
		unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE:
		return q.major <= 0xfff && q.minor <= 0xfffff
	}
	return false
}

type devCase struct {
	name        string
	rules       []specs.LinuxDeviceCgroup
	allow, deny []string // requests that must be allowed, denied
}

// devCases are the rule sets and their outcomes as the v1 controller
// decides them; TestCgroupDevicesV1Agreement checks that on the kernel.
func devCases(t testing.TB) []devCase {
	i64 := func(v int64) *int64 { return &v }
	defaults := Resources(&specs.Linux{
		Resources: &specs.LinuxResources{Devices: devRules(t, "deny a")},
		Devices: []specs.LinuxDevice{
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			{Path: "/dev/fifo", Type: "p"},
			{Path: "/dev/loop5", Type: "b", Major: 7, Minor: 5},
		},
	}).Devices
	return []devCase{
		{
			name:  "no rules allow everything",
			allow: []string{"c 1:3 rwm", "b 8:0 r", "c 1:5 m"},
		},
		{
			name:  "deny all",
			rules: devRules(t, "deny a"),
			deny:  []string{"c 1:3 r", "c 1:3 w", "c 1:3 m", "b 8:0 m", "b 8:0 rw"},
		},
		{
			name:  "deny all then one device",
			rules: devRules(t, "deny a", "allow c 1:3 rwm"),
			allow: []string{"c 1:3 r", "c 1:3 rw", "c 1:3 m", "c 1:3 rwm"},
			deny:  []string{"c 1:5 r", "c 1:5 m", "b 1:3 r", "c 3:1 r"},
		},
		{
			name:  "no type is all",
			rules: []specs.LinuxDeviceCgroup{{Allow: false}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(-1), Access: "r"}},
			allow: []string{"c 1:5 r", "c 1:7 r"},
			deny:  []string{"c 1:5 w", "c 2:5 r", "b 1:5 r"},
		},
		{
			name:  "wildcard minor grants only its access",
			rules: devRules(t, "deny a", "allow c 1:* r"),
			allow: []string{"c 1:7 r", "c 1:6 r"},
			deny:  []string{"c 1:7 w", "c 1:7 rw", "c 1:7 m", "c 2:7 r"},
		},
		{
			name:  "rules for the same device merge",
			rules: devRules(t, "deny a", "allow c 1:3 r", "allow c 1:3 w"),
			allow: []string{"c 1:3 rw", "c 1:3 r"},
			deny:  []string{"c 1:3 m", "c 1:3 rwm"},
		},
		{
			name:  "one exception must grant all the access",
			rules: devRules(t, "deny a", "allow c 1:* r", "allow c *:3 w"),
			allow: []string{"c 1:3 r", "c 1:3 w", "c 1:5 r", "c 5:3 w"},
			deny:  []string{"c 1:3 rw", "c 5:3 r"},
		},
		{
			name:  "deny one access on an allow-all cgroup",
			rules: devRules(t, "deny c 1:5 w"),
			allow: []string{"c 1:5 r", "c 1:5 m", "c 1:3 w", "b 1:5 w"},
			deny:  []string{"c 1:5 w", "c 1:5 rw"},
		},
		{
			name:  "a deny exception applies when it shares any access",
			rules: devRules(t, "deny c 1:* rw"),
			allow: []string{"c 1:5 m", "c 2:5 rw"},
			deny:  []string{"c 1:5 r", "c 1:5 rm", "c 1:5 rwm"},
		},
		{
			name:  "allow clears access from the same exception",
			rules: devRules(t, "deny c 1:5 rwm", "allow c 1:5 w"),
			allow: []string{"c 1:5 w", "c 1:3 r"},
			deny:  []string{"c 1:5 r", "c 1:5 m", "c 1:5 rw"},
		},
		{
			// Not "the last matching rule wins": on an allow-all cgroup an
			// allow only removes a deny for exactly the same devices.
			name:  "a wider allow does not lift a narrower deny",
			rules: devRules(t, "deny c 1:5 rwm", "allow c 1:* rwm"),
			allow: []string{"c 1:6 r", "c 1:3 rw"},
			deny:  []string{"c 1:5 r", "c 1:5 m"},
		},
		{
			// Nor on a deny-all one: a deny only removes an allow for
			// exactly the same devices.
			name:  "a narrower deny does not cut into a wider allow",
			rules: devRules(t, "deny a", "allow c 1:* rwm", "deny c 1:3 rwm"),
			allow: []string{"c 1:3 r", "c 1:3 rw", "c 1:5 m"},
			deny:  []string{"c 2:3 r"},
		},
		{
			name:  "a deny of the same devices removes access",
			rules: devRules(t, "deny a", "allow c 1:* rwm", "deny c 1:* w"),
			allow: []string{"c 1:3 r", "c 1:3 m"},
			deny:  []string{"c 1:3 w", "c 1:3 rw"},
		},
		{
			name:  "a wildcard is only the same as a wildcard",
			rules: devRules(t, "deny a", "allow c *:* m", "allow b *:* m", "deny c 1:3 m", "deny b *:* m"),
			allow: []string{"c 1:3 m", "c 7:0 m"},
			deny:  []string{"b 8:0 m", "c 1:3 r"},
		},
		{
			name:  "deny all resets",
			rules: devRules(t, "deny a", "allow c 1:3 rwm", "deny a"),
			deny:  []string{"c 1:3 r", "c 1:3 m"},
		},
		{
			name:  "allow all resets",
			rules: devRules(t, "deny a", "allow c 1:3 rwm", "allow a", "deny c 1:5 w"),
			allow: []string{"c 1:3 rw", "c 1:7 rw", "b 8:0 r", "c 1:5 r"},
			deny:  []string{"c 1:5 w"},
		},
		{
			name:  "type a ignores numbers and access",
			rules: devRules(t, "deny a 1:3 r"),
			deny:  []string{"c 1:3 w", "c 1:5 m", "b 8:0 w"},
		},
		{
			name:  "no access means rwm",
			rules: devRules(t, "deny a", "allow c 1:3"),
			allow: []string{"c 1:3 rwm", "c 1:3 rw", "c 1:3 m"},
			deny:  []string{"c 1:5 r"},
		},
		{
			name:  "numbers above 2^31 on a deny-all cgroup",
			rules: devRules(t, "deny a", "allow c 4000000000:4294967294 rw"),
			allow: []string{"c 4000000000:4294967294 rw"},
			deny:  []string{"c 1:4294967294 r", "c 4000000000:1 r", "c 4000000000:4294967294 m"},
		},
		{
			name:  "numbers above 2^31 on an allow-all cgroup",
			rules: devRules(t, "deny b 2147483648:0 r"),
			allow: []string{"b 0:0 r", "b 2147483648:0 w", "b 2147483647:0 r"},
			deny:  []string{"b 2147483648:0 r"},
		},
		{
			// The kernel's wildcard is ~0, so a literal 4294967295 is one.
			name:  "4294967295 is the wildcard",
			rules: devRules(t, "deny a", "allow c 4294967295:3 r"),
			allow: []string{"c 7:3 r", "c 1:3 r"},
			deny:  []string{"c 7:4 r", "c 7:3 w"},
		},
		{
			name:  "crier defaults after a deny-all config",
			rules: defaults,
			allow: []string{"c 1:3 rw", "c 1:5 rw", "c 1:9 r", "c 5:0 rw", "c 136:7 rw", "c 10:200 rw",
				"c 4:1 m", "b 8:0 m"},
			// linux.devices get no rule of their own, as in runc.
			deny: []string{"c 4:1 rw", "c 4:1 r", "b 8:0 r", "b 7:6 r", "c 10:230 r", "c 1:4 r",
				"c 10:229 rw", "b 7:5 r"},
		},
		{
			// runc reads an access as the set of r, w and m it names.
			name:  "unknown access letters are ignored",
			rules: devRules(t, "deny a", "allow c 1:3 rwx", "allow c 1:5 a", "allow c 1:11 rwm", "deny c 1:11 rwa"),
			allow: []string{"c 1:3 rw", "c 1:11 m"},
			deny:  []string{"c 1:3 m", "c 1:5 r", "c 1:11 r", "c 1:11 w"},
		},
	}
}

func TestCgroupDevicesProgram(t *testing.T) {
	for _, tc := range devCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := devicesProgram(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			if err := bpfCheckCFG(prog); err != nil {
				t.Fatal(err)
			}
			for _, want := range []bool{true, false} {
				reqs := tc.deny
				if want {
					reqs = tc.allow
				}
				for _, s := range reqs {
					q := parseDevReq(t, s)
					got, err := bpfRun(prog, q.ctx())
					if err != nil {
						t.Fatalf("%s: %v", s, err)
					}
					if (got == 1) != want || got > 1 {
						t.Errorf("%s: program returned %d, want allowed=%v", s, got, want)
					}
				}
			}
		})
	}
}

// devBadRules are rule sets the v1 controller refuses.
func devBadRules(t testing.TB) [][]specs.LinuxDeviceCgroup {
	return [][]specs.LinuxDeviceCgroup{
		devRules(t, "allow x 1:3 rwm"),
		devRules(t, "allow u 1:3 rwm"),
		devRules(t, "deny a", "allow c 4294967296:3 r"),
		devRules(t, "deny a", "allow b 1:4294967296 r"),
	}
}

func TestCgroupDevicesProgramErrors(t *testing.T) {
	for _, rules := range devBadRules(t) {
		if _, err := devicesProgram(rules); err == nil {
			t.Errorf("%+v: no error", rules)
		}
	}
	if err := setV2Devices(t.TempDir(), devRules(t, "allow x 1:3 rwm")); err == nil ||
		!strings.Contains(err.Error(), "device rule 0") {
		t.Errorf("setV2Devices with a bad rule: %v", err)
	}
	// No rules, nothing to attach, even to a directory that is no cgroup.
	if err := setV2Devices(t.TempDir(), nil); err != nil {
		t.Errorf("setV2Devices without rules: %v", err)
	}
}

// TestCgroupDevicesBPFVerifier loads every program of the table into the
// kernel, whose verifier must accept it.
func TestCgroupDevicesBPFVerifier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tc := range devCases(t) {
		prog, err := devicesProgram(tc.rules)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := bpfProgLoad(unix.BPF_PROG_TYPE_CGROUP_DEVICE, prog, "Apache")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		unix.Close(fd)
	}
	// A program the verifier refuses (r0 unset) gives its log.
	_, err := bpfProgLoad(unix.BPF_PROG_TYPE_CGROUP_DEVICE, []bpfInsn{bpfOp(unix.BPF_JMP|unix.BPF_EXIT, 0, 0, 0, 0)}, "Apache")
	if err == nil || !strings.Contains(err.Error(), "verifier") {
		t.Errorf("bad program: %v, want an error with the verifier log", err)
	}
}

// testCgroupDir makes a directory for a test under the cgroup hierarchy
// mounted at root, skipping the test without one, and removes it at the
// end.
func testCgroupDir(t *testing.T, root string) string {
	t.Helper()
	testCgroupRoot(t, root)
	dir := filepath.Join(root, fmt.Sprintf("crier-bpftest-%x", rand.Uint64()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeTree(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// testCgroupRoot skips the test unless it runs as root and a cgroup
// hierarchy is mounted at root.
func testCgroupRoot(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if !fileExists(filepath.Join(root, "cgroup.procs")) {
		t.Skipf("no cgroup hierarchy at %s", root)
	}
}

// testUnifiedRoot is a cgroup2 mount point: the unified directory of a
// hybrid host, or /sys/fs/cgroup on a v2 one.
func testUnifiedRoot(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

// TestCgroupDevicesBPFEnforce attaches a program to a real v2 cgroup and
// runs a shell in it; removing the cgroup frees the program.
func TestCgroupDevicesBPFEnforce(t *testing.T) {
	dir := testCgroupDir(t, testUnifiedRoot(t))
	if err := setV2Devices(dir, devRules(t, "deny a", "allow c 1:3 rwm")); err != nil {
		t.Fatal(err)
	}
	ids := bpfQueryDeviceProgs(t, dir)
	if len(ids) != 1 {
		t.Fatalf("programs attached to %s: %v, want one", dir, ids)
	}

	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	tmp := t.TempDir()
	cmd := exec.Command("sh", "-c", `cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null && echo zero-ok
mknod "$1/null" c 1 3 && echo mknod-null-ok; mknod "$1/zero" c 1 5 && echo mknod-zero-ok; true`, "sh", tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("output:\n%s", out)
	for _, want := range []string{"null-ok", "mknod-null-ok"} {
		if !slices.Contains(strings.Fields(string(out)), want) {
			t.Errorf("no %s: /dev/null is allowed", want)
		}
	}
	for _, bad := range []string{"zero-ok", "mknod-zero-ok"} {
		if slices.Contains(strings.Fields(string(out)), bad) {
			t.Errorf("%s: /dev/zero is denied", bad)
		}
	}
	if !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("no EPERM in the output")
	}

	// Destroy needs no detach: the program goes with the directory.
	if err := removeTree(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !bpfProgGone(t, ids[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("program %d still loaded 10s after rmdir %s", ids[0], dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bpfQueryDeviceProgs lists the IDs of the device programs attached to the
// cgroup dir itself.
func bpfQueryDeviceProgs(t *testing.T, dir string) []uint32 {
	t.Helper()
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	ids := make([]uint32, 16)
	attr := struct {
		targetFD, attachType, queryFlags, attachFlags uint32
		progIDs                                       uint64
		progCnt, _                                    uint32
	}{
		targetFD:   uint32(cg),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
		progCnt:    uint32(len(ids)),
	}
	if _, err := bpfCall(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		t.Fatalf("BPF_PROG_QUERY %s: %v", dir, err)
	}
	return ids[:attr.progCnt]
}

// bpfProgGone reports whether no program has the ID id any more.
func bpfProgGone(t *testing.T, id uint32) bool {
	attr := struct{ progID, nextID, openFlags uint32 }{progID: id}
	fd, err := bpfCall(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		unix.Close(fd)
		return false
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("BPF_PROG_GET_FD_BY_ID %d: %v", id, err)
	}
	return true
}

// devList formats s as the v1 devices.list file shows it: only the
// allowed devices, so an allow-all state is one line.
func devList(s devState) []string {
	if s.allow {
		return []string{"a *:* rwm"}
	}
	var lines []string
	for _, ex := range s.exceptions {
		num := func(n uint32) string {
			if n == devAny {
				return "*"
			}
			return strconv.FormatUint(uint64(n), 10)
		}
		typ := "c"
		if ex.typ == unix.BPF_DEVCG_DEV_BLOCK {
			typ = "b"
		}
		var acc string
		for _, a := range []struct {
			bit uint32
			c   string
		}{{unix.BPF_DEVCG_ACC_READ, "r"}, {unix.BPF_DEVCG_ACC_WRITE, "w"}, {unix.BPF_DEVCG_ACC_MKNOD, "m"}} {
			if ex.access&a.bit != 0 {
				acc += a.c
			}
		}
		lines = append(lines, fmt.Sprintf("%s %s:%s %s", typ, num(ex.major), num(ex.minor), acc))
	}
	return lines
}

// TestCgroupDevicesV1Agreement checks the table on the kernel itself: each
// rule set is written to a v1 devices cgroup and attached as a program to
// a v2 cgroup, and a process in each tries every request of the table that
// one system call can make. Both kernels must give the table's answer, and
// devices.list must show the emulated state.
func TestCgroupDevicesV1Agreement(t *testing.T) {
	v1root := "/sys/fs/cgroup/devices"
	unified := testUnifiedRoot(t)
	testCgroupRoot(t, v1root)
	t.Run("refused rules", func(t *testing.T) {
		for _, rules := range devBadRules(t) {
			v1 := testCgroupDir(t, v1root)
			if err := writeAll(v1, deviceWrites(rules)); !errors.Is(err, unix.EINVAL) {
				t.Errorf("%+v: v1 gives %v, want EINVAL", rules, err)
			}
		}
	})
	for _, tc := range devCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			v1 := testCgroupDir(t, v1root)
			if err := writeAll(v1, deviceWrites(tc.rules)); err != nil {
				t.Fatalf("v1: %v", err)
			}
			state, err := devEmulate(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			list, err := readFile(v1, "devices.list")
			if err != nil {
				t.Fatal(err)
			}
			got, want := strings.Split(list, "\n"), devList(state)
			if list == "" {
				got = nil
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("v1 devices.list = %q, emulated %q", got, want)
			}

			v2 := testCgroupDir(t, unified)
			if err := setV2Devices(v2, tc.rules); err != nil {
				t.Fatal(err)
			}
			var reqs []devReq
			var wants []bool
			for _, s := range tc.allow {
				if q := parseDevReq(t, s); q.probeable() {
					reqs, wants = append(reqs, q), append(wants, true)
				}
			}
			for _, s := range tc.deny {
				if q := parseDevReq(t, s); q.probeable() {
					reqs, wants = append(reqs, q), append(wants, false)
				}
			}
			if len(reqs) == 0 {
				return
			}
			nodes := t.TempDir()
			for _, q := range reqs {
				if q.access != unix.BPF_DEVCG_ACC_MKNOD {
					err := unix.Mknod(devNodePath(nodes, q), devNodeMode(q)|0o600, int(unix.Mkdev(q.major, q.minor)))
					if err != nil && !errors.Is(err, unix.EEXIST) {
						t.Fatal(err)
					}
				}
			}
			for _, c := range []struct{ kind, dir string }{{"v1", v1}, {"v2", v2}} {
				got := devProbe(t, c.dir, nodes, reqs)
				for i, q := range reqs {
					if got[i] != wants[i] {
						t.Errorf("%s: %s: allowed=%v, want %v", c.kind, q.text, got[i], wants[i])
					}
				}
			}
		})
	}
}

func devNodePath(dir string, q devReq) string {
	return filepath.Join(dir, fmt.Sprintf("%d-%d-%d", q.typ, q.major, q.minor))
}

func devNodeMode(q devReq) uint32 {
	if q.typ == unix.BPF_DEVCG_DEV_BLOCK {
		return unix.S_IFBLK
	}
	return unix.S_IFCHR
}

// devProbe runs TestCgroupDevicesProbeHelper in the cgroup dir and returns
// whether each request was allowed.
func devProbe(t *testing.T, cgroupDir, nodes string, reqs []devReq) []bool {
	t.Helper()
	var texts []string
	for _, q := range reqs {
		texts = append(texts, q.text)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCgroupDevicesProbeHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CRIER_DEVPROBE_CGROUP="+cgroupDir, "CRIER_DEVPROBE_DIR="+nodes,
		"CRIER_DEVPROBE_REQS="+strings.Join(texts, ";"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe in %s: %v\n%s", cgroupDir, err, out)
	}
	var got []bool
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "probe "); ok {
			if v != "allow" && v != "deny" {
				t.Fatalf("probe in %s: %s", cgroupDir, line)
			}
			got = append(got, v == "allow")
		}
	}
	if len(got) != len(reqs) {
		t.Fatalf("probe in %s: %d answers for %d requests:\n%s", cgroupDir, len(got), len(reqs), out)
	}
	return got
}

// TestCgroupDevicesProbeHelper is the process devProbe starts: it moves
// into a cgroup and makes each request, printing "probe allow" or
// "probe deny" (EPERM) for each. Without its environment it does nothing.
func TestCgroupDevicesProbeHelper(t *testing.T) {
	cg := os.Getenv("CRIER_DEVPROBE_CGROUP")
	if cg == "" {
		return
	}
	if err := writeFile(filepath.Join(cg, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("CRIER_DEVPROBE_DIR")
	for i, s := range strings.Split(os.Getenv("CRIER_DEVPROBE_REQS"), ";") {
		q := parseDevReq(t, s)
		var err error
		if q.access == unix.BPF_DEVCG_ACC_MKNOD {
			p := filepath.Join(dir, fmt.Sprintf("mknod-%d-%d", os.Getpid(), i))
			if err = unix.Mknod(p, devNodeMode(q)|0o600, int(unix.Mkdev(q.major, q.minor))); err == nil {
				unix.Unlink(p)
			}
		} else {
			flags := unix.O_RDONLY
			switch q.access {
			case unix.BPF_DEVCG_ACC_WRITE:
				flags = unix.O_WRONLY
			case unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE:
				flags = unix.O_RDWR
			}
			var fd int
			if fd, err = unix.Open(devNodePath(dir, q), flags|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		}
		// The device cgroup check comes before the driver's open, so a
		// missing device (ENXIO, ENODEV) or an unready one (EIO) passed it.
		switch {
		case errors.Is(err, unix.EPERM):
			fmt.Println("probe deny")
		case err == nil || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EIO):
			fmt.Println("probe allow")
		default:
			fmt.Printf("probe error %s: %v\n", s, err)
		}
	}
}

// bpfCheckCFG checks what the kernel verifier's first pass checks: every
// jump lands inside the program, no instruction is unreachable and
// control cannot run off the end.
func bpfCheckCFG(prog []bpfInsn) error {
	seen := make([]bool, len(prog))
	var visit func(pc int) error
	visit = func(pc int) error {
		for {
			if pc < 0 || pc >= len(prog) {
				return fmt.Errorf("control reaches %d, outside the program", pc)
			}
			if seen[pc] {
				return nil
			}
			seen[pc] = true
			in := prog[pc]
			if in.Code&0x07 != unix.BPF_JMP {
				pc++
				continue
			}
			switch in.Code & 0xf0 {
			case unix.BPF_EXIT:
				return nil
			case unix.BPF_JA:
				pc += 1 + int(in.Off)
			default:
				if err := visit(pc + 1 + int(in.Off)); err != nil {
					return err
				}
				pc++
			}
		}
	}
	if err := visit(0); err != nil {
		return err
	}
	if i := slices.Index(seen, false); i >= 0 {
		return fmt.Errorf("instruction %d is unreachable", i)
	}
	return nil
}

// bpfRun interprets the instructions the device program uses, with the
// kernel's 64-bit semantics (immediates sign-extended except in a 32-bit
// move), on a context ctx. Anything else, an uninitialised register, a
// backward jump or pointer arithmetic on the context is an error.
func bpfRun(prog []bpfInsn, ctx [3]uint32) (uint64, error) {
	var reg [11]uint64
	var set, isCtx [11]bool
	set[1], isCtx[1] = true, true
	for pc := 0; ; pc++ {
		if pc < 0 || pc >= len(prog) {
			return 0, fmt.Errorf("pc %d outside the program", pc)
		}
		in := prog[pc]
		dst, src := in.Regs&0xf, in.Regs>>4
		if dst > 10 || src > 10 {
			return 0, fmt.Errorf("pc %d: bad register", pc)
		}
		imm := uint64(int64(in.Imm))
		need := func(rs ...uint8) error {
			for _, r := range rs {
				if !set[r] {
					return fmt.Errorf("pc %d: r%d read before it is set", pc, r)
				}
			}
			return nil
		}
		arith := func() error {
			if err := need(dst); err != nil {
				return err
			}
			if isCtx[dst] {
				return fmt.Errorf("pc %d: arithmetic on the context pointer", pc)
			}
			return nil
		}
		jump := func(cond bool) error {
			if in.Off < 0 {
				return fmt.Errorf("pc %d: backward jump", pc)
			}
			if cond {
				pc += int(in.Off)
			}
			return nil
		}
		var err error
		switch in.Code {
		case unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W:
			if err = need(src); err == nil && (!isCtx[src] || in.Off < 0 || in.Off > 8 || in.Off%4 != 0) {
				err = fmt.Errorf("pc %d: bad load from r%d%+d", pc, src, in.Off)
			}
			reg[dst], set[dst], isCtx[dst] = uint64(ctx[max(0, min(in.Off, 8))/4]), true, false
		case unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K:
			reg[dst], set[dst], isCtx[dst] = imm, true, false
		case unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K:
			reg[dst], set[dst], isCtx[dst] = uint64(uint32(in.Imm)), true, false
		case unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X:
			err = need(src)
			reg[dst], set[dst], isCtx[dst] = reg[src], true, isCtx[src]
		case unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K:
			err = arith()
			reg[dst] >>= uint(in.Imm) & 63
		case unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K:
			err = arith()
			reg[dst] &= imm
		case unix.BPF_JMP | unix.BPF_JA:
			err = jump(true)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if err = arith(); err == nil {
				err = jump(reg[dst] == imm)
			}
		case unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K:
			if err = arith(); err == nil {
				err = jump(reg[dst] != imm)
			}
		case unix.BPF_JMP | unix.BPF_JNE | unix.BPF_X:
			if err = arith(); err == nil {
				if err = need(src); err == nil {
					err = jump(reg[dst] != reg[src])
				}
			}
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if err = arith(); err == nil {
				err = jump(reg[dst]&imm != 0)
			}
		case unix.BPF_JMP | unix.BPF_EXIT:
			if err := need(0); err != nil {
				return 0, err
			}
			if isCtx[0] {
				return 0, fmt.Errorf("pc %d: returns a pointer", pc)
			}
			return reg[0], nil
		default:
			err = fmt.Errorf("pc %d: opcode %#x not interpreted", pc, in.Code)
		}
		if err != nil {
			return 0, err
		}
	}
}
