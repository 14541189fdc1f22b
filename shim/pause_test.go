package shim

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestPauseKillThaws: SIGKILL to a paused container is sent, then the
// cgroup is thawed (a frozen v1 task dies only once thawed) and the
// container shows running again, with a resumed event; another signal
// leaves it frozen.
func TestPauseKillThaws(t *testing.T) {
	for _, p := range []phase{phasePaused, phasePausedCreated} {
		t.Run(p.String(), func(t *testing.T) {
			k := newFakeOps()
			s, sub := cellServer(t, p, k)
			r := newReq(protocol.OpKill)
			r.req.Signal = 15
			s.handle(r)
			if rep := <-r.reply; !rep.OK || len(k.freezesSent()) != 0 || s.phase != p {
				t.Errorf("SIGTERM: reply %+v, phase %v; want ok, no thaw, still %v", rep, s.phase, p)
			}
			k.nextSignal(t)
			r = newReq(protocol.OpKill)
			r.req.Signal = 9
			s.handle(r)
			if rep := <-r.reply; !rep.OK {
				t.Errorf("SIGKILL: reply %+v", rep)
			}
			if got := k.nextSignal(t); got != (sent{sig: 9}) {
				t.Errorf("signal %+v, want SIGKILL", got)
			}
			if got := k.freezesSent(); !slices.Equal(got, []bool{false}) {
				t.Errorf("freezes %v, want one thaw after the signal", got)
			}
			want := map[phase]phase{phasePaused: phaseRunning, phasePausedCreated: phaseCreated}[p]
			if s.phase != want {
				t.Errorf("phase %v after SIGKILL, want %v", s.phase, want)
			}
			if got := drainEvents(t, sub); !slices.Equal(got, []string{"resumed"}) {
				t.Errorf("events %q, want resumed", got)
			}
		})
	}
}

// TestPauseFreezeFails: a freeze or thaw that fails leaves the phase, the
// state file and the events as they were, and says why.
func TestPauseFreezeFails(t *testing.T) {
	for _, tc := range []struct {
		from phase
		op   string
	}{{phaseRunning, protocol.OpPause}, {phasePaused, protocol.OpResume}} {
		t.Run(tc.op, func(t *testing.T) {
			k := newFakeOps()
			k.freezeErr = errors.New("cgroup: freezer.state: no")
			s, sub := cellServer(t, tc.from, k)
			r := newReq(tc.op)
			s.handle(r)
			rep := <-r.reply
			if rep.OK || rep.Error != tc.op+": cgroup: freezer.state: no" || rep.Code != protocol.CodeInternal {
				t.Errorf("reply %+v", rep)
			}
			if s.phase != tc.from || len(drainEvents(t, sub)) != 0 {
				t.Errorf("phase %v, want %v and no event", s.phase, tc.from)
			}
			if st := s.state(); st.Status != tc.from.status() {
				t.Errorf("state %s", st.Status)
			}
		})
	}
}

// TestPauseHistoryKeepsLastCycle: however often a container is paused,
// the history holds only its last pause and resume, so a late subscriber's
// replay stays short; seq shows what was left out.
func TestPauseHistoryKeepsLastCycle(t *testing.T) {
	k := newFakeOps()
	s, _ := cellServer(t, phaseRunning, k)
	for range 100 {
		apply(s, inPause)
		apply(s, inResume)
		k.freezesSent()
	}
	apply(s, inPause)
	var types []string
	for _, ev := range s.rec.History {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, " "); got != "paused" {
		t.Errorf("history %q, want the last paused alone", got)
	}
	if last := s.rec.History[len(s.rec.History)-1]; last.Seq != 201 {
		t.Errorf("last seq %d, want 201", last.Seq)
	}
	apply(s, inResume)
	apply(s, inExited)
	types = types[:0]
	for _, ev := range s.rec.History {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, " "); got != "paused resumed stopped" {
		t.Errorf("history %q", got)
	}
}

// TestPauseTeardownThaws: only a container that was paused has its cgroup
// thawed by the teardown (a read of the freezer costs every delete some
// 50 µs); one that was stays marked after resume, as it may stop frozen.
func TestPauseTeardownThaws(t *testing.T) {
	k := newFakeOps()
	s, _ := cellServer(t, phaseRunning, k)
	if s.remains().Thaw {
		t.Error("a container never paused is thawed at teardown")
	}
	apply(s, inPause)
	apply(s, inResume)
	if !s.remains().Thaw {
		t.Error("a container once paused is not thawed at teardown")
	}
}
