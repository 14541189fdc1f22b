package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// denyMkdir is a deny-list profile: everything is allowed but mkdir (the
// call busybox's mkdir makes) and the extra names, which fail with EPERM.
func denyMkdir(names ...string) *specs.LinuxSeccomp {
	one := uint(1)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{
			Names:    append([]string{"mkdir"}, names...),
			Action:   specs.ActErrno,
			ErrnoRet: &one,
		}},
	}
}

func TestSeccompBlocksSyscall(t *testing.T) {
	for _, nnp := range []bool{true, false} {
		name := "noNewPrivileges"
		if !nnp {
			// The filter then goes on while init still has CAP_SYS_ADMIN.
			name = "privileged"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			script := `mkdir /tmp/x 2>&1; echo "mkdir_status=$?"
				if [ -e /tmp/x ]; then echo exists=yes; else echo exists=no; fi
				echo hello > /tmp/file && echo "write=$(cat /tmp/file)"
				echo "ls=$(ls / | grep -c .)"`
			b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
				s.Process.NoNewPrivileges = nnp
				s.Linux.Seccomp = denyMkdir()
				// busybox's rootfs has no /tmp: without one mkdir would
				// fail anyway.
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
			})
			out, kv := e.runOK(e.id(), b, nil)
			if !strings.Contains(out, "Operation not permitted") {
				t.Errorf("mkdir did not fail with \"Operation not permitted\"")
			}
			wantKV(t, kv, "mkdir_status", "1")
			wantKV(t, kv, "exists", "no")
			wantKV(t, kv, "write", "hello")
			if kv["ls"] == "" || kv["ls"] == "0" {
				t.Errorf("ls / listed nothing (%q)", kv["ls"])
			}
		})
	}
}

func TestSeccompUnknownSyscall(t *testing.T) {
	wantCreateFails(t, func(s *specs.Spec) {
		s.Linux.Seccomp = denyMkdir("mkdirr")
	}, `unknown syscall "mkdirr"`)
}
