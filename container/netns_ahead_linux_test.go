package container

import (
	"os"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestWantNetNSAhead(t *testing.T) {
	ns := func(typ specs.LinuxNamespaceType, path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: typ, Path: path}
	}
	tests := []struct {
		name string
		nss  []specs.LinuxNamespace
		want bool
	}{
		{"new net", []specs.LinuxNamespace{ns("pid", ""), ns("network", ""), ns("mount", "")}, true},
		{"new net, joined mount", []specs.LinuxNamespace{ns("network", ""), ns("mount", "/m")}, true},
		{"no net", []specs.LinuxNamespace{ns("pid", ""), ns("mount", "")}, false},
		{"joined net", []specs.LinuxNamespace{ns("network", "/n")}, false},
		{"new user owns it", []specs.LinuxNamespace{ns("user", ""), ns("network", "")}, false},
		{"joined user owns it", []specs.LinuxNamespace{ns("network", ""), ns("user", "/u")}, false},
		{"time namespace", []specs.LinuxNamespace{ns("network", ""), ns("time", "")}, false},
		{"net twice", []specs.LinuxNamespace{ns("network", ""), ns("network", "")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wantNetNSAhead(&specs.Linux{Namespaces: tt.nss}); got != tt.want {
				t.Errorf("wantNetNSAhead = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNetNSAhead checks that the namespace made ahead is a new one, that
// the plan joins it first instead of creating one, and that nothing is
// made when it is not wanted.
func TestNetNSAhead(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want bool
	}{{"wanted", true}, {"not wanted", false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNetNSAhead()
			go func() {
				runtime.LockOSThread() // never unlocked: the thread is in the namespace
				n.make(tt.want)
			}()
			plan, err := planNamespaces(&specs.Linux{Namespaces: []specs.LinuxNamespace{
				{Type: specs.NetworkNamespace}, {Type: specs.MountNamespace, Path: "/m"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			n.use(plan)
			defer n.close()
			if !tt.want {
				if plan.sys.Cloneflags&unix.CLONE_NEWNET == 0 || len(plan.joins) != 1 {
					t.Errorf("plan changed with nothing made: flags %#x, joins %v", plan.sys.Cloneflags, plan.joins)
				}
				return
			}
			if plan.sys.Cloneflags&unix.CLONE_NEWNET != 0 {
				t.Errorf("the clone still makes a network namespace")
			}
			if len(plan.joins) != 2 || plan.joins[0].Type != specs.NetworkNamespace {
				t.Fatalf("joins = %v, want the network namespace first", plan.joins)
			}
			var st unix.Stat_t
			if err := unix.Stat(plan.joins[0].Path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Ino == own.Ino {
				t.Errorf("%s is the test's own network namespace", plan.joins[0].Path)
			}
		})
	}
}
