//go:build cri

package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrictl runs the scenarios of a Kubernetes node through crictl, with
// each runtime handler: crier, and runc as the reference, side by side.
func TestCrictl(t *testing.T) {
	for _, h := range suite.handlers {
		h := h
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			var events *eventStream
			if h.crier {
				events = startEvents(t, h)
			}
			p := runPod(t, h, "pod", nsContainer)
			podScenarios(t, p)
			shared := sharedPIDPod(t, h)
			removePod(t, p)
			if events != nil {
				t.Run("events", func(t *testing.T) {
					events.check(t, p.exits)
					if shared != nil {
						events.check(t, shared.exits)
					}
				})
			}
		})
	}
}

// The CRI's namespace modes (runtime.v1 NamespaceMode).
const (
	nsPod       = 0
	nsContainer = 1
)

// pod is a pod sandbox the test made, and what it knows of it.
type pod struct {
	h      handler
	id     string
	name   string
	config string // the pod config file, which crictl create wants again
	// pidMode is the pid namespace mode of the pod and its containers
	// (each container's config says it again, as the kubelet's do).
	pidMode int
	// exits is the exit status CRI reported for each container of the
	// pod, the sandbox's included, once it has stopped.
	exits map[string]int
}

// runPod runs a pod sandbox with handler h below the run's cgroup parent,
// on the CNI bridge, with its pid namespace mode.
func runPod(t *testing.T, h handler, name string, pidMode int) *pod {
	t.Helper()
	name = fmt.Sprintf("%s-%s-%d", h.name, name, os.Getpid())
	logs := filepath.Join(suite.dir, "logs", name)
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "crier-cri", "uid": name + "-uid"},
		"hostname":      name,
		"log_directory": logs,
		"linux": map[string]any{
			"cgroup_parent": "/" + suite.cgroupParent,
			"security_context": map[string]any{
				"namespace_options": map[string]any{"pid": pidMode},
			},
		},
	}
	p := &pod{h: h, name: name, config: writeJSON(t, name+"-pod.json", cfg), exits: map[string]int{}, pidMode: pidMode}
	// CRI appends to a container log that exists: each run starts clean.
	os.RemoveAll(logs)
	p.id = ok(t, "runp", "--runtime", h.name, p.config)
	remember(p.id)
	var st struct {
		Status struct {
			State   string
			Network struct{ IP string }
		}
		Info struct{ RuntimeHandler string }
	}
	inspectJSON(t, &st, "inspectp", p.id)
	if st.Status.State != "SANDBOX_READY" || !strings.HasPrefix(st.Status.Network.IP, "10.88.213.") || st.Info.RuntimeHandler != h.name {
		t.Fatalf("pod %s: state %s, IP %q, handler %q; want SANDBOX_READY, an IP in %s, %s", p.id, st.Status.State, st.Status.Network.IP, st.Info.RuntimeHandler, subnet, h.name)
	}
	return p
}

// start creates and starts a busybox container running command in p.
func (p *pod) start(t *testing.T, name string, command ...string) string {
	t.Helper()
	cfg := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": busyboxImage},
		"command":  command,
		"log_path": name + ".log",
		"linux": map[string]any{
			"security_context": map[string]any{
				"namespace_options": map[string]any{"pid": p.pidMode},
			},
		},
	}
	id := ok(t, "create", p.id, writeJSON(t, p.name+"-"+name+".json", cfg), p.config)
	remember(id)
	ok(t, "start", id)
	return id
}

// containerStatus is what the tests read of `crictl inspect`.
type containerStatus struct {
	Status struct {
		State    string
		ExitCode int
		Reason   string
	}
	Info struct{ Pid int }
}

func inspect(t *testing.T, id string) containerStatus {
	t.Helper()
	var st containerStatus
	inspectJSON(t, &st, "inspect", id)
	return st
}

// waitExited waits until CRI reports the container exited, and records
// its exit code.
func (p *pod) waitExited(t *testing.T, id string) containerStatus {
	t.Helper()
	var st containerStatus
	waitFor(t, "container "+id+" to exit", func() bool {
		st = inspect(t, id)
		return st.Status.State == "CONTAINER_EXITED"
	})
	p.exits[id] = st.Status.ExitCode
	return st
}

func podScenarios(t *testing.T, p *pod) {
	t.Run("exit_3", func(t *testing.T) {
		id := p.start(t, "exit3", "sh", "-c", "echo bye; exit 3")
		st := p.waitExited(t, id)
		if st.Status.ExitCode != 3 || st.Status.Reason != "Error" {
			t.Errorf("exited container: exit code %d, reason %q; want 3, Error", st.Status.ExitCode, st.Status.Reason)
		}
		if logs := ok(t, "logs", id); logs != "bye" {
			t.Errorf("crictl logs: %q, want %q", logs, "bye")
		}
	})
	long := p.start(t, "long", "sleep", "100000")
	t.Run("pid_1", func(t *testing.T) { checkPid1(t, long) })
	t.Run("exec_sync", func(t *testing.T) {
		r := crictl(t, "", "exec", "-s", long, "sh", "-c", "echo out0; exit 0")
		if r.code != 0 || !strings.Contains(r.stdout, "out0") {
			t.Errorf("exec -s of exit 0: %v", r)
		}
		// crictl exits 1 for any status but 0, and names the status.
		r = crictl(t, "", "exec", "-s", long, "sh", "-c", "echo out5; exit 5")
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "exited with 5") {
			t.Errorf("exec -s of exit 5: %v; want exit 1 and \"exited with 5\"", r)
		}
	})
	t.Run("exec_streaming", func(t *testing.T) {
		r := crictl(t, "hello\n", "exec", "-i", long, "sh", "-c", "read x; echo got:$x; echo oops >&2")
		if r.code != 0 || !strings.Contains(r.stdout, "got:hello") || !strings.Contains(r.stderr, "oops") {
			t.Errorf("streaming exec with stdin: %v", r)
		}
		r = crictl(t, "", "exec", long, "sh", "-c", "exit 7")
		if r.code == 0 || !strings.Contains(r.stderr, "exit code 7") {
			t.Errorf("streaming exec of exit 7: %v; want a failure naming exit code 7", r)
		}
	})
	t.Run("exec_tty", func(t *testing.T) {
		r := crictlTTY(t, "exec", "-it", long, "sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty")
		if r.code != 0 || !strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "stdin-is-a-tty") {
			t.Errorf("exec -it: %v; want /dev/pts/N and a terminal on stdin", r)
		}
	})
	t.Run("stats", func(t *testing.T) { checkStats(t, p) })
	t.Run("update_cpu_shares", func(t *testing.T) {
		ok(t, "update", "--cpu-share", "512", long)
		dir := cgroupDir(t, inspect(t, long).Info.Pid, "cpu")
		if got := readTrim(t, filepath.Join(dir, "cpu.shares")); got != "512" {
			t.Errorf("%s/cpu.shares after update: %s, want 512", dir, got)
		}
	})
	t.Run("stop_timeout", func(t *testing.T) {
		// sleep, pid 1 of its namespace, has no handler for SIGTERM: the
		// kernel ignores it, and stop kills after the timeout.
		begin := time.Now()
		ok(t, "stop", "--timeout", "2", long)
		elapsed := time.Since(begin)
		st := p.waitExited(t, long)
		if st.Status.ExitCode != 137 || elapsed < 2*time.Second {
			t.Errorf("stop -t 2: exit code %d after %v; want 137 after 2s at least", st.Status.ExitCode, elapsed)
		}
	})
}

// checkPid1 checks that the container's process, as CRI reports it, is
// pid 1 of its own pid namespace, that it is what the container runs, and
// that its parent is the supervisor, containerd's shim.
func checkPid1(t *testing.T, id string) {
	pid := inspect(t, id).Info.Pid
	status := readTrim(t, fmt.Sprintf("/proc/%d/status", pid))
	var nspid []string
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "NSpid:") {
			nspid = strings.Fields(line)[1:]
		}
	}
	if len(nspid) != 2 || nspid[1] != "1" {
		t.Errorf("process %d: NSpid %v, want [%d 1]", pid, nspid, pid)
	}
	if out := ok(t, "exec", "-s", id, "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "sleep\x00100000") {
		t.Errorf("pid 1 in the container runs %q, want sleep 100000", out)
	}
	stat := readTrim(t, fmt.Sprintf("/proc/%d/stat", pid))
	ppid, _ := strconv.Atoi(strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])[1])
	if comm := readTrim(t, fmt.Sprintf("/proc/%d/comm", ppid)); comm != "containerd-shim" {
		t.Errorf("the parent of %d is %d (%s), want containerd-shim", pid, ppid, comm)
	}
}

// checkStats fills 16 MiB of the pod's /dev/shm from a container (the
// pages are charged to its memory cgroup) and checks that stats and
// statsp report them, so that they come from the container's cgroup.
func checkStats(t *testing.T, p *pod) {
	id := p.start(t, "mem", "sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; touch /tmp/filled; exec sleep 100000")
	waitFor(t, "the container to fill its memory", func() bool {
		return crictl(t, "", "exec", "-s", id, "test", "-e", "/tmp/filled").code == 0
	})
	const want = 16 << 20
	dir := cgroupDir(t, inspect(t, id).Info.Pid, "memory")
	if !strings.HasSuffix(dir, "/"+suite.cgroupParent+"/"+id) {
		t.Errorf("the container's memory cgroup is %s, want %s/%s below the hierarchy", dir, suite.cgroupParent, id)
	}
	usage, _ := strconv.ParseUint(readTrim(t, filepath.Join(dir, "memory.usage_in_bytes")), 10, 64)
	if usage < want {
		t.Errorf("%s/memory.usage_in_bytes = %d, want %d at least", dir, usage, want)
	}
	var stats struct{ Stats []containerStats }
	inspectJSON(t, &stats, "stats", "--id", id)
	if len(stats.Stats) != 1 || stats.Stats[0].Attributes.ID != id {
		t.Fatalf("crictl stats --id %s: %+v", id, stats)
	}
	if ws := stats.Stats[0].Memory.WorkingSetBytes.Value; ws < want || ws > usage+want {
		t.Errorf("crictl stats: working set %d; want %d to %d (the cgroup's usage is %d)", ws, want, usage+want, usage)
	}
	if cpu := stats.Stats[0].CPU.UsageCoreNanoSeconds.Value; cpu == 0 {
		t.Errorf("crictl stats: no CPU time used: %+v", stats.Stats[0])
	}
	var podStats struct {
		Stats []struct {
			Attributes struct{ ID string }
			Linux      struct{ Containers []containerStats }
		}
	}
	inspectJSON(t, &podStats, "statsp", "--id", p.id)
	if len(podStats.Stats) != 1 || podStats.Stats[0].Attributes.ID != p.id {
		t.Fatalf("crictl statsp --id %s: %+v", p.id, podStats)
	}
	found := false
	for _, c := range podStats.Stats[0].Linux.Containers {
		if c.Attributes.ID == id {
			found = true
			if ws := c.Memory.WorkingSetBytes.Value; ws < want {
				t.Errorf("crictl statsp: the container's working set is %d, want %d at least", ws, want)
			}
		}
	}
	if !found {
		t.Errorf("crictl statsp: no stats of container %s: %+v", id, podStats)
	}
}

// containerStats is a container's entry in crictl stats and statsp.
type containerStats struct {
	Attributes struct{ ID string }
	CPU        struct{ UsageCoreNanoSeconds uintValue }
	Memory     struct{ WorkingSetBytes uintValue }
}

// uintValue is a CRI UInt64Value; JSON gives it as a string.
type uintValue struct {
	Value uint64 `json:"value,string"`
}

// sharedPIDPod runs a pod whose containers share its pid namespace: the
// container sees the pause process as pid 1, and itself beside it. It
// returns the pod, removed, or nil if it could not run it.
func sharedPIDPod(t *testing.T, h handler) (shared *pod) {
	t.Run("shared_pid_namespace", func(t *testing.T) {
		p := runPod(t, h, "shared", nsPod)
		shared = p
		defer removePod(t, p)
		id := p.start(t, "sleeper", "sleep", "100000")
		if out := ok(t, "exec", "-s", id, "cat", "/proc/1/cmdline"); strings.TrimRight(out, "\x00") != "/pause" {
			t.Errorf("pid 1 in a shared pid namespace runs %q, want the pause process", out)
		}
		ps := ok(t, "exec", "-s", id, "ps", "-o", "pid,args")
		if !strings.Contains(ps, "/pause") || !strings.Contains(ps, "sleep 100000") {
			t.Errorf("ps in a shared pid namespace shows:\n%s\nwant the pause process and the container's", ps)
		}
		if pid := inspect(t, id).Info.Pid; nsOf(t, pid, "pid") != nsOf(t, podPid(t, p.id), "pid") {
			t.Errorf("the container's pid namespace is not the pod's")
		}
	})
	return shared
}

// removePod stops and removes p, and checks that CRI and the runtime have
// forgotten it and its containers.
func removePod(t *testing.T, p *pod) {
	t.Run("stop_remove_pod", func(t *testing.T) {
		var ids []string
		for _, id := range strings.Fields(ok(t, "ps", "-a", "-q", "--pod", p.id)) {
			ids = append(ids, id)
			if _, seen := p.exits[id]; !seen && inspect(t, id).Status.State == "CONTAINER_RUNNING" {
				p.exits[id] = 137 // stopp kills it
			}
		}
		ok(t, "stopp", p.id)
		p.exits[p.id] = 137 // the pause process, killed
		for _, id := range ids {
			if st := inspect(t, id); st.Status.State != "CONTAINER_EXITED" || st.Status.ExitCode != p.exits[id] {
				t.Errorf("after stopp, container %s is %s with exit code %d, want CONTAINER_EXITED, %d", id, st.Status.State, st.Status.ExitCode, p.exits[id])
			}
		}
		ok(t, "rmp", p.id)
		if pods := ok(t, "pods", "-q"); strings.Contains(pods, p.id) {
			t.Errorf("crictl pods still lists %s", p.id)
		}
		for _, id := range append(ids, p.id) {
			if _, err := os.Stat(filepath.Join(p.h.stateRoot(), id)); err == nil {
				t.Errorf("%s's state of %s is still there after rmp", p.h.name, id)
			}
		}
	})
}

// podPid is the host pid of the pod's pause process.
func podPid(t *testing.T, id string) int {
	t.Helper()
	var st struct{ Info struct{ Pid int } }
	inspectJSON(t, &st, "inspectp", id)
	return st.Info.Pid
}

func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(suite.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cgroupDir is the directory of pid's cgroup in a v1 controller's
// hierarchy.
func cgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	for _, line := range strings.Split(readTrim(t, fmt.Sprintf("/proc/%d/cgroup", pid)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", f[1], f[2])
			}
		}
	}
	t.Fatalf("/proc/%d/cgroup: no %s hierarchy", pid, controller)
	return ""
}

func nsOf(t *testing.T, pid int, ns string) string {
	t.Helper()
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
