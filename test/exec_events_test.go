package test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// TestExecEvents: every exec'd process gets exec-started (its exec id and
// pid) and exec-stopped (the same, with the exact exit status, or 128+N
// and the signal's name), in both modes: the shim as the process's parent,
// and crier exec as its parent (supervisor mode, forced on here), where
// the shim reads the exit from a pidfd. The exec id is --exec-id's, or
// one the shim makes up; one in use is refused. `crier event --event
// exec-stopped` waits for one, as for the lifecycle events.
func TestExecEvents(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := execTarget(t, e, nil)
			sub := e.subscribe(id, false)
			defer sub.Close()

			r := e.cliRun("--supervisor", mode, "exec", "--exec-id", "probe.1", id, "sh", "-c", "exit 5")
			if r.code != 5 {
				t.Fatalf("exec: exit %d, want 5: %s", r.code, r.stderr)
			}
			started := nextOf(t, sub)
			stopped := nextOf(t, sub)
			if started.Type != protocol.EventExecStarted || started.ExecID != "probe.1" || started.Pid <= 0 {
				t.Errorf("first event %+v, want exec-started of probe.1 with a pid", started)
			}
			if stopped.Type != protocol.EventExecStopped || stopped.ExecID != "probe.1" || stopped.Pid != started.Pid ||
				stopped.ExitStatus == nil || *stopped.ExitStatus != 5 || stopped.Signal != "" || stopped.Seq != started.Seq+1 {
				t.Errorf("second event %+v, want exec-stopped of probe.1, pid %d, exit 5", stopped, started.Pid)
			}

			// A made-up exec id; the process killed by a signal.
			pid := execDetachedMode(t, e, mode, id, "sleep", "999")
			started = nextOf(t, sub)
			if started.Type != protocol.EventExecStarted || started.Pid != pid || !strings.HasPrefix(started.ExecID, "exec-") {
				t.Errorf("event %+v, want exec-started of pid %d with a made-up exec id", started, pid)
			}
			// Its exec id is in use while it runs.
			r = e.cliRun("--supervisor", mode, "exec", "--exec-id", started.ExecID, id, "true")
			wantCLIError(t, "an exec id in use", r, "in use")
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
			// (With "on", detached and with no subreaper above
			// crier exec, the process went to init, which reaps it.)
			stopped = nextOf(t, sub)
			if stopped.Type != protocol.EventExecStopped || stopped.Pid != pid || stopped.ExecID != started.ExecID ||
				stopped.ExitStatus == nil || *stopped.ExitStatus != 137 || stopped.Signal != "SIGKILL" {
				t.Errorf("event %+v, want exec-stopped of pid %d, 137, SIGKILL", stopped, pid)
			}
			// From the shim's history, the first exec-stopped.
			ev := decodeEvent(t, e.cliOK("event", "--event", protocol.EventExecStopped, id).stdout)
			if ev.Type != protocol.EventExecStopped || ev.ExecID != "probe.1" || ev.ExitStatus == nil || *ev.ExitStatus != 5 {
				t.Errorf("event --event exec-stopped printed %+v, want probe.1's exit 5", ev)
			}
			e.cliOK("delete", "--force", id)
		})
	}
}

// nextOf returns the next event sub receives.
func nextOf(t *testing.T, sub *protocol.Client) protocol.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	return ev
}

// execDetachedMode is execDetached in a supervisor mode.
func execDetachedMode(t *testing.T, e *env, mode, id string, args ...string) int {
	t.Helper()
	pidFile := e.dir + "/exec-" + mode + ".pid"
	r := e.cliRun(append([]string{"--supervisor", mode, "exec", "--detach", "--pid-file", pidFile, id}, args...)...)
	if r.code != 0 {
		t.Fatalf("exec --detach: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	pid, err := strconv.Atoi(readFile(t, pidFile))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file holds %q, want a pid", readFile(t, pidFile))
	}
	return pid
}
