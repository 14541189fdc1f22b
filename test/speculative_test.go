package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// crier's entry point starts the container's init before the config is
// read (internal/prefork, speculate.go): in new pid and mount namespaces,
// from a sealed copy of crier-shim. The shim adopts it for a container it
// fits, which then unshares the rest of its namespaces itself; any other
// it kills and reaps before it forks an init as before.

// TestSpeculativeInit: for each kind of container, `--debug create` says
// whether init was started ahead and adopted, as expected; the created
// container's init has exactly the namespaces its config asks for; and the
// shim has no child but that init (a speculative init it did not adopt is
// gone before create returns).
func TestSpeculativeInit(t *testing.T) {
	t.Parallel()
	if !hostHasV1Controllers() {
		t.Skip("on a cgroup v2 host no init is started ahead")
	}
	cases := []struct {
		name    string
		edit    func(*specs.Spec)
		flags   []string
		extra   int // descriptors passed with --preserve-fds
		adopted bool
	}{
		{name: "default", adopted: true},
		{name: "no network namespace", edit: func(s *specs.Spec) { dropNamespace(s, specs.NetworkNamespace) }, adopted: true},
		{name: "no uts or ipc namespace", edit: func(s *specs.Spec) {
			dropNamespace(s, specs.UTSNamespace)
			dropNamespace(s, specs.IPCNamespace)
			s.Hostname = ""
		}, adopted: true},
		{name: "cgroup namespace", edit: func(s *specs.Spec) {
			dropNamespace(s, specs.CgroupNamespace)
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}, adopted: true},
		{name: "host pid namespace", edit: func(s *specs.Spec) { dropNamespace(s, specs.PIDNamespace) }},
		{name: "joined uts namespace", edit: func(s *specs.Spec) {
			dropNamespace(s, specs.UTSNamespace)
			s.Hostname = ""
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: "/proc/" + strconv.Itoa(os.Getpid()) + "/ns/uts"})
		}},
		{name: "preserved descriptor", flags: []string{"--preserve-fds", "1"}, extra: 1},
		{name: "supervisor", flags: []string{"--supervisor", "on"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bundle([]string{"true"}, tc.edit)
			spec := readSpec(t, b)
			id := e.id()
			logPath := filepath.Join(e.dir, "create.log")
			logf, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			args := append(append([]string{"--debug", "create", "--bundle", b}, tc.flags...), id)
			r := e.cliStart(func(c *exec.Cmd) {
				c.Stdout, c.Stderr = logf, logf
				passDevNull(t, c, tc.extra)
			}, args...).wait()
			out, _ := os.ReadFile(logPath)
			if r.code != 0 {
				t.Fatalf("create: exit %d: %s", r.code, out)
			}
			if got := strings.Contains(string(out), "init started ahead"); got != tc.adopted {
				t.Errorf("init adopted from ahead: %v, want %v; create said %q", got, tc.adopted, out)
			}
			pid := e.state(id).Pid
			for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.CgroupNamespace} {
				file := nsFile(typ)
				mine, _ := os.Readlink("/proc/self/ns/" + file)
				its, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + file)
				if err != nil {
					t.Fatal(err)
				}
				want := "the host's"
				if ns, ok := findNamespace(spec, typ); ok {
					want = "a new one"
					if ns.Path != "" {
						want = "the one joined"
						mine, _ = os.Readlink(ns.Path)
					}
				}
				if got := (its == mine) != (want == "a new one"); !got {
					t.Errorf("init's %s namespace is %s, want %s (ours %s)", typ, its, want, mine)
				}
			}
			if tc.name != "supervisor" {
				// The supervisor's child otherwise.
				shim, _ := strconv.Atoi(procStatus(t, pid)["PPid"])
				if kids := childrenOf(shim); len(kids) != 1 || kids[0] != pid {
					t.Errorf("the shim's children: %v, want only init %d", kids, pid)
				}
				// The seal's detached mounts, which the shim holds
				// while init starts (Speculative.Mounts), are closed
				// once it is created.
				if left := detachedMountRoots(t, shim); len(left) > 0 {
					t.Errorf("the created container's shim holds detached mounts: descriptors %v", left)
				}
			}
			e.cliOK("delete", "--force", id)
		})
	}
}

func nsFile(typ specs.LinuxNamespaceType) string {
	switch typ {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(typ)
}

func findNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

// passDevNull passes n descriptors of /dev/null to c, above its stdio
// (for --preserve-fds).
func passDevNull(t *testing.T, c *exec.Cmd, n int) {
	t.Helper()
	for range n {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		c.ExtraFiles = append(c.ExtraFiles, f)
	}
}

// detachedMountRoots lists the descriptors of pid that are the root of a
// mount outside its mount table: detached mounts (fsmount, open_tree).
func detachedMountRoots(t *testing.T, pid int) []string {
	t.Helper()
	table := map[string]bool{}
	for line := range strings.SplitSeq(readFile(t, fmt.Sprintf("/proc/%d/mountinfo", pid)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			table[f[0]] = true
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, ent.Name())); link != "/" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, ent.Name()))
		for line := range strings.SplitSeq(string(info), "\n") {
			if id, ok := strings.CutPrefix(line, "mnt_id:"); ok && !table[strings.TrimSpace(id)] {
				out = append(out, ent.Name())
			}
		}
	}
	return out
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		// A process that exits meanwhile is no child.
		b, _ := os.ReadFile("/proc/" + ent.Name() + "/status")
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok && strings.TrimSpace(v) == strconv.Itoa(pid) {
				kids = append(kids, p)
			}
		}
	}
	return kids
}

// TestSpeculativeSpecNotForged: the shim sends config.json's bytes to the
// init started ahead before it has checked them (Speculative.SendSpec),
// inside one message. A config.json that is an object, then a config
// message of its own, must not become a message: init would take that
// forged config and, born in create's uts namespace with nothing to
// unshare, set its hostname there. create runs in a uts namespace of its
// own, fails on the bad config, and the hostname there is unchanged.
func TestSpeculativeSpecNotForged(t *testing.T) {
	t.Parallel()
	if !hostHasV1Controllers() {
		t.Skip("on a cgroup v2 host no init is started ahead")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1)")
	}
	e := newEnv(t)
	b := e.bundle([]string{"true"}, nil)
	forged := `{"type":"config","config":{"id":"forged","pid":1,"bundle":"` + b + `","rootfs":"` + b +
		`/rootfs","spec":{"ociVersion":"1.0.2","root":{"path":"rootfs"},"hostname":"forged","linux":{}},"newUTSNS":true}}`
	// Framed as is, the stream would read: the spec message with the
	// first object, the forged config, and an empty message.
	config := `{"ociVersion":"1.0.2"}}` + "\n" + forged + "\n{"
	if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	id := e.id()
	cmd := exec.Command("unshare", "--uts", "sh", "-c", `hostname before; "$0" "$@" 2>&1; echo "exit $?"; hostname`,
		suite.crier, "--root", e.root, "create", "--bundle", b, id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unshare --uts: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("want create's error line, its exit code and the hostname; got %q", out)
	}
	wantOneLine(t, "create", lines[0], "config.json")
	if lines[1] != "exit 1" {
		t.Errorf("create: %s, want exit 1", lines[1])
	}
	if lines[2] != "before" {
		t.Errorf("hostname in create's uts namespace: %q, want %q (set from a forged config)", lines[2], "before")
	}
	e.assertGone(id)
}

// TestSpeculativeBadConfigSharedCgroup: an init started ahead is adopted on
// the config's early part, before the shim has checked the rest or made
// any cgroup. When the rest turns out bad, create fails with the config's
// error, and the cgroups its cgroupsPath names are not create's to touch:
// here another container runs in them, and it runs on, its cgroup there.
func TestSpeculativeBadConfigSharedCgroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _, cgroupsPath := e.runningInOwnCgroupsPath()
	procs := filepath.Join(e.shimState(id).Cgroup.Paths["pids"], "cgroup.procs")
	// The early part (namespaces, cgroupsPath) is fine; process.cwd is
	// not, which only the whole config's check finds.
	bad := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = cgroupsPath
		s.Process.Cwd = "relative"
	})
	other := e.id()
	r := e.cliRun("--debug", "create", "--bundle", bad, other)
	if r.code == 0 {
		t.Fatalf("create with a relative process.cwd succeeded")
	}
	if !strings.Contains(r.stderr, "cwd") {
		t.Errorf("create: stderr %q does not name the bad cwd", r.stderr)
	}
	e.wantNoStateDir(other)
	if st := e.state(id); st.Status != "running" {
		t.Errorf("the container in the shared cgroup is %s, want running", st.Status)
	}
	if got := readFile(t, procs); strings.TrimSpace(got) == "" {
		t.Errorf("%s is empty or gone after the bad create", procs)
	}
}
