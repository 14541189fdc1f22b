package shim

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
)

// oomServer is a loop in phase p whose OOM watch is on.
func oomServer(t *testing.T, p phase) (*server, *subscriber, *fakeOps) {
	t.Helper()
	k := newFakeOps()
	k.oomWatch = true
	s, sub := cellServer(t, p, k)
	s.watchOOM()
	s.handle(<-s.msgs)
	if !s.oom.on {
		t.Fatal("the OOM watch did not start")
	}
	return s, sub, k
}

// notified handles one notification as the loop does, and checks that it
// lets the watch go on.
func notified(t *testing.T, s *server) {
	t.Helper()
	done := make(chan struct{})
	s.handle(oomMaybe{done: done})
	select {
	case <-done:
	default:
		t.Fatal("the loop did not release the watch after looking")
	}
}

// wantOOM checks ev is an oom event for count kills.
func wantOOM(t *testing.T, ev protocol.Event, count uint64, limit, dir string) {
	t.Helper()
	if ev.Type != protocol.EventOOM || ev.Count != count || ev.Limit != limit || ev.Cgroup != dir {
		t.Errorf("event %+v, want oom with count %d, limit %q, cgroup %q", ev, count, limit, dir)
	}
}

func wantStopped(t *testing.T, ev protocol.Event, oomKilled bool) {
	t.Helper()
	if ev.Type != protocol.EventStopped || ev.OOMKilled != oomKilled {
		t.Errorf("event %+v, want stopped with oomKilled %v", ev, oomKilled)
	}
}

// TestOOMBeforeStopped: an init killed by the OOM killer whose exit the
// loop handles before the watch's notification: the exit path looks at
// the watch itself, so the oom event still comes first, and stopped, the
// state file and the state reply say oomKilled. The watch then ends.
func TestOOMBeforeStopped(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomKill(cgroup.OOM{Count: 1, Kills: 1, Limit: cgroup.LimitContainer, Cgroup: "/cg/c1"}, false)
	k.exit(killedBy(unix.SIGKILL))
	s.reap()
	wantOOM(t, nextEvent(t, sub), 1, "container", "/cg/c1")
	stopped := nextEvent(t, sub)
	wantStopped(t, stopped, true)
	if stopped.ExitStatus == nil || *stopped.ExitStatus != 137 || stopped.Signal != "SIGKILL" {
		t.Errorf("stopped %+v, want 137 and SIGKILL", stopped)
	}
	st, err := s.dir.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled || s.state().OOMKilled != true {
		t.Errorf("state file %+v, want oomKilled", st.State)
	}
	if s.oom.on || k.oomStops != 1 {
		t.Errorf("watch on %v, stopped %d times; want it stopped once at stopped", s.oom.on, k.oomStops)
	}
}

// TestOOMNotifiedThenExit: the notification is handled while the init is
// dying; the oom event goes out then, and the exit after it is the
// kill's.
func TestOOMNotifiedThenExit(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomDying = map[int]bool{s.c.Pid: true}
	k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
	notified(t, s)
	wantOOM(t, nextEvent(t, sub), 1, "", "")
	k.exit(killedBy(unix.SIGKILL))
	s.reap()
	wantStopped(t, nextEvent(t, sub), true)
	if evs := drainEvents(t, sub); len(evs) != 0 {
		t.Errorf("more events %v", evs)
	}
}

// TestOOMChildKilledInitSurvives: an OOM kill while the init is alive and
// well was another process's: the oom event is published, and a later
// SIGKILL of the init (crier kill) is no OOM kill.
func TestOOMChildKilledInitSurvives(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomKill(cgroup.OOM{Count: 2, Kills: 2, Limit: cgroup.LimitAncestor, Cgroup: "/cg"}, false)
	notified(t, s)
	wantOOM(t, nextEvent(t, sub), 2, "ancestor", "/cg")
	if s.phase != phaseRunning {
		t.Errorf("phase %v, want running", s.phase)
	}
	k.exit(killedBy(unix.SIGKILL))
	s.reap()
	wantStopped(t, nextEvent(t, sub), false)
	if st := s.state(); st.OOMKilled {
		t.Errorf("state %+v, want no oomKilled", st.State)
	}
}

// TestOOMNotSIGKILL: an init that exits on its own after an OOM kill in
// the container was not the victim; the kill's oom event still comes
// first.
func TestOOMNotSIGKILL(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
	k.exit(exitedWith(1))
	s.reap()
	wantOOM(t, nextEvent(t, sub), 1, "", "")
	wantStopped(t, nextEvent(t, sub), false)
}

// TestOOMHeldUntilStarted: an OOM seen while start is in flight is
// published after started, never before it.
func TestOOMHeldUntilStarted(t *testing.T) {
	s, sub, k := oomServer(t, phaseStarting)
	k.oomDying = map[int]bool{s.c.Pid: true}
	k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
	notified(t, s)
	if evs := drainEvents(t, sub); len(evs) != 0 {
		t.Fatalf("events %v before started", evs)
	}
	s.handle(startDone{req: newReq(protocol.OpStart)})
	if ev := nextEvent(t, sub); ev.Type != protocol.EventStarted {
		t.Fatalf("event %+v, want started", ev)
	}
	wantOOM(t, nextEvent(t, sub), 1, "", "")
}

// TestOOMExecKilled: an exec'd process killed by the OOM killer gets
// oomKilled on its exec-stopped, after the oom event; the init's later
// SIGKILL does not take the same kill. The kill may come while its exec
// is still starting, before the loop knows its pid: it is kept for it,
// not dropped as nobody's, and its oom event is held until exec-started:
// the process ran before it was killed.
func TestOOMExecKilled(t *testing.T) {
	for _, whileStarting := range []bool{false, true} {
		t.Run(fmt.Sprintf("while starting %v", whileStarting), func(t *testing.T) {
			s, sub, k := oomServer(t, phaseRunning)
			exited := false
			s.ops.exec.wait = func(pid int) (unix.WaitStatus, bool) { return killedBy(unix.SIGKILL), exited && pid == 4242 }
			r := newReq(protocol.OpExec)
			r.req.Files = 1
			r.files = []*os.File{os.Stdin}
			s.handle(r)
			if whileStarting {
				k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
				notified(t, s)
				noEvent(t, sub)
			}
			s.handle(<-s.msgs)
			if rep := <-r.reply; !rep.OK {
				t.Fatalf("exec: %+v", rep)
			}
			if ev := nextEvent(t, sub); ev.Type != protocol.EventExecStarted {
				t.Fatalf("event %+v, want exec-started", ev)
			}
			if whileStarting {
				wantOOM(t, nextEvent(t, sub), 1, "", "")
			}
			if !whileStarting {
				k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
			}
			exited = true
			s.handle(execMaybeExited{})
			if !whileStarting {
				wantOOM(t, nextEvent(t, sub), 1, "", "")
			}
			if ev := nextEvent(t, sub); ev.Type != protocol.EventExecStopped || !ev.OOMKilled {
				t.Errorf("event %+v, want exec-stopped with oomKilled", ev)
			}
			k.exit(killedBy(unix.SIGKILL))
			s.reap()
			wantStopped(t, nextEvent(t, sub), false)
		})
	}
}

// TestOOMNoMemoryCgroup: without a memory cgroup there is no watch, and
// nothing is looked at.
func TestOOMNoMemoryCgroup(t *testing.T) {
	k := newFakeOps()
	s, sub := cellServer(t, phaseRunning, k)
	s.watchOOM()
	s.handle(<-s.msgs)
	k.oomPending = cgroup.OOM{Count: 1, Kills: 1}
	k.exit(killedBy(unix.SIGKILL))
	s.reap()
	wantStopped(t, nextEvent(t, sub), false)
	if s.oom.on || k.oomStops != 0 {
		t.Errorf("watch on %v, stopped %d times; want never started", s.oom.on, k.oomStops)
	}
}

// TestOOMCountedAfterNotification: cgroup v1 notifies before the kill is
// counted. The loop looks again at its next message: with the init alive
// then, the kill was another process's, and a `crier kill -9` after it is
// no OOM kill; with the init dying, its SIGKILL exit is the OOM kill.
func TestOOMCountedAfterNotification(t *testing.T) {
	for _, initDying := range []bool{false, true} {
		s, sub, k := oomServer(t, phaseRunning)
		k.oomKill(cgroup.OOM{Count: 1, Limit: cgroup.LimitContainer, Cgroup: "/cg/c1"}, false)
		notified(t, s)
		wantOOM(t, nextEvent(t, sub), 1, "container", "/cg/c1")
		if !s.oom.recheck {
			t.Fatal("no recheck after a notification without its kill")
		}
		k.oomKill(cgroup.OOM{Kills: 1}, false)
		k.oomDying = map[int]bool{s.c.Pid: initDying}
		// The next message: a state request, as the loop gets it.
		s.oomRecheck()
		s.handle(newReq(protocol.OpState))
		if s.oom.recheck {
			t.Error("recheck still set after the next message")
		}
		k.exit(killedBy(unix.SIGKILL))
		s.reap()
		wantStopped(t, nextEvent(t, sub), initDying)
	}
}

// TestOOMFloodFolded: cgroup v1 on some machines notifies thousands of
// times while one victim exits. Looks that count no new kill right after
// an oom event are folded into the next oom event, which a kill publishes
// at once and a stopped flushes before it; an oom after another event is
// published as ever. Nothing is lost from the counts.
func TestOOMFloodFolded(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomDying = map[int]bool{s.c.Pid: true}
	flood := func(n int) {
		t.Helper()
		for range n {
			k.oomKill(cgroup.OOM{Count: 1, Limit: cgroup.LimitContainer, Cgroup: "/cg/c1"}, false)
			notified(t, s)
		}
	}
	flood(1)
	wantOOM(t, nextEvent(t, sub), 1, "container", "/cg/c1")
	flood(500)
	if evs := drainEvents(t, sub); len(evs) != 0 {
		t.Fatalf("%d events during the flood, want them folded", len(evs))
	}
	k.oomKill(cgroup.OOM{Count: 1, Kills: 1, Limit: cgroup.LimitContainer, Cgroup: "/cg/c1"}, false)
	notified(t, s)
	wantOOM(t, nextEvent(t, sub), 501, "container", "/cg/c1")
	flood(300)
	s.handle(newReq(protocol.OpState))
	if evs := drainEvents(t, sub); len(evs) != 0 {
		t.Fatalf("%d events during the flood, want them folded", len(evs))
	}
	k.exit(killedBy(unix.SIGKILL))
	s.reap()
	wantOOM(t, nextEvent(t, sub), 300, "container", "/cg/c1")
	wantStopped(t, nextEvent(t, sub), true)
	if evs := drainEvents(t, sub); len(evs) != 0 {
		t.Errorf("more events %v", evs)
	}
}

// TestOOMAfterOtherEvent: a look that counts no kill is published when
// another event came after the last oom event (here an exec-started): it is news.
func TestOOMAfterOtherEvent(t *testing.T) {
	s, sub, k := oomServer(t, phaseRunning)
	k.oomKill(cgroup.OOM{Count: 1}, false)
	notified(t, s)
	wantOOM(t, nextEvent(t, sub), 1, "", "")
	s.emit(protocol.Event{Type: protocol.EventExecStarted, ExecID: "x"}, time.Now())
	nextEvent(t, sub)
	k.oomKill(cgroup.OOM{Count: 2}, false)
	notified(t, s)
	wantOOM(t, nextEvent(t, sub), 2, "", "")
}

// TestOOMKillRequest: a SIGKILL the shim sends the init itself settles
// its OOM kills: one counted later is another process's (the kernel
// counts none of a process that has a SIGKILL already), even when the
// loop first hears of it with the init's exit; one counted before, while
// the init was dying already, is the init's.
func TestOOMKillRequest(t *testing.T) {
	cases := []struct {
		name       string
		before     bool // the OOM kill counted before the kill request
		initDying  bool
		wantKilled bool
	}{
		{name: "kill counted after the request"},
		{name: "init dying of an earlier kill", before: true, initDying: true, wantKilled: true},
		{name: "child's earlier kill, init alive", before: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, sub, k := oomServer(t, phaseRunning)
			k.oomDying = map[int]bool{s.c.Pid: tc.initDying}
			if tc.before {
				k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
			}
			r := newReq(protocol.OpKill)
			r.req.Signal = int(unix.SIGKILL)
			s.oomRecheck()
			s.handle(r)
			if rep := <-r.reply; !rep.OK {
				t.Fatalf("kill: %+v", rep)
			}
			k.nextSignal(t)
			if !tc.before {
				k.oomKill(cgroup.OOM{Count: 1, Kills: 1}, false)
			}
			k.exit(killedBy(unix.SIGKILL))
			s.reap()
			wantOOM(t, nextEvent(t, sub), 1, "", "")
			wantStopped(t, nextEvent(t, sub), tc.wantKilled)
		})
	}
}
