package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// On a host with cgroup v1 controllers, create forks init before it makes
// the container's cgroups, and moves init into them while its Go runtime
// starts (container.ForkAhead, Container.placeStaged): init must be in
// every one of them before it does anything for the container, and make
// its cgroup namespace only then. A failure to make or enter the cgroups after init is forked kills
// and reaps it and leaves nothing.

// hostHasV1Controllers reports whether a v1 hierarchy with a controller is
// mounted, where init is forked before its cgroups are made.
func hostHasV1Controllers() bool {
	for _, ctl := range []string{"cpu", "memory", "pids", "devices", "freezer"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, "tasks")); err == nil {
			return true
		}
	}
	return false
}

// cgroupLines returns the hierarchy:path lines of /proc/PID/cgroup (or of
// a copy of it in s), without the hierarchy IDs.
func cgroupLines(s string) []string {
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if _, rest, ok := strings.Cut(line, ":"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestInitInCgroupsBeforeConfig: once create has returned, init is in the
// container's cgroup in every hierarchy (the host's view of its
// /proc/PID/cgroup), and with a cgroup namespace the container sees each
// of its cgroups as a root: init made the namespace once it was in them,
// also in a new user namespace (where the clone used to make it) and as
// stage two of a joined one. Without a cgroup namespace the container
// sees the host's paths.
func TestInitInCgroupsBeforeConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		cgroupns      bool
		newUser, join bool
	}{
		{name: "no cgroupns"},
		{name: "cgroupns", cgroupns: true},
		{name: "userns+cgroupns", cgroupns: true, newUser: true},
		{name: "joined userns+cgroupns", cgroupns: true, join: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var userns string
			if tc.join {
				userns = fmt.Sprintf("/proc/%d/ns/user", joinHolder(t, e))
			}
			b := e.bundle([]string{"cat", "/proc/self/cgroup"}, func(s *specs.Spec) {
				// crier spec has a cgroup namespace only on a v2 host,
				// as runc's: add or drop it.
				dropNamespace(s, specs.CgroupNamespace)
				if tc.cgroupns {
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
				}
				if tc.newUser {
					mapUser(s)
				}
				if tc.join {
					sfJoin(s, specs.UserNamespace, userns)
				}
			})
			if tc.newUser || tc.join {
				chownRootfs(t, b)
			}
			id := e.id()
			outPath := e.create(id, b)
			suffix := "/" + id
			host := cgroupLines(readFile(t, fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid)))
			for _, line := range host {
				if !strings.HasSuffix(line, suffix) {
					t.Errorf("init before start, host view: %q, want it in %s", line, suffix)
				}
			}
			e.cliOK("start", id)
			e.waitStopped(id)
			e.cliOK("delete", id)
			inside := cgroupLines(readFile(t, outPath))
			if len(inside) != len(host) {
				t.Errorf("the container sees %d hierarchies, the host %d: %q", len(inside), len(host), inside)
			}
			for _, line := range inside {
				_, p, _ := strings.Cut(line, ":")
				if tc.cgroupns && p != "/" {
					t.Errorf("inside a cgroup namespace: %q, want the root /", line)
				}
				if !tc.cgroupns && !strings.HasSuffix(p, suffix) {
					t.Errorf("without a cgroup namespace: %q, want the host path in %s", line, suffix)
				}
			}
		})
	}
}

// processesWithCwd lists the live processes whose working directory is
// dir or below: init's is the bundle until it enters the rootfs.
func processesWithCwd(dir string) []string {
	var found []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || procState(pid) == 'Z' {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", p.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, dir) {
			found = append(found, fmt.Sprintf("process %d (cwd %s)", pid, cwd))
		}
	}
	return found
}

// wantNoCgroupNamed checks that no hierarchy has a directory named name
// at its top.
func wantNoCgroupNamed(t *testing.T, name string) {
	t.Helper()
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name)); len(dirs) > 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", name)); len(dirs) > 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
}

// TestInitCgroupFailsAfterFork: the container's cgroups cannot be made, or
// init cannot be moved into them, after init is forked. Create fails with
// one line naming the cgroup file, with and without a supervisor (init is
// then the supervisor's child, and the shim only waits for its death), and
// leaves no init, no state and no cgroup.
//
// A cgroupsPath through "tasks", a file in every v1 hierarchy but not in
// v2, cannot be made in v1 alone. And a real-time process cannot join a
// v1 cpu cgroup that has no real-time budget (RT group scheduling):
// create run under SCHED_FIFO forks init with that policy, and its move
// into the new cpu cgroup fails, whether init moves itself (its main
// thread, by the "tasks" file) or is moved by its pid.
func TestInitCgroupFailsAfterFork(t *testing.T) {
	t.Parallel()
	if !hostHasV1Controllers() {
		t.Skip("no cgroup v1 controllers: init is born in its cgroup")
	}
	_, rtErr := os.Stat("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")
	for _, tc := range []struct {
		name       string
		supervisor string
		rt, userns bool
		want       []string
	}{
		{name: "mkdir", supervisor: "off", want: []string{"tasks/leaf", "not a directory"}},
		{name: "mkdir supervised", supervisor: "on", want: []string{"tasks/leaf", "not a directory"}},
		// Init moves itself into v1 cgroups, by their "tasks" files.
		{name: "move", supervisor: "off", rt: true, want: []string{"move init into /sys/fs/cgroup/cpu/", "tasks", "invalid argument"}},
		{name: "move supervised", supervisor: "on", rt: true, want: []string{"move init into /sys/fs/cgroup/cpu/", "tasks", "invalid argument"}},
		// An init in a user namespace cannot open them: it is moved by
		// its pid.
		{name: "move userns", supervisor: "off", rt: true, userns: true, want: []string{"/cpu/", "cgroup.procs", "invalid argument"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.rt && rtErr != nil {
				t.Skip("no v1 real-time group scheduling (cpu.rt_runtime_us)")
			}
			e := newEnv(t)
			id := e.id()
			top := id + "-cg"
			b := e.bundle([]string{"true"}, func(s *specs.Spec) {
				if !tc.rt {
					s.Linux.CgroupsPath = "/" + top + "/tasks/leaf"
				}
				if tc.userns {
					mapUser(s)
				}
			})
			if tc.userns {
				chownRootfs(t, b)
			}
			cmd := e.cliCommand("--supervisor", tc.supervisor, "create", "--bundle", b, id)
			if tc.rt {
				chrt, err := exec.LookPath("chrt")
				if err != nil {
					t.Skip("no chrt")
				}
				cmd.Path, cmd.Args = chrt, append([]string{"chrt", "-f", "1"}, cmd.Args...)
			}
			out, err := cmd.CombinedOutput()
			if exitCode(err) != 1 {
				t.Errorf("create: %v, want exit 1; output %q", err, out)
			}
			wantOneLine(t, "create", string(out), tc.want...)
			if left := processesWithCwd(b); len(left) > 0 {
				t.Errorf("init left after the failed create: %v", left)
			}
			e.assertGone(id)
			wantNoCgroupNamed(t, top)
		})
	}
}

// TestInitMovesItselfIntoCgroups: an init forked before its cgroups were
// made moves its main thread into its v1 cgroups itself, by writing 0 to
// each "tasks" file (cgroup.MoveSelf). That skips the kernel's
// threadgroup lock a move by pid takes, whose first write-lock after a
// quiet spell waits for an RCU grace period: 5-25 ms of create's time
// here. So in the created state each v1 cgroup of the container holds
// init's main thread, and only it (the Go runtime's other threads stayed
// where create ran, and the exec ends them), while /proc/PID/cgroup and
// cgroup.procs show init in them; once started, the container's process
// is there alone. An init started ahead does it, and so does one forked
// once the config is known; one in a user namespace cannot open those
// files, and is moved by pid, all its threads.
func TestInitMovesItselfIntoCgroups(t *testing.T) {
	t.Parallel()
	if !hostHasV1Controllers() {
		t.Skip("no cgroup v1 controllers: init is born in its cgroup")
	}
	for _, tc := range []struct {
		name   string
		edit   func(*specs.Spec)
		extra  int // descriptors passed with --preserve-fds, which no init started ahead takes
		byPid  bool
		userns bool
	}{
		{name: "started ahead"},
		{name: "forked later", extra: 1},
		{name: "user namespace", edit: mapUser, byPid: true, userns: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bundle([]string{"sleep", "1000"}, tc.edit)
			if tc.userns {
				chownRootfs(t, b)
			}
			id := e.id()
			args := []string{"create", "--bundle", b, id}
			if tc.extra > 0 {
				args = []string{"create", "--bundle", b, "--preserve-fds", strconv.Itoa(tc.extra), id}
			}
			r := e.cliStart(func(c *exec.Cmd) { passDevNull(t, c, tc.extra) }, args...).wait()
			if r.code != 0 {
				t.Fatalf("create: exit %d", r.code)
			}
			defer e.cliOK("delete", "--force", id)
			pid := e.state(id).Pid
			entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) < 2 {
				t.Fatalf("init has %d thread: nothing tells a move of its main thread from one of the process", len(entries))
			}
			var threads []string
			for _, d := range entries {
				threads = append(threads, d.Name())
			}
			want := []string{strconv.Itoa(pid)}
			if tc.byPid {
				want = threads
			}
			checked := 0
			for _, ctl := range []string{"pids", "memory", "freezer", "cpu", "devices", "blkio"} {
				dir := filepath.Join("/sys/fs/cgroup", ctl, id)
				if _, err := os.Stat(dir); err != nil {
					continue
				}
				checked++
				got := strings.Fields(readFile(t, filepath.Join(dir, "tasks")))
				slices.SortFunc(got, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
				if !slices.Equal(got, want) {
					t.Errorf("%s tasks while created: %q, want %q (init %d, its threads %q)", ctl, got, want, pid, threads)
				}
				if got := strings.Fields(readFile(t, filepath.Join(dir, "cgroup.procs"))); !slices.Equal(got, []string{strconv.Itoa(pid)}) {
					t.Errorf("%s cgroup.procs while created: %q, want %d", ctl, got, pid)
				}
			}
			if checked == 0 {
				t.Fatal("the container has none of the v1 cgroups looked for")
			}
			for _, line := range cgroupLines(readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid))) {
				if !strings.HasSuffix(line, "/"+id) {
					t.Errorf("init before start: %q, want it in /%s", line, id)
				}
			}
			e.cliOK("start", id)
			if got := strings.Fields(readFile(t, filepath.Join("/sys/fs/cgroup/pids", id, "tasks"))); !slices.Equal(got, []string{strconv.Itoa(pid)}) {
				t.Errorf("pids tasks once started: %q, want the container's process %d alone", got, pid)
			}
		})
	}
}
