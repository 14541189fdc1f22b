package test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests the cgroup behaviours changed to match runc's suite
// (issue 11): no cgroup namespace in `crier spec` on a v1 or hybrid host,
// and the container's own cgroups bound into its /sys/fs/cgroup there
// (cgroups.bats "runc exec (cgroup v1+hybrid joins correct cgroup)",
// delete.bats "runc delete --force in cgroupv1 with subcgroups"); a
// cgroup with processes refused at create (cgroups.bats "runc run/create
// should error for a non-empty cgroup"); device rules as runc reads them
// (dev.bats "device cgroup deny", update.bats "update devices [minimal
// transition rules]"); CFS and RT periods shortened with their quota
// (update.bats); exec --cgroup (exec.bats, pidfd-socket.bats).

// needV1 skips on a host whose cgroups are v2 only.
func needV1(t *testing.T) *cgroupHost {
	t.Helper()
	h := cgroupHostInfo(t)
	if h.v2 {
		t.Skip("a cgroup v2 host")
	}
	return h
}

// writableCgroupMount drops "ro" from the config's cgroup mount, as the
// suite's set_cgroup_mount_writable does.
func writableCgroupMount(s *specs.Spec) {
	for i, m := range s.Mounts {
		if m.Type == "cgroup" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
}

// TestParityCgroupV1NoNamespace: on a v1 or hybrid host `crier spec` has
// no cgroup namespace, as runc's. An exec'd process is then in the init's
// cgroups, which /proc/self/cgroup shows with the host's paths (the v2
// one of a hybrid host included); the container's /sys/fs/cgroup/memory
// is its own cgroup, so a sub-cgroup it makes there is below its own on
// the host, and delete --force removes it with the container.
func TestParityCgroupV1NoNamespace(t *testing.T) {
	h := needV1(t)
	e := newEnv(t)
	if s := e.specFor(t.TempDir()); slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace }) {
		t.Errorf("crier spec on a v1/hybrid host has a cgroup namespace; runc's has none")
	}
	id := e.id()
	cgroupsPath := "/" + id + "-cg"
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = cgroupsPath
		writableCgroupMount(s)
	})
	e.create(id, b)
	e.cliOK("start", id)
	initPid := e.state(id).Pid
	want := readFile(t, "/proc/"+strconv.Itoa(initPid)+"/cgroup")
	r := e.cliOK("exec", id, "cat", "/proc/self/cgroup")
	if got := strings.TrimSpace(r.stdout); got != want {
		t.Errorf("exec'd process's /proc/self/cgroup:\n%s\nwant the init's:\n%s", got, want)
	}
	for _, key := range []string{"memory", ""} {
		if !h.has(key) {
			continue
		}
		line := "0::" + cgroupsPath
		if key != "" {
			line = ":" + key + ":" + cgroupsPath
		}
		if !strings.Contains(r.stdout, line) {
			t.Errorf("exec'd process's /proc/self/cgroup has no line with %q:\n%s", line, r.stdout)
		}
	}
	// The guard keeps an old crier, which mounted the whole hierarchy,
	// from making a cgroup at the host's root: the container's own
	// cgroup lists its init (pid 1).
	script := `grep -qx 1 /sys/fs/cgroup/memory/cgroup.procs || { echo not-own; exit 1; }
mkdir /sys/fs/cgroup/memory/foo
sleep 1000 </dev/null >/dev/null 2>&1 &
echo $! > /sys/fs/cgroup/memory/foo/cgroup.procs && echo moved`
	r = e.cliRun("exec", id, "sh", "-c", script)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "moved" {
		t.Fatalf("sub-cgroup in the container: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	foo := filepath.Join(h.dir("memory", cgroupsPath), "foo")
	if procs := readFile(t, filepath.Join(foo, "cgroup.procs")); procs == "" {
		t.Errorf("%s has no process", foo)
	}
	e.cliOK("delete", "--force", id)
	for key := range h.mounts {
		if dir := h.dir(key, cgroupsPath); cgFileExists(dir) {
			t.Errorf("%s left after delete --force", dir)
		}
	}
}

// runningInOwnCgroupsPath creates and starts a container that sleeps in
// a cgroupsPath of its own, for tests of another create given the same
// path: its ID, its bundle and the path.
func (e *env) runningInOwnCgroupsPath() (id, bundle, cgroupsPath string) {
	e.t.Helper()
	id = e.id()
	cgroupsPath = "/" + id + "-shared"
	bundle = e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) { s.Linux.CgroupsPath = cgroupsPath })
	e.create(id, bundle)
	e.cliOK("start", id)
	return id, bundle, cgroupsPath
}

// TestParityCgroupNotEmpty: run -d and create refuse a cgroupsPath whose
// cgroup has processes (another container's), in runc's words, and leave
// nothing; the container there runs on.
func TestParityCgroupNotEmpty(t *testing.T) {
	e := newEnv(t)
	id, b, _ := e.runningInOwnCgroupsPath()
	for _, cmd := range [][]string{{"run", "-d", "--bundle", b}, {"create", "--bundle", b}} {
		other := e.id()
		r := e.cliRun(append(cmd, other)...)
		if r.code == 0 {
			t.Errorf("%s in the cgroup of a running container succeeded", cmd[0])
		}
		wantErrorLine(t, cmd[0], r, "container's cgroup is not empty", "1 process(es) found")
		e.wantNoStateDir(other)
		if r := e.cliRun("state", other); r.code == 0 {
			t.Errorf("state %s succeeded after a refused %s", other, cmd[0])
		}
	}
	if st := e.state(id); st.Status != "running" {
		t.Errorf("the first container is %s, want running", st.Status)
	}
}

// TestParityDeviceRules: a linux.devices entry gets no device cgroup rule
// of its own, as in runc: with the config denying everything, /dev/kmsg is
// made but cannot be opened (EPERM from the cgroup), unless a rule allows
// it. An access is read as runc reads it, the set of r, w and m it names:
// "rwa" is "rw" (the kernel refused it before, failing create).
func TestParityDeviceRules(t *testing.T) {
	t.Parallel()
	script := `echo read=$( (exec 3</dev/kmsg && echo ok) 2>&1)
echo write=$( (exec 3>/dev/kmsg && echo ok) 2>&1)`
	one, eleven := int64(1), int64(11)
	kmsg := func(allow bool, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: "c", Major: &one, Minor: &eleven, Access: access}
	}
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  string
	}{
		{"no rule", nil, "Operation not permitted"},
		{"deny rwa", []specs.LinuxDeviceCgroup{kmsg(false, "rwa")}, "Operation not permitted"},
		{"allow rwa", []specs.LinuxDeviceCgroup{kmsg(true, "rwa")}, "ok"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			kv := e.runScript(script, func(s *specs.Spec) {
				s.Linux.Resources.Devices = append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, tc.rules...)
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11}}
				caps := s.Process.Capabilities
				caps.Bounding = append(caps.Bounding, "CAP_SYSLOG")
				caps.Effective = append(caps.Effective, "CAP_SYSLOG")
				caps.Permitted = append(caps.Permitted, "CAP_SYSLOG")
			})
			for _, k := range []string{"read", "write"} {
				if !strings.Contains(kv[k], tc.want) {
					t.Errorf("%s of /dev/kmsg: %q, want %q", k, kv[k], tc.want)
				}
			}
		})
	}
}

// TestParityUpdateShorterPeriod: an update that shortens the CFS period
// and sets a quota that fits it works under a parent with a CPU limit,
// though the new period with the old quota would not (update.bats "update
// cpu period in a pod cgroup with pod limit set"); and so does one that
// shortens the real-time period below the old runtime (update.bats
// "update rt period and runtime"). As runc, the period is written again
// after the quota (runtime) when the kernel refuses it first.
func TestParityUpdateShorterPeriod(t *testing.T) {
	h := needV1(t)
	if !h.has("cpu") {
		t.Skip("no v1 cpu controller")
	}
	e := newEnv(t)
	id := e.id()
	pod := "/" + id + "-pod"
	podDir := h.dir("cpu", pod)
	if err := os.Mkdir(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cliRun("delete", "--force", id)
		for key := range h.mounts {
			os.Remove(h.dir(key, pod))
		}
	})
	if err := os.WriteFile(filepath.Join(podDir, "cpu.cfs_quota_us"), []byte("50000"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := rtGroupScheduling()
	if rt {
		// As the suite does: the pod gets the root's real-time budget.
		for _, f := range []string{"cpu.rt_period_us", "cpu.rt_runtime_us"} {
			if err := os.WriteFile(filepath.Join(podDir, f), []byte(readFile(t, filepath.Join(hostCPUCgroup, f))), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = pod + "/ctr"
		// 30%: the old quota over the new period would be 300%.
		quota := int64(30000)
		s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota}
		if rt {
			period, runtime := uint64(900001), int64(600001)
			s.Linux.Resources.CPU.RealtimePeriod, s.Linux.Resources.CPU.RealtimeRuntime = &period, &runtime
		}
	})
	e.create(id, b)
	e.cliOK("start", id)
	dir := h.dir("cpu", pod+"/ctr")
	if r := e.cliRun("update", "--cpu-quota", "60000", id); r.code == 0 {
		t.Errorf("update --cpu-quota 60000 under a 50%% pod succeeded")
	}
	e.cliOK("update", "--cpu-period", "10000", "--cpu-quota", "3000", id)
	for f, want := range map[string]string{"cpu.cfs_period_us": "10000", "cpu.cfs_quota_us": "3000"} {
		if got := readFile(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
	if !rt {
		t.Log("no RT group scheduling here: the real-time part is not tested")
		return
	}
	e.cliOK("update", "--cpu-rt-period", "10000", "--cpu-rt-runtime", "3000", id)
	for f, want := range map[string]string{"cpu.rt_period_us": "10000", "cpu.rt_runtime_us": "3000"} {
		if got := readFile(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
}

// TestParityExecSubCgroup: exec --cgroup runs the process in sub-cgroups
// of the container's, per controller ("memory:sub", "cpu,cpuacct:sub") or
// one path for every hierarchy, with the shim forking the exec stage and
// with crier exec forking it itself (supervisor mode). As runc it refuses
// a path that leaves the container's cgroup, lexically or not ("..", a
// sibling sharing the name's prefix), a sub-cgroup that does not exist and
// a controller the host lacks, and runs nothing then. The sub-cgroups go
// with the container at delete.
func TestParityExecSubCgroup(t *testing.T) {
	h := needV1(t)
	for _, mode := range []string{"off", "on"} {
		t.Run("supervisor_"+mode, func(t *testing.T) {
			e := newEnv(t)
			id := e.id()
			cgroupsPath := "/" + id + "-exec"
			b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) { s.Linux.CgroupsPath = cgroupsPath })
			e.create(id, b)
			e.cliOK("start", id)
			sibling := h.dir("cpu", cgroupsPath) + "-sibling"
			if err := os.Mkdir(sibling, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(sibling) })
			exec := func(args ...string) cliResult {
				return e.cliRun(append([]string{"--supervisor", mode, "exec"}, args...)...)
			}
			for _, tc := range []struct {
				arg  string
				want []string
			}{
				{"..", []string{"bad sub cgroup path"}},
				{"../" + filepath.Base(sibling), []string{"bad sub cgroup path"}},
				{"cpu:../" + filepath.Base(sibling), []string{"bad sub cgroup path"}},
				{"nonexistent", []string{" adding pid ", "no such file or directory"}},
				{"cpu:nonexistent", []string{" adding pid ", "no such file or directory"}},
				{"whaaat:/", []string{"unknown controller "}},
			} {
				r := exec("--cgroup", tc.arg, id, "touch", "/ran")
				if r.code == 0 {
					t.Errorf("exec --cgroup %s succeeded", tc.arg)
				}
				wantErrorLine(t, "exec --cgroup "+tc.arg, r, tc.want...)
			}
			if r := exec(id, "test", "-e", "/ran"); r.code == 0 {
				t.Errorf("a refused exec --cgroup ran its process")
			}
			// The container's own cgroups, implicitly and explicitly.
			for _, args := range [][]string{{id}, {"--cgroup", "/", id}} {
				r := exec(append(args, "cat", "/proc/self/cgroup")...)
				for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					if !strings.HasSuffix(line, ":"+cgroupsPath) {
						t.Errorf("exec %v: %q is not in the container's cgroup", args, line)
					}
				}
			}
			// Sub-cgroups per controller; cpu may be mounted with cpuacct.
			for _, sub := range []string{"memory/submem", "cpu/subcpu", "cpuacct/subcpu"} {
				key, name, _ := strings.Cut(sub, "/")
				if err := os.MkdirAll(filepath.Join(h.dir(key, cgroupsPath), name), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := exec("--cgroup", "memory:submem", "--cgroup", "cpu,cpuacct:subcpu", id, "cat", "/proc/self/cgroup")
			if r.code != 0 {
				t.Fatalf("exec --cgroup memory:submem --cgroup cpu,cpuacct:subcpu: exit %d: %s", r.code, r.stderr)
			}
			for _, ctl := range []string{"memory", "cpu", "cpuacct"} {
				want := "/subcpu"
				if ctl == "memory" {
					want = "/submem"
				}
				if !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool {
					f := strings.SplitN(l, ":", 3)
					return len(f) == 3 && slices.Contains(strings.Split(f[1], ","), ctl) && f[2] == cgroupsPath+want
				}) {
					t.Errorf("exec --cgroup: /proc/self/cgroup has no %s line for %s%s:\n%s", ctl, cgroupsPath, want, r.stdout)
				}
			}
			if !strings.Contains(r.stdout, ":pids:"+cgroupsPath+"\n") && h.has("pids") {
				t.Errorf("exec --cgroup: the pids cgroup is not the container's:\n%s", r.stdout)
			}
			// One path for every hierarchy.
			for key := range h.mounts {
				all := filepath.Join(h.dir(key, cgroupsPath), "all")
				if err := os.MkdirAll(all, 0o755); err != nil {
					t.Fatal(err)
				}
				if key != "cpuset" {
					continue
				}
				// A new v1 cpuset has no CPUs or memory nodes: it
				// takes no process until they are set.
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					v := readFile(t, filepath.Join(filepath.Dir(all), f))
					if err := os.WriteFile(filepath.Join(all, f), []byte(v), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r = exec("--cgroup", "all", id, "cat", "/proc/self/cgroup")
			if r.code != 0 {
				t.Errorf("exec --cgroup all: exit %d: %s", r.code, r.stderr)
			}
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				if !strings.HasSuffix(line, ":"+cgroupsPath+"/all") {
					t.Errorf("exec --cgroup all: %q", line)
				}
			}
			e.cliOK("delete", "--force", id)
			for key := range h.mounts {
				if dir := h.dir(key, cgroupsPath); cgFileExists(dir) {
					t.Errorf("%s left after delete --force", dir)
				}
			}
		})
	}
}
