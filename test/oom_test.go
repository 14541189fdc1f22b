package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// OOM kills on real containers. The limit is small and memory+swap is held
// to it, so nothing can swap out; the allocator is busybox sh collecting
// 64 MiB of output in a variable, which makes that sh, and nothing else,
// the largest process in the cgroup: the OOM killer's choice.
//
// Where the victim must be the only process the OOM killer takes, the
// allocator is one process, busybox dd with a 64 MiB buffer: the pipeline
// above goes on charging memory (tr's writes) while its victim exits,
// and the kernel then, now and then, kills a second process of the
// container, the init among them.
const (
	oomLimit    = 16 << 20
	oomAlloc    = `x=$(head -c 64m /dev/zero | tr "\0" a)`
	oomAllocOne = "dd if=/dev/zero of=/dev/null bs=64M count=1"
)

// oomBundle is a bundle running args with the small memory limit.
func (e *env) oomBundle(args []string) string {
	return e.bundle(args, func(s *specs.Spec) {
		limit := int64(oomLimit)
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	})
}

// memoryCgroup is the container's v1 memory cgroup directory on this host
// (the default cgroupsPath, /ID).
func memoryCgroup(id string) string { return filepath.Join("/sys/fs/cgroup/memory", id) }

// TestOOMKillInit: an init killed by the OOM killer. Its oom event comes
// before its stopped, names the container's own limit, and stopped says
// oomKilled with 137 and SIGKILL, as the state does (after the event, and
// with the shim dead). `crier event --event oom` finds an oom of it in the
// history.
// In both modes: the shim as the init's parent, and under a reaping
// supervisor, where the shim reads the exit from the pidfd.
func TestOOMKillInit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "supervisor"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.oomBundle([]string{"sh", "-c", oomAlloc + "; echo survived"})
			var h *supHelper
			if mode == "off" {
				e.create(id, b)
			} else {
				h, _ = e.startSupervisor(id, b, nil, nil)
			}
			sub := e.subscribe(id, true)
			defer sub.Close()
			if h != nil {
				// The shim publishes stopped once the
				// supervisor has reaped.
				h.start()
				if got := h.reaped(); got != "reaped signal 9" {
					t.Errorf("supervisor's wait4: %q, want reaped signal 9", got)
				}
			} else {
				e.cliOK("start", id)
			}
			var evs []protocol.Event
			for len(evs) == 0 || evs[len(evs)-1].Type != protocol.EventStopped {
				evs = append(evs, nextOf(t, sub))
			}
			// On cgroup v1 tasks charging at once may each
			// get the kernel's notification for one kill; on
			// some machines (session 13's) the kernel notified
			// thousands of times while the victim exited, and a
			// subscriber that falls behind such a flood is told
			// what it missed.
			got := strings.Join(typesOf(evs), ",")
			if !strings.HasPrefix(got, "created,started,oom,") || strings.Trim(strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(got, "created,started,"), "stopped"), protocol.EventMissed, ""), "om,") != "" {
				t.Fatalf("events %v, want created, started, oom (one or more, a missed among them), stopped", oomRuns(got))
			}
			oom, stopped := evs[len(evs)-2], evs[len(evs)-1]
			if oom.Count < 1 || oom.Limit != "container" || oom.Cgroup != memoryCgroup(id) || oom.Seq+1 != stopped.Seq {
				t.Errorf("oom event %+v, want a count, the container's limit, cgroup %s, just before stopped", oom, memoryCgroup(id))
			}
			wantExit(t, stopped, 137, "SIGKILL")
			if !stopped.OOMKilled {
				t.Errorf("stopped %+v, want oomKilled", stopped)
			}
			check := func(when string, st protocol.State) {
				t.Helper()
				if !st.OOMKilled || st.ExitStatus == nil || *st.ExitStatus != 137 || st.Signal != "SIGKILL" || st.ExitedAt != stopped.Timestamp {
					t.Errorf("%s: state %+v, want oomKilled, 137, SIGKILL at %s", when, st, stopped.Timestamp)
				}
			}
			check("after stopped", e.state(id))
			// The first oom the history still holds: the history
			// keeps the newest of a flood.
			if ev := decodeEvent(t, e.cliOK("event", "--event", protocol.EventOOM, id).stdout); ev.Type != protocol.EventOOM || ev.Seq < evs[2].Seq || ev.Seq >= stopped.Seq {
				t.Errorf("event --event oom printed %+v, want an oom of this kill, seq %d to %d", ev, evs[2].Seq, stopped.Seq-1)
			}
			killShim(t, e.shimState(id))
			check("with the shim dead", e.state(id))
			e.cliOK("delete", id)
		})
	}
}

// TestOOMKillChild: the OOM killer takes a child of the init, which
// survives: an oom event and no stopped; the init carries on (it prints
// the child's 137). A later `crier kill -9` of the init is no OOM kill:
// its stopped has no oomKilled. An exec'd process killed by the OOM killer
// gets an oom event, then exec-stopped with oomKilled and 137.
func TestOOMKillChild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.oomBundle([]string{"sh", "-c", oomAllocOne + " 2>/dev/null; echo child=$?; exec sleep 1000"})
	out := e.createPiped(id, b)
	sub := e.subscribe(id, true)
	defer sub.Close()
	e.cliOK("start", id)
	next(t, sub, protocol.EventStarted)
	oom := nextOf(t, sub)
	if oom.Type != protocol.EventOOM || oom.Count < 1 || oom.Limit != "container" {
		t.Fatalf("event %+v, want oom at the container's limit", oom)
	}
	if line := out.line(t); line != "child=137" {
		t.Errorf("the init printed %q, want child=137", line)
	}
	if st := e.state(id); st.Status != protocol.StatusRunning {
		t.Errorf("state %+v after the child's OOM kill, want running", st)
	}

	r := e.cliRun("exec", "--exec-id", "hog", id, "sh", "-c", "exec "+oomAllocOne)
	if r.code != 137 {
		t.Errorf("exec: exit %d, want 137: %s", r.code, r.stderr)
	}
	// On cgroup v1 the child's OOM may have notified again (an oom
	// event before exec-started), and the exec'd process may be killed
	// before the shim has its pid: its oom event then comes before
	// exec-started too. Either way the oom comes before exec-stopped.
	var evs []protocol.Event
	for len(evs) == 0 || evs[len(evs)-1].Type != protocol.EventExecStopped {
		evs = append(evs, nextOf(t, sub))
	}
	got := strings.Join(typesOf(evs), ",")
	if !regexp.MustCompile(`^(oom,)*exec-started,(oom,)*exec-stopped$`).MatchString(got) || !strings.Contains(got, "oom") {
		t.Errorf("events %v, want exec-started and oom (in either order), then exec-stopped", got)
	}
	if ev := evs[len(evs)-1]; ev.ExecID != "hog" || !ev.OOMKilled || ev.ExitStatus == nil || *ev.ExitStatus != 137 {
		t.Errorf("event %+v, want exec-stopped of hog, 137, oomKilled", ev)
	}

	e.cliOK("kill", id, "KILL")
	stopped := nextOf(t, sub)
	wantExit(t, stopped, 137, "SIGKILL")
	if stopped.OOMKilled || e.state(id).OOMKilled {
		t.Errorf("stopped %+v after crier kill -9, want no oomKilled (in the state neither)", stopped)
	}
	e.cliOK("delete", id)
}

// TestOOMCgroupV2OnlyNoMemory: in the cgroup2-only view this host allows
// (see TestPureCgroupV2) the v2 hierarchy has no memory controller, so
// there is no memory.events to watch: the container runs as ever, and a
// SIGKILL is no OOM kill (no oom event: stopped is seq 3, no oomKilled).
// The v2 watch itself is tested on files laid out as the kernel's
// (container/cgroup TestOOMWatchV2).
func TestOOMCgroupV2OnlyNoMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	script := `umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup &&
"$1" --root "$2" create --bundle "$3" "$4" >/dev/null && "$1" --root "$2" start "$4" &&
"$1" --root "$2" kill "$4" KILL && "$1" --root "$2" event --event stopped "$4" && "$1" --root "$2" delete "$4"`
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
		"sh", suite.crier, e.root, b, id)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("in a cgroup-v2-only mount namespace: %v: %s", err, out)
	}
	ev := decodeEvent(t, string(out))
	wantExit(t, ev, 137, "SIGKILL")
	if ev.OOMKilled || ev.Seq != 3 {
		t.Errorf("stopped %+v, want seq 3 (no oom event before it) and no oomKilled", ev)
	}
}

// oomRuns shortens a list of event types for a message: a run of oom
// events is one "oom×N".
func oomRuns(types string) string {
	var out []string
	n := 0
	for _, t := range append(strings.Split(types, ","), "") {
		if t == protocol.EventOOM {
			n++
			continue
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("oom×%d", n))
			n = 0
		}
		if t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, ",")
}
