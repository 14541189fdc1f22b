package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// This file tests runc's ps, update, events and --systemd-cgroup on real
// containers: what ps lists against the cgroup's own cgroup.procs, what
// update writes in the host's cgroup files and what the container then
// sees, that a refused update changes nothing, and that the stats of
// events are the cgroup's.

// extrasScript runs a child beside init, so that the container has two
// processes, says so, and then prints its cgroup limits as it sees them
// for each line it reads on stdin.
func extrasScript(h *cgroupHost) string {
	f := extrasFiles(h)
	show := ""
	for _, name := range []string{"shares", "memory", "pids"} {
		show += name + `=$(cat ` + filepath.Join(h.insideDir(f[name].key), f[name].file) + `) `
	}
	return `sleep 1000 & echo ready; while read x; do echo ` + show + `; done`
}

// limitFile is a cgroup file: its hierarchy (a v1 controller or "" for
// v2) and name.
type limitFile struct{ key, file string }

// extrasFiles are where the limits the tests update live on this host.
func extrasFiles(h *cgroupHost) map[string]limitFile {
	if h.v2 {
		return map[string]limitFile{"shares": {"", "cpu.weight"}, "memory": {"", "memory.max"}, "pids": {"", "pids.max"}}
	}
	return map[string]limitFile{
		"shares": {"cpu", "cpu.shares"}, "memory": {"memory", "memory.limit_in_bytes"}, "pids": {"pids", "pids.max"},
	}
}

// wantShares is what the shares file holds for cpu shares s.
func wantShares(h *cgroupHost, s uint64) string {
	if h.v2 {
		return strconv.FormatUint(1+((s-2)*9999)/262142, 10)
	}
	return strconv.FormatUint(s, 10)
}

// extrasContainer is a running container of extrasScript with its stdin
// and stdout as pipes.
type extrasContainer struct {
	id    string
	paths map[string]string
	in    *os.File
	out   *outPipe
	sub   *protocol.Client
}

// startExtras creates and starts a container of extrasScript with the
// resources set makes, and waits until both its processes run.
func startExtras(e *env, h *cgroupHost, set func(r *specs.LinuxResources)) *extrasContainer {
	t := e.t
	t.Helper()
	id := e.id()
	b := e.bundle([]string{"sh", "-c", extrasScript(h)}, func(s *specs.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		set(s.Linux.Resources)
	})
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inW.Close(); outR.Close() })
	p := e.cliStart(func(c *exec.Cmd) { c.Stdin, c.Stdout = inR, outW }, "create", "--bundle", b, id)
	inR.Close()
	outW.Close()
	p.waitOK()
	c := &extrasContainer{id: id, in: inW, out: newOutPipe(outR), sub: e.subscribe(id, true)}
	c.paths = e.shimState(id).Cgroup.Paths
	e.cliOK("start", id)
	if line := c.out.line(t); line != "ready" {
		t.Fatalf("container printed %q, want ready", line)
	}
	return c
}

// seen asks the container for its limits as it sees them.
func (c *extrasContainer) seen(t *testing.T) map[string]string {
	t.Helper()
	if _, err := c.in.WriteString("show\n"); err != nil {
		t.Fatal(err)
	}
	return keyValues(strings.ReplaceAll(c.out.line(t), " ", "\n"))
}

// host reads the limits in the container's cgroup files on the host.
func (c *extrasContainer) host(t *testing.T, h *cgroupHost) map[string]string {
	t.Helper()
	got := map[string]string{}
	for name, f := range extrasFiles(h) {
		got[name] = readFile(t, filepath.Join(c.paths[f.key], f.file))
	}
	if dir, ok := c.paths[h.limitsKey("cpuset")]; ok {
		got["cpus"] = readFile(t, filepath.Join(dir, "cpuset.cpus"))
	}
	return got
}

// procs is the sorted content of the container's cgroup.procs.
func (c *extrasContainer) procs(t *testing.T, h *cgroupHost) []int {
	t.Helper()
	var pids []int
	for _, f := range cgroupFileLines(t, filepath.Join(c.paths[h.limitsKey("pids")], "cgroup.procs")) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("cgroup.procs: %v", err)
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// stop kills the container and waits until it has stopped.
func (c *extrasContainer) stop(e *env) {
	e.t.Helper()
	e.cliOK("kill", c.id, "KILL")
	next(e.t, c.sub, protocol.EventStopped)
}

func TestCLIExtrasPs(t *testing.T) {
	e := newEnv(t)
	h := cgroupHostInfo(t)
	c := startExtras(e, h, func(r *specs.LinuxResources) {})
	procs := c.procs(t, h)
	if len(procs) != 2 {
		t.Fatalf("cgroup.procs = %v, want init and its sleep", procs)
	}

	var pids []int
	out := e.cliOK("ps", "--format", "json", c.id).stdout
	if err := json.Unmarshal([]byte(out), &pids); err != nil {
		t.Fatalf("ps --format json printed %q: %v", out, err)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, procs) {
		t.Errorf("ps --format json = %v, want cgroup.procs %v", pids, procs)
	}

	for _, args := range [][]string{{"ps", c.id}, {"ps", c.id, "-e", "-o", "pid,comm"}, {"ps", "-f", "table", c.id, "-ef"}} {
		lines := strings.Split(strings.TrimSpace(e.cliOK(args...).stdout), "\n")
		col := slices.Index(strings.Fields(lines[0]), "PID")
		if col < 0 {
			t.Fatalf("%v: header %q has no PID", args, lines[0])
		}
		var listed []int
		for _, l := range lines[1:] {
			pid, err := strconv.Atoi(strings.Fields(l)[col])
			if err != nil {
				t.Fatalf("%v: line %q: %v", args, l, err)
			}
			listed = append(listed, pid)
			if !strings.Contains(l, "sleep") && !strings.Contains(l, "sh") {
				t.Errorf("%v: line %q is not the container's", args, l)
			}
		}
		slices.Sort(listed)
		if !slices.Equal(listed, procs) {
			t.Errorf("%v listed %v, want cgroup.procs %v:\n%s", args, listed, procs, strings.Join(lines, "\n"))
		}
	}
	wantCLIError(t, "ps --format yaml", e.cliRun("ps", "--format", "yaml", c.id), "--format")

	// As runc: a stopped container's cgroup is empty, not an error.
	c.stop(e)
	if out := e.cliOK("ps", "-f", "json", c.id).stdout; out != "[]\n" {
		t.Errorf("ps -f json of a stopped container = %q, want []", out)
	}
	if out := strings.TrimSpace(e.cliOK("ps", c.id).stdout); strings.Contains(out, "\n") || !strings.Contains(out, "PID") {
		t.Errorf("ps of a stopped container = %q, want the header alone", out)
	}
	e.cliOK("delete", c.id)
	wantCLIError(t, "ps of a deleted container", e.cliRun("ps", c.id), "does not exist")
}

func TestCLIExtrasUpdate(t *testing.T) {
	e := newEnv(t)
	h := cgroupHostInfo(t)
	const mib = 1 << 20
	c := startExtras(e, h, func(r *specs.LinuxResources) {
		r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](32 * mib)}
		r.CPU = &specs.LinuxCPU{Shares: cgRef[uint64](100)}
		r.Pids = &specs.LinuxPids{Limit: cgRef[int64](20)}
	})
	want := func(what string, shares uint64, memory int64, pids string) {
		t.Helper()
		w := map[string]string{"shares": wantShares(h, shares), "memory": strconv.FormatInt(memory, 10), "pids": pids}
		host := c.host(t, h)
		seen := c.seen(t)
		for k, v := range w {
			if host[k] != v {
				t.Errorf("%s: host %s = %q, want %q", what, k, host[k], v)
			}
			if seen[k] != v {
				t.Errorf("%s: the container sees %s = %q, want %q", what, k, seen[k], v)
			}
		}
	}
	want("at create", 100, 32*mib, "20")

	e.cliOK("update", "--cpu-share", "512", "--memory", "64M", "--pids-limit", "50", c.id)
	want("update with flags", 512, 64*mib, "50")
	e.cliOK("update", "--memory", "67108864", c.id)
	e.cliOK("update", "--memory", "50M", c.id)
	want("update --memory 50M", 512, 50*mib, "50")

	file := filepath.Join(e.dir, "resources.json")
	if err := os.WriteFile(file, []byte(`{"memory":{"limit":33554432},"cpu":{"shares":100},"pids":{"limit":20}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.cliOK("update", "-r", file, c.id)
	want("update -r FILE", 100, 32*mib, "20")

	p := e.cliStart(func(cmd *exec.Cmd) {
		cmd.Stdin = strings.NewReader(`{"cpu":{"shares":300},"pids":{"limit":30},"memory":{"limit":41943040}}`)
	}, "update", "-r", "-", c.id)
	p.waitOK()
	want("update -r -", 300, 40*mib, "30")

	e.cliOK("update", "--pids-limit", "-1", c.id)
	want("update --pids-limit -1", 300, 40*mib, "max")
	e.cliOK("update", "--pids-limit", "30", c.id)

	before := c.host(t, h)
	bad := []struct {
		args  []string
		stdin string
		wants []string
	}{
		{[]string{"--memory", "10X", "--pids-limit", "99"}, "", []string{"--memory", `"10X" is not a size`}},
		{[]string{"--pids-limit", "99", "--cpu-period", "abc"}, "", []string{"--cpu-period", "abc"}},
		{[]string{"--pids-limit", "99", "--cpu-period", "10"}, "", []string{"--cpu-period", "out of range"}},
		{[]string{"--pids-limit", "99", "--cpu-quota", "500"}, "", []string{"--cpu-quota", "out of range"}},
		{[]string{"--pids-limit", "99", "--blkio-weight", "5"}, "", []string{"--blkio-weight", "out of range"}},
		{[]string{"--pids-limit", "99", "--memory", "2M", "--memory-swap", "1M"}, "", []string{"--memory-swap", "below the memory limit"}},
		{[]string{"--pids-limit", "99", "--cpuset-cpus", "4096"}, "", []string{"--cpuset-cpus", "4096"}},
		{[]string{"--pids-limit", "99", "--cpuset-cpus", "0-"}, "", []string{"--cpuset-cpus", "not a list"}},
		{[]string{"--pids-limit", "99", "--l3-cache-schema", "L3:0=f"}, "", []string{"--l3-cache-schema", "RDT"}},
		{[]string{"-r", "-"}, `{"pids":{"limit":99},"devices":[{"allow":true,"access":"rwx"}]}`, []string{"devices[0].access", `"rwx"`}},
		{[]string{"-r", "-"}, `{"pids":{"limit":99},"devices":[{"allow":true,"access":"rw"},{"allow":false,"type":"c","access":"rrw"}]}`,
			[]string{"devices[1].access", `"rrw"`, "at most once"}},
		{[]string{"-r", "-"}, `{"pids":{"limit":99},"cpu":{"period":5}}`, []string{"cpu.period", "out of range"}},
		{[]string{"-r", "-"}, `{"pids":`, []string{"update -r", "stdin"}},
		{[]string{"-r", filepath.Join(e.dir, "nonexistent.json")}, "", []string{"nonexistent.json"}},
	}
	for _, b := range bad {
		args := append(append([]string{"update"}, b.args...), c.id)
		r := e.cliStart(func(cmd *exec.Cmd) { cmd.Stdin = strings.NewReader(b.stdin) }, args...).wait()
		t.Logf("%v: %s", b.args, strings.TrimSpace(r.stderr))
		wantCLIError(t, strings.Join(b.args, " "), r)
		for _, w := range b.wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: error %q does not mention %q", b.args, strings.TrimSpace(r.stderr), w)
			}
		}
		if after := c.host(t, h); !mapsEqual(after, before) {
			t.Errorf("%v changed the cgroup: %v, was %v", b.args, after, before)
		}
	}
	want("after the refused updates", 300, 40*mib, "30")

	c.stop(e)
	wantCLIError(t, "update of a stopped container", e.cliRun("update", "--pids-limit", "10", c.id), "not running")
	e.cliOK("delete", c.id)
	wantCLIError(t, "update of a deleted container", e.cliRun("update", "--pids-limit", "10", c.id), "does not exist")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// statsLine is what the tests read of an events line.
type statsLine struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Limit uint64 `json:"limit"`
				Usage uint64 `json:"usage"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
			Limit   uint64 `json:"limit"`
		} `json:"pids"`
	} `json:"data"`
}

func decodeStats(t *testing.T, line string) statsLine {
	t.Helper()
	var s statsLine
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("events printed %q: %v", line, err)
	}
	return s
}

func TestCLIExtrasEvents(t *testing.T) {
	e := newEnv(t)
	h := cgroupHostInfo(t)
	const limit = 48 << 20
	c := startExtras(e, h, func(r *specs.LinuxResources) {
		r.Memory = &specs.LinuxMemory{Limit: cgRef[int64](limit)}
		r.Pids = &specs.LinuxPids{Limit: cgRef[int64](25)}
	})
	out := e.cliOK("events", "--stats", c.id).stdout
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("events --stats printed %q, want one line", out)
	}
	if !strings.HasPrefix(out, `{"type":"stats","id":"`+c.id+`","data":{`) {
		t.Errorf("events --stats = %q, not in runc's shape", out)
	}
	s := decodeStats(t, out)
	if n := len(c.procs(t, h)); s.Data.Pids.Current != uint64(n) || n != 2 {
		t.Errorf("pids.current = %d, want %d (cgroup.procs)", s.Data.Pids.Current, n)
	}
	if s.Data.Pids.Limit != 25 {
		t.Errorf("pids.limit = %d, want 25", s.Data.Pids.Limit)
	}
	if s.Data.Memory.Usage.Limit != limit || s.Data.Memory.Usage.Usage == 0 {
		t.Errorf("memory.usage = %+v, want limit %d and some usage", s.Data.Memory.Usage, limit)
	}
	if s.Data.CPU.Usage.Total == 0 {
		t.Error("cpu.usage.total is 0")
	}
	wantCLIError(t, "events --interval 0", e.cliRun("events", "--interval", "0", c.id), "--interval")

	// Streaming: a line per interval until the container stops.
	p, stream := e.cliStartPiped("events", "--interval", "50ms", c.id)
	for range 3 {
		if s := decodeStats(t, stream.line(t)); s.Type != "stats" || s.ID != c.id || s.Data.Pids.Current != 2 {
			t.Errorf("streamed %+v, want stats of %s with 2 pids", s, c.id)
		}
	}
	c.stop(e)
	if r := p.wait(); r.code != 0 {
		t.Errorf("events after the container stopped: exit %d: %s", r.code, r.stderr)
	}
	wantCLIError(t, "events --stats of a stopped container", e.cliRun("events", "--stats", c.id), "not running")
	e.cliOK("delete", c.id)
}

func TestCLIExtrasSystemdCgroup(t *testing.T) {
	e := newEnv(t)
	want := "systemd is not running on this host"
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		want = "no systemd cgroup driver"
	}
	b := e.bundle([]string{"sleep", "1000"}, nil)
	id := e.id()
	r := e.cliRun("--systemd-cgroup", "create", "--bundle", b, id)
	wantCLIError(t, "--systemd-cgroup create", r, "--systemd-cgroup: "+want)
	e.assertGone(id)
	r = e.cliRun("--systemd-cgroup", "run", "-d", "--bundle", b, id)
	wantCLIError(t, "--systemd-cgroup run", r, "--systemd-cgroup: "+want)
	e.assertGone(id)

	// containerd passes the flag on every call: the others ignore it.
	e.create(id, b)
	sub := e.subscribe(id, true)
	e.cliOK("--systemd-cgroup", "start", id)
	var st protocol.State
	if err := json.Unmarshal([]byte(e.cliOK("--systemd-cgroup", "state", id).stdout), &st); err != nil || st.Status != "running" {
		t.Errorf("--systemd-cgroup state: %+v, %v", st, err)
	}
	e.cliOK("--systemd-cgroup", "ps", "-f", "json", id)
	e.cliOK("--systemd-cgroup", "kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	e.cliOK("--systemd-cgroup", "delete", id)
	e.assertGone(id)
}
