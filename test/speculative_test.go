package test

import (
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
				for range tc.extra {
					f, err := os.Open(os.DevNull)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.Close() })
					c.ExtraFiles = append(c.ExtraFiles, f)
				}
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
