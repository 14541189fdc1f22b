package container

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestPlanNamespaces(t *testing.T) {
	ns := func(typ specs.LinuxNamespaceType, path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: typ, Path: path}
	}
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	tests := []struct {
		name       string
		l          specs.Linux
		sysFlags   uintptr // clone flags of the shim's fork
		stage2     uintptr // of stage two's, when there is one
		preRuntime []specs.LinuxNamespaceType
		joins      int
		root       bool // init becomes root of a user namespace
		unshareCg  bool
	}{
		{name: "new only",
			l:        specs.Linux{Namespaces: []specs.LinuxNamespace{ns("pid", ""), ns("mount", ""), ns("cgroup", "")}},
			sysFlags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, unshareCg: true},
		// Init may be forked before it is in its cgroups (Cgroup.Staged):
		// it makes the cgroup namespace itself, as root of its user one.
		{name: "new user",
			l:        specs.Linux{Namespaces: []specs.LinuxNamespace{ns("user", ""), ns("cgroup", "")}, UIDMappings: maps, GIDMappings: maps},
			sysFlags: unix.CLONE_NEWUSER, root: true, unshareCg: true},
		{name: "joined net",
			l:        specs.Linux{Namespaces: []specs.LinuxNamespace{ns("pid", ""), ns("network", "/x")}},
			sysFlags: unix.CLONE_NEWPID, joins: 1},
		{name: "joined user: new ones in stage two",
			l:          specs.Linux{Namespaces: []specs.LinuxNamespace{ns("user", "/u"), ns("pid", ""), ns("cgroup", ""), ns("network", "/n")}},
			stage2:     unix.CLONE_PARENT | unix.CLONE_NEWPID | unix.CLONE_NEWCGROUP,
			preRuntime: []specs.LinuxNamespaceType{"user"}, joins: 1, root: true},
		{name: "time before user",
			l:          specs.Linux{Namespaces: []specs.LinuxNamespace{ns("user", "/u"), ns("time", "/t"), ns("mount", "")}},
			stage2:     unix.CLONE_PARENT | unix.CLONE_NEWNS,
			preRuntime: []specs.LinuxNamespaceType{"time", "user"}, root: true},
		{name: "joined time, new user",
			l:          specs.Linux{Namespaces: []specs.LinuxNamespace{ns("time", "/t"), ns("user", "")}, UIDMappings: maps, GIDMappings: maps},
			stage2:     unix.CLONE_PARENT | unix.CLONE_NEWUSER,
			preRuntime: []specs.LinuxNamespaceType{"time"}, root: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planNamespaces(&tt.l)
			if err != nil {
				t.Fatal(err)
			}
			if p.sys.Cloneflags != tt.sysFlags {
				t.Errorf("shim's clone flags %#x, want %#x", p.sys.Cloneflags, tt.sysFlags)
			}
			var types []specs.LinuxNamespaceType
			for _, ns := range p.preRuntime {
				types = append(types, ns.Type)
			}
			if !slices.Equal(types, tt.preRuntime) {
				t.Errorf("pre-runtime joins %v, want %v", types, tt.preRuntime)
			}
			last := p.sys
			if tt.stage2 != 0 {
				if p.stage2 == nil {
					t.Fatal("no stage two")
				}
				if p.stage2.Cloneflags != tt.stage2 {
					t.Errorf("stage two's clone flags %#x, want %#x", p.stage2.Cloneflags, tt.stage2)
				}
				if p.sys.Credential != nil || p.sys.UidMappings != nil {
					t.Errorf("stage one changes credentials: %+v", p.sys)
				}
				last = p.stage2
			} else if p.stage2 != nil {
				t.Errorf("unexpected stage two %+v", p.stage2)
			}
			if root := last.Credential != nil && last.Credential.Uid == 0; root != tt.root {
				t.Errorf("becomes root of a user namespace: %v, want %v", root, tt.root)
			}
			if len(p.joins) != tt.joins {
				t.Errorf("joined by the forking thread: %v, want %d", p.joins, tt.joins)
			}
			if p.unshareCgroup != tt.unshareCg {
				t.Errorf("unshareCgroup %v, want %v", p.unshareCgroup, tt.unshareCg)
			}
		})
	}
}

func TestSetnsArg(t *testing.T) {
	if got := setnsArg(5, 2); got != "--setns=5,6" {
		t.Errorf("setnsArg(5, 2) = %q", got)
	}
	// The entry point compares its first eight bytes as one word.
	if len(initSetnsArg) != 8 {
		t.Errorf("initSetnsArg %q must be 8 bytes", initSetnsArg)
	}
}

func TestPreRuntimeResult(t *testing.T) {
	// In a test binary the entry point never ran.
	err := preRuntimeResult(nil)
	if err == nil || !strings.Contains(err.Error(), "pre-runtime entry point") {
		t.Errorf("without the entry point: %v", err)
	}
}

func TestPidfdPid(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	if pid, err := pidfdPid(fd); err != nil || pid != cmd.Process.Pid {
		t.Errorf("pidfdPid = %d, %v; want %d", pid, err, cmd.Process.Pid)
	}
	f, _ := os.Open("/dev/null")
	defer f.Close()
	if _, err := pidfdPid(int(f.Fd())); err == nil {
		t.Error("pidfdPid of /dev/null: no error")
	}
}
