package test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Exec under a supervisor (docs/supervisors.md): conmon and containerd's
// shim run `crier exec --detach --pid-file F` and wait for the pid in F as
// their own child. The exec'd process must be theirs, as the init is.

// TestSupervisorExec: under a reaping supervisor, a detached exec's pid
// file names the process, which is in the container's pid namespace and
// the supervisor's child once crier exec has returned; the supervisor
// reaps it with its status (an exit, and a kill). A foreground exec passes
// the status through. The container's init is untouched throughout, and
// kill --all reaches both it and an exec'd process.
func TestSupervisorExec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	h, initPid := e.startSupervisor(id, e.bundle([]string{"sleep", "1000"}, nil), nil, nil)
	h.start()
	helper := strconv.Itoa(h.cmd.Process.Pid)

	h.in.Write([]byte("exec sleep|999\n"))
	line := h.out.line(t)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "exec pid "))
	if err != nil || pid <= 0 {
		t.Fatalf("supervisor helper: %q, want the exec'd pid", line)
	}
	st := procStatus(t, pid)
	if st["PPid"] != helper {
		t.Errorf("exec'd process %d has parent %s, want the supervisor %s", pid, st["PPid"], helper)
	}
	if ns := strings.Fields(st["NSpid"]); len(ns) != 2 || ns[1] == "1" {
		t.Errorf("exec'd process's NSpid %v: want a pid in the container's own pid namespace, not its init", ns)
	}
	if !sameNS(t, pid, initPid, "pid") || !sameNS(t, pid, initPid, "mnt") {
		t.Errorf("exec'd process %d is not in the init's pid and mount namespaces", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	unix.Close(fd)
	if got := h.out.line(t); got != "exec reaped signal 9" {
		t.Errorf("supervisor's wait4 of the exec'd process: %q, want signal 9", got)
	}

	h.in.Write([]byte("exec sh|-c|exit 5\n"))
	if line := h.out.line(t); !strings.HasPrefix(line, "exec pid ") {
		t.Fatalf("supervisor helper: %q, want the exec'd pid", line)
	}
	if got := h.out.line(t); got != "exec reaped exit 5" {
		t.Errorf("supervisor's wait4 of the exec'd process: %q, want exit 5", got)
	}

	h.in.Write([]byte("fg false\n"))
	if got := h.out.line(t); got != "fg exit 1" {
		t.Errorf("foreground exec of false: %q, want exit 1", got)
	}
	if e.state(id).Pid != initPid || procStatus(t, initPid)["PPid"] != helper {
		t.Errorf("the init changed: state %+v", e.state(id))
	}
	// kill --all reaches the exec'd processes too, which are not the
	// shim's children.
	h.in.Write([]byte("exec sleep|998\n"))
	if line := h.out.line(t); !strings.HasPrefix(line, "exec pid ") {
		t.Fatalf("supervisor helper: %q, want the exec'd pid", line)
	}
	e.cliOK("kill", "--all", id, "KILL")
	if got := h.out.line(t); got != "exec reaped signal 9" {
		t.Errorf("supervisor's wait4 of the exec'd process after kill --all: %q, want signal 9", got)
	}
	if got := h.reaped(); got != "reaped signal 9" {
		t.Errorf("supervisor's wait4 of the init: %q", got)
	}
	e.cliOK("delete", id)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("exec'd process %d still exists", pid)
	}
}

// TestExecNoHostDescriptors: a caller's descriptors that crier exec
// inherits (containerd's shim passes its listening socket as fd 3) reach
// neither the exec'd process nor anything else in the container, whichever
// process forks the exec stage: the shim, or (supervisor mode, forced on
// here) crier exec itself.
func TestExecNoHostDescriptors(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := execTarget(t, e, nil)
			leaked, _ := leakedFiles(t, e)
			pidFile := e.dir + "/exec.pid"
			p := e.cliStart(func(c *exec.Cmd) { c.ExtraFiles = leaked }, "--supervisor", mode, "exec", "--detach", "--pid-file", pidFile, id, "sleep", "999")
			p.waitOK()
			pid, err := strconv.Atoi(readFile(t, pidFile))
			if err != nil {
				t.Fatal(err)
			}
			wantFDs(t, "the exec'd process", fdsOf(t, pid), map[string]bool{"0": true, "1": true, "2": true})
			e.cliOK("delete", "--force", id)
		})
	}
}

// TestSupervisorDeleteRightAfterReap: as containerd's shim does after its
// reap (ctr run --rm), state and delete right after the supervisor has
// reaped the container find it stopped, with its exit status, though the
// shim may not have heard of the reap yet.
func TestSupervisorDeleteRightAfterReap(t *testing.T) {
	t.Parallel()
	for i := 0; i < 3; i++ {
		e := newEnv(t)
		id := e.id()
		h, _ := e.startSupervisor(id, e.bundle([]string{"sh", "-c", "exit 3"}, nil), nil, nil)
		h.start()
		if got := h.reaped(); got != "reaped exit 3" {
			t.Fatalf("supervisor's wait4: %q", got)
		}
		if st := e.state(id); st.Status != "stopped" || st.ExitStatus == nil || *st.ExitStatus != 3 {
			t.Errorf("state right after the reap: %+v, want stopped with exit 3", st)
		}
		e.cliOK("delete", id)
	}
}

// TestExecPidFileFailureLeavesNothing: when the pid file cannot be written
// the exec fails with one line, and the process it started does not go on
// running unseen, whichever process forked it.
func TestExecPidFileFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := execTarget(t, e, nil)
			r := e.cliRun("--supervisor", mode, "exec", "--detach", "--pid-file", e.dir+"/no/such/dir/pid", id, "sleep", "777")
			wantCLIError(t, "exec with a pid file in a missing directory", r, "pid file")
			for deadline := time.Now().Add(hangDeadline); ; {
				if !processWithArgs("sleep\x00777\x00") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the exec'd sleep still runs after the exec failed")
				}
				time.Sleep(time.Millisecond) // /proc has no notification
			}
			e.cliOK("delete", "--force", id)
		})
	}
}

// processWithArgs reports whether a live process has exactly this
// cmdline (NUL-separated, NUL-terminated).
func processWithArgs(cmdline string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && string(b) == cmdline {
			if st, _ := os.ReadFile("/proc/" + d.Name() + "/stat"); !strings.Contains(string(st), ") Z ") {
				return true
			}
		}
	}
	return false
}
