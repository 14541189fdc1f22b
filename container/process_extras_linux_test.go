package container

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestValidateProcessExtras(t *testing.T) {
	base := func() *specs.Spec {
		return &specs.Spec{Linux: &specs.Linux{}, Process: &specs.Process{}}
	}
	tests := []struct {
		name string
		edit func(*specs.Spec)
		err  string // "" for valid; else a substring of the error
	}{
		{"none", func(*specs.Spec) {}, ""},
		{"no process", func(s *specs.Spec) { s.Process = nil; s.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX"} }, ""},
		{"no linux", func(s *specs.Spec) { s.Linux = nil }, ""},

		{"personality LINUX", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux} }, ""},
		{"personality LINUX32", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, ""},
		{"personality empty", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{} }, "linux.personality: domain is missing"},
		{"personality unknown", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "BSD"} }, `linux.personality: unknown domain "BSD"`},
		{"personality flag", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX", Flags: []specs.LinuxPersonalityFlag{"ADDR_NO_RANDOMIZE"}}
		}, `linux.personality: unknown flag "ADDR_NO_RANDOMIZE"`},

		{"ioprio RT", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_RT, Priority: 0}
		}, ""},
		{"ioprio BE 7", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 7}
		}, ""},
		{"ioprio IDLE", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE} }, ""},
		{"ioprio 8", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		}, "process.ioPriority: priority 8 outside [0, 7]"},
		{"ioprio -1", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: -1}
		}, "priority -1 outside"},
		{"ioprio class", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_NONE"} }, `process.ioPriority: unknown class "IOPRIO_CLASS_NONE"`},
		{"ioprio no class", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Priority: 1} }, "class is missing"},

		{"sched other nice", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: -20} }, ""},
		{"sched batch", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 19} }, ""},
		{"sched idle", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedIdle} }, ""},
		{"sched fifo", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 99} }, ""},
		{"sched rr flags", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedRR, Priority: 1, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}}
		}, ""},
		{"sched deadline", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 10_000_000, Deadline: 30_000_000, Period: 100_000_000,
				Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagReclaim, specs.SchedFlagDLOverrun}}
		}, ""},
		{"sched deadline no period", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1024, Deadline: 1024}
		}, ""},
		{"sched no policy", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{} }, "process.scheduler: policy is missing"},
		{"sched unknown policy", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_FAST"} }, `unknown policy "SCHED_FAST"`},
		{"sched iso", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedISO} }, "SCHED_ISO is not supported by Linux"},
		{"sched nice", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: 20} }, "nice 20 outside [-20, 19]"},
		{"sched nice low", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: -21} }, "nice -21 outside"},
		{"sched fifo 0", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO} }, "priority 0 outside [1, 99] for SCHED_FIFO"},
		{"sched rr 100", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedRR, Priority: 100} }, "priority 100 outside [1, 99] for SCHED_RR"},
		{"sched other prio", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Priority: 5} }, "priority 5 is only for SCHED_FIFO and SCHED_RR, not SCHED_OTHER"},
		{"sched flag", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"SCHED_FLAG_TURBO"}}
		}, `unknown flag "SCHED_FLAG_TURBO"`},
		{"sched dl fields on other", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Runtime: 5} }, "runtime 5, deadline 0 and period 0 are only for SCHED_DEADLINE, not SCHED_OTHER"},
		{"sched dl no deadline", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2048}
		}, "deadline is missing"},
		{"sched dl short runtime", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1000, Deadline: 5000}
		}, "runtime 1000 below the kernel's minimum of 1024 ns"},
		{"sched dl runtime > deadline", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 5000, Deadline: 4000}
		}, "runtime 5000 above deadline 4000"},
		{"sched dl period < deadline", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2000, Deadline: 4000, Period: 3000}
		}, "period 3000 below deadline 4000"},
		{"sched dl huge", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2000, Deadline: 1 << 63}
		}, "is 2^63 or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			err := validateProcessExtras(s)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("no error, want %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q does not contain %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestProcessExtrasValues(t *testing.T) {
	v, err := ioprioValue(&specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 3})
	if err != nil || v != 2<<13|3 {
		t.Errorf("ioprio BE 3 = %#x, %v; want %#x", v, err, 2<<13|3)
	}
	p, err := personalityValue(&specs.LinuxPersonality{Domain: specs.PerLinux32})
	if err != nil || p != 8 {
		t.Errorf("LINUX32 = %#x, %v; want 0x8", p, err)
	}
	attr, err := schedAttr(&specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2000, Deadline: 4000, Period: 8000,
		Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork, specs.SchedFlagReclaim}})
	if err != nil {
		t.Fatal(err)
	}
	want := unix.SchedAttr{Policy: unix.SCHED_DEADLINE, Flags: unix.SCHED_FLAG_RESET_ON_FORK | unix.SCHED_FLAG_RECLAIM,
		Runtime: 2000, Deadline: 4000, Period: 8000}
	if *attr != want {
		t.Errorf("sched attr = %+v, want %+v", *attr, want)
	}
}

// onThrowawayThread runs fn on a locked thread that is never unlocked, so
// that the Go runtime discards it with whatever fn did to it.
func onThrowawayThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

func TestApplyProcessExtras(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	spec := &specs.Spec{
		Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}},
		Process: &specs.Process{
			IOPriority: &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6},
			Scheduler:  &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7},
		},
	}
	err := onThrowawayThread(func() error {
		if err := applyProcessExtras(spec); err != nil {
			return err
		}
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return err
		}
		if m := unix.ByteSliceToString(uts.Machine[:]); runtime.GOARCH == "amd64" && m != "i686" {
			t.Errorf("uname machine under LINUX32 = %q, want i686", m)
		}
		prio, _, e := unix.RawSyscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
		if e != 0 {
			return e
		}
		if prio != 2<<13|6 {
			t.Errorf("ioprio_get = %#x, want %#x", prio, 2<<13|6)
		}
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			return err
		}
		if attr.Policy != unix.SCHED_BATCH || attr.Nice != 7 {
			t.Errorf("sched_getattr = policy %d nice %d, want %d and 7", attr.Policy, attr.Nice, unix.SCHED_BATCH)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The thread that changed is gone; this one still has the defaults.
	onThrowawayThread(func() error {
		var uts unix.Utsname
		unix.Uname(&uts)
		if m := unix.ByteSliceToString(uts.Machine[:]); runtime.GOARCH == "amd64" && m != "x86_64" {
			t.Errorf("personality leaked to another thread: machine %q", m)
		}
		return nil
	})
}

func TestApplyProcessExtrasErrors(t *testing.T) {
	// An invalid value is refused before any syscall.
	spec := &specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedFIFO}}}
	err := onThrowawayThread(func() error { return applyProcessExtras(spec) })
	if err == nil || !strings.Contains(err.Error(), "process.scheduler: priority 0") {
		t.Fatalf("err = %v", err)
	}
	if unsafe.Sizeof(unix.SchedAttr{}) != unix.SizeofSchedAttr {
		t.Fatalf("SchedAttr is %d bytes, want %d", unsafe.Sizeof(unix.SchedAttr{}), unix.SizeofSchedAttr)
	}
}
