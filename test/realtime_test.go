package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// hostCPUCgroup is the v1 cpu hierarchy of this machine; with RT group
// scheduling it has cpu.rt_runtime_us.
const hostCPUCgroup = "/sys/fs/cgroup/cpu"

func rtGroupScheduling() bool {
	_, err := os.Stat(filepath.Join(hostCPUCgroup, "cpu.rt_runtime_us"))
	return err == nil
}

// schedOf parses the policy and prio lines of /proc/PID/sched as printed
// by the container.
func schedOf(t *testing.T, out string) (policy, prio string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == ":" {
			switch f[0] {
			case "policy":
				policy = f[2]
			case "prio":
				prio = f[2]
			}
		}
	}
	return policy, prio
}

// TestRealtimeScheduler runs SCHED_FIFO containers side by side, each with
// a real-time budget of its own: two in the default cgroup, /ID, below the
// host's root, which has budget to give; one in a cgroupsPath whose parent
// does not exist and so starts with none: crier gives the parent it made
// what the container needs. Where the kernel has no RT group scheduling
// there is no budget to give and SCHED_FIFO must work without one.
func TestRealtimeScheduler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := rtGroupScheduling()
	const runtime = 10000
	ids := []string{e.id(), e.id(), e.id()}
	made := ids[2] + "-rt" // the parent crier makes for the third
	bundle := func(cgroupsPath string) string {
		return e.bundle([]string{"grep", "-E", "^(policy|prio) ", "/proc/self/sched"}, func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 1}
			s.Linux.CgroupsPath = cgroupsPath
			if rt {
				r := int64(runtime)
				s.Linux.Resources.CPU = &specs.LinuxCPU{RealtimeRuntime: &r}
			}
		})
	}
	leaves := []string{ids[0], ids[1], made + "/ctr"}
	outs := make([]string, len(ids))
	subs := make([]*protocol.Client, len(ids))
	for i, id := range ids {
		path := ""
		if i == 2 {
			path = "/" + leaves[2]
		}
		outs[i] = e.create(id, bundle(path))
		subs[i] = e.subscribe(id, true)
	}
	if rt {
		for i, id := range ids {
			if got := readFile(t, filepath.Join(hostCPUCgroup, leaves[i], "cpu.rt_runtime_us")); strings.TrimSpace(got) != strconv.Itoa(runtime) {
				t.Errorf("%s: cpu.rt_runtime_us %q, want %d", id, got, runtime)
			}
		}
		parent, err := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(hostCPUCgroup, made, "cpu.rt_runtime_us"))))
		// The kernel compares runtime<<20/period, rounded down, so the
		// parent may hold a microsecond less than the request.
		if err != nil || parent < runtime-1 {
			t.Errorf("/%s cpu.rt_runtime_us %d (%v), want at least %d", made, parent, err, runtime-1)
		}
	}
	for i, id := range ids {
		e.cliOK("start", id)
		ev := next(t, subs[i], protocol.EventStopped)
		e.cliOK("delete", id)
		out := readFile(t, outs[i])
		if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
			t.Fatalf("%s exited %+v: %s", id, ev, out)
		}
		// policy 1 is SCHED_FIFO; real-time priority 1 is kernel prio 98.
		if policy, prio := schedOf(t, out); policy != "1" || prio != "98" {
			t.Errorf("%s: policy %q prio %q, want 1 and 98:\n%s", id, policy, prio, out)
		}
	}
	wantNoCgroupNamed(t, made)
}

// TestRealtimeSchedulerWithoutBudget: with RT group scheduling a cgroup
// without real-time runtime refuses SCHED_FIFO, as runc's and crun's do;
// the error says what to set.
func TestRealtimeSchedulerWithoutBudget(t *testing.T) {
	t.Parallel()
	if !rtGroupScheduling() {
		t.Skip("no RT group scheduling: every cgroup may run real-time tasks")
	}
	e := newEnv(t)
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 1}
	})
	r := e.cliRun("run", "--bundle", b, e.id())
	wantErrorLine(t, "run SCHED_FIFO without realtimeRuntime", r, "realtimeRuntime")
	if !strings.Contains(r.stderr, "operation not permitted") {
		t.Errorf("stderr %q, want the EPERM", r.stderr)
	}
}
