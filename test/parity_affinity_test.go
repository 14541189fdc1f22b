package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests the CPU affinity of a container's processes (runc's
// cpu_affinity.bats): whatever mask crier's caller has (`taskset -c 0
// crier run`), the init and exec'd processes run on every CPU, or on
// their cgroup's cpuset; an exec's process.execCPUAffinity gives the
// mask the exec stage starts with (initial) and the one the process
// execs with (final).

// pinned makes cmd run under `taskset -c 0`.
func pinned(t *testing.T) func(*exec.Cmd) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("no taskset")
	}
	return func(c *exec.Cmd) {
		c.Args = append([]string{"taskset", "-c", "0"}, c.Args...)
		c.Path = taskset
	}
}

// ownCPUs is the test's own Cpus_allowed_list (runc's INITIAL_CPU_MASK).
// The tests need two CPUs at least.
func ownCPUs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			v = strings.TrimSpace(v)
			if v == "0" || !strings.HasPrefix(v, "0") {
				t.Skipf("the test's CPUs are %s: want 0 and at least one more", v)
			}
			return v
		}
	}
	t.Fatal("no Cpus_allowed_list in /proc/self/status")
	return ""
}

const cpusScript = `grep Cpus_allowed_list: /proc/self/status | sed 's/Cpus_allowed_list:[[:space:]]*/cpus=/'`

// cpuset limits the container to cpus (with the caller's CPU 0 or not).
func cpuset(cpus string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: cpus, Mems: "0"}
	}
}

// TestParityAffinityRunReset: a foreground run from a caller pinned to
// CPU 0 gives the container every CPU, or its cpuset's.
func TestParityAffinityRunReset(t *testing.T) {
	all := ownCPUs(t)
	for _, tc := range []struct {
		name string
		edit func(*specs.Spec)
		want string
	}{
		{"all", nil, all},
		{"cpuset 0-1", cpuset("0-1"), "0-1"},
		{"cpuset 1", cpuset("1"), "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.bundle([]string{"sh", "-c", cpusScript}, tc.edit)
			r := e.cliStart(pinned(t), "run", "--bundle", b, e.id()).waitOK()
			wantKV(t, keyValues(r.stdout), "cpus", tc.want)
		})
	}
}

// TestParityAffinityExecReset: so does an exec from a pinned caller.
func TestParityAffinityExecReset(t *testing.T) {
	all := ownCPUs(t)
	for _, tc := range []struct {
		name string
		edit func(*specs.Spec)
		want string
	}{
		{"all", nil, all},
		{"cpuset 0-1", cpuset("0-1"), "0-1"},
		{"cpuset 1", cpuset("1"), "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sleep", "100"}, tc.edit)
			e.cliStart(pinned(t), "run", "-d", "--bundle", b, id).waitOK()
			r := e.cliStart(pinned(t), "exec", id, "sh", "-c", cpusScript).waitOK()
			wantKV(t, keyValues(r.stdout), "cpus", tc.want)
			e.cliOK("delete", "--force", id)
		})
	}
}

// TestParityExecCPUAffinity: process.execCPUAffinity, from --process or
// from the config's process: final is the process's mask; initial alone
// stays; --debug logs the initial mask in the words runc's test reads.
func TestParityExecCPUAffinity(t *testing.T) {
	all := ownCPUs(t)
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0", Final: "1"}
	})
	e.cliOK("run", "-d", "--bundle", b, id)
	if out := e.cliOK("exec", id, "sh", "-c", cpusScript).stdout; keyValues(out)["cpus"] != "1" {
		t.Errorf("exec with the config's execCPUAffinity final 1: %q", out)
	}
	for _, tc := range []struct {
		initial, final, want, mask string
	}{
		{"1", "", "1", "0x2"},
		{"0-1", "1", "1", "0x3"},
		{"1", "0", "0", "0x2"},
		{"0,1", "0,1", all, "0x3"},
	} {
		proc := filepath.Join(e.dir, "process.json")
		p := specs.Process{
			Cwd:             "/",
			Args:            []string{"sh", "-c", cpusScript},
			Env:             []string{"PATH=/bin"},
			ExecCPUAffinity: &specs.CPUAffinity{Initial: tc.initial, Final: tc.final},
		}
		writeJSONFile(t, proc, p)
		r := e.cliOK("--debug", "exec", "--process", proc, id)
		if got := keyValues(r.stdout)["cpus"]; got != tc.want {
			t.Errorf("initial %q final %q: cpus %q, want %q", tc.initial, tc.final, got, tc.want)
		}
		if !strings.Contains(r.stderr, "nsexec") || !strings.Contains(r.stderr, ": affinity: "+tc.mask) {
			t.Errorf("initial %q: --debug printed %q, want a line with nsexec and affinity: %s", tc.initial, r.stderr, tc.mask)
		}
	}
	for _, bad := range []string{"x", "3-1", "99999"} {
		proc := filepath.Join(e.dir, "bad.json")
		writeJSONFile(t, proc, specs.Process{Cwd: "/", Args: []string{"true"}, ExecCPUAffinity: &specs.CPUAffinity{Initial: bad}})
		wantCLIError(t, "execCPUAffinity.initial "+bad, e.cliRun("exec", "--process", proc, id), "execCPUAffinity.initial")
	}
	e.cliOK("delete", "--force", id)
}

// writeJSONFile writes v to path as JSON.
func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAffinityHooksInit: the hooks the init runs (createContainer) get
// every CPU too, whether crier's caller was pinned or create kept the
// init off its own CPU while both started (prefork's spread, on an idle
// machine).
func TestAffinityHooksInit(t *testing.T) {
	all := ownCPUs(t)
	for _, tc := range []struct {
		name   string
		pinned bool
	}{
		{"caller pinned", true},
		{"caller free", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			hd := e.hostDir("hooks")
			b := e.bundle([]string{"true"}, nil)
			sh := filepath.Join(b, "rootfs", "bin", "sh")
			editBundle(t, b, func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{
					Path: sh, Args: []string{"sh", "-c", cpusScript + " > " + filepath.Join(hd, "createContainer")},
				}}}
			})
			id := e.id()
			if tc.pinned {
				e.cliStart(pinned(t), "create", "--bundle", b, id).waitOK()
			} else {
				e.create(id, b)
			}
			e.cliOK("delete", "--force", id)
			got, err := os.ReadFile(filepath.Join(hd, "createContainer"))
			if err != nil {
				t.Fatalf("the createContainer hook did not run: %v", err)
			}
			wantKV(t, keyValues(string(got)), "cpus", all)
		})
	}
}
