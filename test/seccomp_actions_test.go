package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSeccompActionsInContainer runs the seccomp actions and an argument
// condition on real containers: the container's process is `sh -c SCRIPT`
// or the syscall's caller itself, so the stopped event shows how it ended.
func TestSeccompActionsInContainer(t *testing.T) {
	t.Parallel()
	enospc := uint(28)
	rule := func(action specs.LinuxSeccompAction, names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: action}
	}
	tests := []struct {
		name    string
		args    []string
		syscall specs.LinuxSyscall
		status  int
		signal  string
		out     string // in what the container printed
	}{
		{"errno value", []string{"sh", "-c", "mkdir /tmp/x"},
			specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enospc},
			1, "", "No space left on device"},
		{"kill_process", []string{"mkdir", "/tmp/x"}, rule(specs.ActKillProcess, "mkdir", "mkdirat"), 128 + 31, "SIGSYS", ""},
		{"kill_thread", []string{"mkdir", "/tmp/x"}, rule(specs.ActKillThread, "mkdir", "mkdirat"), 128 + 31, "SIGSYS", ""},
		{"trap", []string{"mkdir", "/tmp/x"}, rule(specs.ActTrap, "mkdir", "mkdirat"), 128 + 31, "SIGSYS", ""},
		{"log allows", []string{"sh", "-c", "mkdir /tmp/x && echo made"}, rule(specs.ActLog, "mkdir", "mkdirat"), 0, "", "made"},
		// nice -n N computes the new nice value and passes it as
		// setpriority's third argument: only 5 is refused.
		{"argument condition", []string{"sh", "-c", "nice -n 3 true && echo three=ok; nice -n 5 true || echo five=refused"},
			specs.LinuxSyscall{Names: []string{"setpriority"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: 5, Op: specs.OpEqualTo}}},
			0, "", "three=ok\nnice: setpriority(5): Operation not permitted\nfive=refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bundle(tt.args, func(s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
					Syscalls:      []specs.LinuxSyscall{tt.syscall},
				}
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
			})
			out, ev := e.run(e.id(), b, nil)
			wantExit(t, ev, tt.status, tt.signal)
			if !strings.Contains(out, tt.out) {
				t.Errorf("output %q does not contain %q", out, tt.out)
			}
		})
	}
}
