package test

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// TestProcessIOPriorityAndScheduler: process.ioPriority and a non-real-time
// process.scheduler are what the kernel reports for the running container
// process, read from the host with ioprio_get and sched_getattr.
func TestProcessIOPriorityAndScheduler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		io     specs.LinuxIOPriority
		sched  specs.Scheduler
		ioprio int    // class<<13 | level
		policy uint32 // SCHED_*
		nice   int32
	}{
		{"best-effort batch", specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6},
			specs.Scheduler{Policy: specs.SchedBatch, Nice: 5}, 2<<13 | 6, unix.SCHED_BATCH, 5},
		{"idle idle", specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE},
			specs.Scheduler{Policy: specs.SchedIdle}, 3 << 13, unix.SCHED_IDLE, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			e.create(id, e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
				s.Process.IOPriority = &tt.io
				s.Process.Scheduler = &tt.sched
			}))
			sub := e.subscribe(id, true)
			e.cliOK("start", id)
			pid := next(t, sub, protocol.EventStarted).Pid
			const ioprioWhoProcess = 1
			prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(pid), 0)
			attr, err := unix.SchedGetAttr(pid, 0)
			e.cliOK("kill", id, "KILL")
			next(t, sub, protocol.EventStopped)
			e.cliOK("delete", id)
			if errno != 0 {
				t.Fatalf("ioprio_get %d: %v", pid, errno)
			}
			if int(prio) != tt.ioprio {
				t.Errorf("ioprio %#x, want %#x", prio, tt.ioprio)
			}
			if err != nil {
				t.Fatalf("sched_getattr %d: %v", pid, err)
			}
			if attr.Policy != tt.policy || attr.Nice != tt.nice {
				t.Errorf("scheduler policy %d nice %d, want %d nice %d", attr.Policy, attr.Nice, tt.policy, tt.nice)
			}
		})
	}
}
