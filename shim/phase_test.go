package shim

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/statedirtest"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// cellWant is what one input does in one phase, written out from the
// behaviour the shim had before its table (the status string and flags of
// commit 57d0d53), not from the table: a test that read the table could
// not disagree with it.
type cellWant struct {
	to       phase    // the phase after
	refused  string   // for a refused request: the message, after "container c1 "
	reply    string   // for a request answered at once: "ok", or the error
	events   []string // events emitted, in order
	signals  []sent
	start    bool // the start goroutine was launched
	teardown bool // the teardown goroutine was launched
	freezes  []bool
}

var (
	sigTerm = sent{sig: 15}
	killAll = []sent{{sig: 9, all: true}, {sig: 9}}
	// A SIGKILL to a container without a pid namespace of its own.
	killCgroup = []sent{{sig: 9, all: true}}
	freezeThaw = []bool{true, false}
	bootFails  = "start: boom"
	freeze     = []bool{true}
	thaw       = []bool{false}
)

// The OCI status each phase shows.
var wantStatus = map[phase]protocol.Status{
	phaseCreating: "creating", phaseCreated: "created", phaseStarting: "created", phaseStartExited: "created",
	phaseRunning: "running", phasePausedCreated: "paused", phasePaused: "paused", phaseStopped: "stopped",
	phaseKillCreated: "created", phaseKillStarting: "created", phaseKillStartExited: "created", phaseKillRunning: "running",
	phaseKillPaused: "paused",
	phaseDeleting:   "stopped", phaseDeleted: "stopped",
}

// The cells that can happen; every other event cell must do nothing.
var cellWants = map[phase]map[input]cellWant{
	phaseCreating: {
		inStart:            {refused: "is creating, not created"},
		inKill:             {refused: "is creating, not running"},
		inKillCgroup:       {refused: "is creating, not running"},
		inDelete:           {refused: "is still being created"},
		inForceDelete:      {refused: "is still being created"},
		inExec:             {refused: "is still being created"},
		inExecIgnorePaused: {refused: "is still being created"},
		inPause:            {refused: "is creating, not running"},
		inResume:           {refused: "is creating: container not paused"},
		inCreated:          {to: phaseCreated, events: []string{"created"}},
	},
	phaseCreated: {
		inStart:            {to: phaseStarting, start: true},
		inKill:             {to: phaseCreated, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseCreated, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is created: stop it first or use --force"},
		inForceDelete:      {to: phaseKillCreated, signals: killAll},
		inExec:             {to: phaseCreated, reply: "ok", events: []string{"exec-started"}},
		inExecIgnorePaused: {to: phaseCreated, reply: "ok", events: []string{"exec-started"}},
		inPause:            {to: phasePausedCreated, reply: "ok", events: []string{"paused"}, freezes: freeze},
		inResume:           {refused: "is created: container not paused"},
		inExited:           {to: phaseStopped, events: []string{"stopped"}},
	},
	phaseStarting: {
		inStart:            {refused: "is already starting"},
		inKill:             {to: phaseStarting, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseStarting, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is created: stop it first or use --force"},
		inForceDelete:      {to: phaseKillStarting, signals: killAll},
		inExec:             {to: phaseStarting, reply: "ok", events: []string{"exec-started"}},
		inExecIgnorePaused: {to: phaseStarting, reply: "ok", events: []string{"exec-started"}},
		inPause:            {refused: "is starting, not running"},
		inResume:           {refused: "is created: container not paused"},
		inExited:           {to: phaseStartExited},
		inStarted:          {to: phaseRunning, reply: "ok", events: []string{"started"}},
		inStartFailed:      {to: phaseCreated, reply: bootFails},
	},
	phaseStartExited: {
		inStart:            {refused: "is already starting"},
		inKill:             {refused: "is stopped: container not running"},
		inKillCgroup:       {to: phaseStartExited, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is created: stop it first or use --force"},
		inForceDelete:      {to: phaseKillStartExited, signals: killAll},
		inExec:             {refused: "is stopped: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is stopped: cannot exec in a stopped container"},
		inPause:            {refused: "is stopped: container not running"},
		inResume:           {refused: "is stopped: container not paused"},
		inStarted:          {to: phaseStopped, reply: "ok", events: []string{"started", "stopped"}},
		inStartFailed:      {to: phaseStopped, reply: bootFails, events: []string{"stopped"}},
	},
	phaseRunning: {
		inStart:            {refused: "is running, not created"},
		inKill:             {to: phaseRunning, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseRunning, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is running: stop it first or use --force"},
		inForceDelete:      {to: phaseKillRunning, signals: killAll},
		inExec:             {to: phaseRunning, reply: "ok", events: []string{"exec-started"}},
		inExecIgnorePaused: {to: phaseRunning, reply: "ok", events: []string{"exec-started"}},
		inPause:            {to: phasePaused, reply: "ok", events: []string{"paused"}, freezes: freeze},
		inResume:           {refused: "is running: container not paused"},
		inExited:           {to: phaseStopped, events: []string{"stopped"}},
	},
	phasePausedCreated: {
		inStart:            {refused: "is paused, not created"},
		inKill:             {to: phasePausedCreated, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseCreated, reply: "ok", events: []string{"resumed"}, signals: killCgroup, freezes: thaw},
		inDelete:           {refused: "is paused: stop it first or use --force"},
		inForceDelete:      {to: phaseKillPaused, signals: killAll, freezes: thaw},
		inExec:             {refused: "is paused: cannot exec in a paused container"},
		inExecIgnorePaused: {to: phasePausedCreated, reply: "ok", events: []string{"exec-started"}},
		inPause:            {refused: "is already paused"},
		inResume:           {to: phaseCreated, reply: "ok", events: []string{"resumed"}, freezes: thaw},
		inExited:           {to: phaseStopped, events: []string{"stopped"}},
		inThawed:           {to: phaseCreated, events: []string{"resumed"}},
	},
	phasePaused: {
		inStart:            {refused: "is paused, not created"},
		inKill:             {to: phasePaused, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseRunning, reply: "ok", events: []string{"resumed"}, signals: killCgroup, freezes: thaw},
		inDelete:           {refused: "is paused: stop it first or use --force"},
		inForceDelete:      {to: phaseKillPaused, signals: killAll, freezes: thaw},
		inExec:             {refused: "is paused: cannot exec in a paused container"},
		inExecIgnorePaused: {to: phasePaused, reply: "ok", events: []string{"exec-started"}},
		inPause:            {refused: "is already paused"},
		inResume:           {to: phaseRunning, reply: "ok", events: []string{"resumed"}, freezes: thaw},
		inExited:           {to: phaseStopped, events: []string{"stopped"}},
		inThawed:           {to: phaseRunning, events: []string{"resumed"}},
	},
	phaseStopped: {
		inStart:            {refused: "is stopped, not created"},
		inKill:             {refused: "is stopped: container not running"},
		inKillCgroup:       {to: phaseStopped, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {to: phaseDeleting, teardown: true},
		inForceDelete:      {to: phaseDeleting, teardown: true},
		inExec:             {refused: "is stopped: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is stopped: cannot exec in a stopped container"},
		inPause:            {refused: "is stopped: container not running"},
		inResume:           {refused: "is stopped: container not paused"},
	},
	phaseKillCreated: {
		inStart:            {refused: "is being deleted, not created"},
		inKill:             {to: phaseKillCreated, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseKillCreated, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is being deleted: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is being deleted: cannot exec in a stopped container"},
		inPause:            {refused: "is already being deleted"},
		inResume:           {refused: "is already being deleted"},
		inExited:           {to: phaseDeleting, events: []string{"stopped"}, teardown: true},
	},
	phaseKillStarting: {
		inStart:            {refused: "is already starting"},
		inKill:             {to: phaseKillStarting, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseKillStarting, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is being deleted: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is being deleted: cannot exec in a stopped container"},
		inPause:            {refused: "is already being deleted"},
		inResume:           {refused: "is already being deleted"},
		inExited:           {to: phaseKillStartExited},
		inStarted:          {to: phaseKillRunning, reply: "ok", events: []string{"started"}},
		inStartFailed:      {to: phaseKillCreated, reply: bootFails},
	},
	phaseKillStartExited: {
		inStart:            {refused: "is already starting"},
		inKill:             {refused: "is stopped: container not running"},
		inKillCgroup:       {to: phaseKillStartExited, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is being deleted: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is being deleted: cannot exec in a stopped container"},
		inPause:            {refused: "is already being deleted"},
		inResume:           {refused: "is already being deleted"},
		inStarted:          {to: phaseDeleting, reply: "ok", events: []string{"started", "stopped"}, teardown: true},
		inStartFailed:      {to: phaseDeleting, reply: bootFails, events: []string{"stopped"}, teardown: true},
	},
	phaseKillRunning: {
		inStart:            {refused: "is being deleted, not created"},
		inKill:             {to: phaseKillRunning, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseKillRunning, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is being deleted: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is being deleted: cannot exec in a stopped container"},
		inPause:            {refused: "is already being deleted"},
		inResume:           {refused: "is already being deleted"},
		inExited:           {to: phaseDeleting, events: []string{"stopped"}, teardown: true},
	},
	phaseKillPaused: {
		inStart:            {refused: "is being deleted, not created"},
		inKill:             {to: phaseKillPaused, reply: "ok", signals: []sent{sigTerm}},
		inKillCgroup:       {to: phaseKillPaused, reply: "ok", signals: killCgroup, freezes: freezeThaw},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is being deleted: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is being deleted: cannot exec in a stopped container"},
		inPause:            {refused: "is already being deleted"},
		inResume:           {refused: "is already being deleted"},
		inExited:           {to: phaseDeleting, events: []string{"stopped"}, teardown: true},
	},
	phaseDeleting: {
		inStart:            {refused: "is stopped, not created"},
		inKill:             {refused: "is stopped: container not running"},
		inKillCgroup:       {refused: "is stopped: container not running"},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is stopped: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is stopped: cannot exec in a stopped container"},
		inPause:            {refused: "is stopped: container not running"},
		inResume:           {refused: "is stopped: container not paused"},
		inTornDown:         {to: phaseDeleted, events: []string{"deleted"}},
	},
	phaseDeleted: {
		inStart:            {refused: "is deleted, not created"},
		inKill:             {refused: "is deleted: container not running"},
		inKillCgroup:       {refused: "is deleted: container not running"},
		inDelete:           {refused: "is already being deleted"},
		inForceDelete:      {refused: "is already being deleted"},
		inExec:             {refused: "is stopped: cannot exec in a stopped container"},
		inExecIgnorePaused: {refused: "is stopped: cannot exec in a stopped container"},
		inPause:            {refused: "is deleted: container not running"},
		inResume:           {refused: "is deleted: container not paused"},
	},
}

// cellServer is a server in phase p as the loop leaves it, with no loop
// running: the test plays the loop and calls its handlers itself.
func cellServer(t testing.TB, p phase, k *fakeOps) (*server, *subscriber) {
	t.Helper()
	root := statedirtest.New(t, "c1")
	spec := testSpec()
	s := &server{
		log: log.New(io.Discard, "", 0), spec: spec, dir: statedir.At(root, "c1"),
		rec:   record{Root: root, ID: "c1", Bundle: "/b"},
		phase: p, c: fakeContainer("c1", "/b", spec),
		subs: map[*subscriber]bool{}, msgs: make(chan any, 16), quit: make(chan struct{}),
	}
	s.ops = k.ops(s)
	switch p {
	case phaseStartExited, phaseKillStartExited, phaseStopped, phaseDeleting, phaseDeleted:
		s.exit = &exitStatus{Status: 3}
	}
	if p.killing() || p == phaseDeleting || p == phaseDeleted {
		s.deleting = newReq(protocol.OpDelete)
	}
	s.saveState()
	sub := newSubscriber(nil)
	s.subs[sub] = true
	return s, sub
}

func newReq(op string) *request {
	return &request{req: protocol.Request{Op: op}, reply: make(chan protocol.Reply, 1), written: make(chan struct{})}
}

// apply feeds in to s as the loop would, and returns the request that
// carries its reply, if any.
func apply(s *server, in input) *request {
	switch in {
	case inKillCgroup:
		s.rec.SharedPidNS = true
		r := newReq(protocol.OpKill)
		r.req.Signal = 9
		s.handle(r)
		return r
	case inStart, inKill, inDelete, inForceDelete:
		r := newReq(map[input]string{inStart: protocol.OpStart, inKill: protocol.OpKill, inDelete: protocol.OpDelete, inForceDelete: protocol.OpDelete}[in])
		r.req.Signal, r.req.Force = 15, in == inForceDelete
		s.handle(r)
		return r
	case inPause, inResume:
		r := newReq(map[input]string{inPause: protocol.OpPause, inResume: protocol.OpResume}[in])
		s.handle(r)
		return r
	case inExec, inExecIgnorePaused:
		r := newReq(protocol.OpExec)
		r.req.Files, r.req.IgnorePaused = 1, in == inExecIgnorePaused
		r.files = []*os.File{os.Stdin}
		s.handle(r)
		if s.busy > 0 {
			// The exec stage ran in a goroutine: feed its outcome back.
			s.handle(<-s.msgs)
		}
		return r
	case inCreated:
		s.step(inCreated, nil)
	case inExited:
		s.exited(exitedWith(3), true)
	case inStarted, inStartFailed:
		r := newReq(protocol.OpStart)
		var err error
		if in == inStartFailed {
			err = errors.New("boom")
		}
		s.handle(startDone{req: r, err: err})
		return r
	case inThawed:
		s.step(inThawed, nil)
	case inTornDown:
		s.busy++
		s.handle(tornDown{})
	}
	return nil
}

// TestTableCells applies every input in every phase and checks what it
// did: the phase after, the reply, the events, the signals, the work
// started, and the status in the state file.
func TestTableCells(t *testing.T) {
	for p := phaseCreating; p < numPhases; p++ {
		for in := inNone + 1; in < numInputs; in++ {
			t.Run(fmt.Sprintf("%v/%v", p, in), func(t *testing.T) {
				want, possible := cellWants[p][in]
				if !possible {
					want = cellWant{to: p}
				}
				if want.refused != "" {
					want.to = p
				}
				k := newFakeOps()
				s, sub := cellServer(t, p, k)
				r := apply(s, in)
				checkCell(t, s, k, sub, r, want)
			})
		}
	}
}

func checkCell(t *testing.T, s *server, k *fakeOps, sub *subscriber, r *request, want cellWant) {
	t.Helper()
	if s.phase != want.to {
		t.Errorf("phase %v, want %v", s.phase, want.to)
	}
	var reply *protocol.Reply
	if r != nil {
		select {
		case rep := <-r.reply:
			reply = &rep
		default:
		}
	}
	switch {
	case want.refused != "":
		if reply == nil || reply.Code != protocol.CodeInvalidState || reply.Error != "container c1 "+want.refused {
			t.Errorf("reply %+v, want the refusal %q", reply, want.refused)
		}
	case want.reply == "ok":
		if reply == nil || !reply.OK {
			t.Errorf("reply %+v, want ok", reply)
		}
	case want.reply != "":
		if reply == nil || reply.OK || reply.Error != want.reply {
			t.Errorf("reply %+v, want error %q", reply, want.reply)
		}
	case reply != nil:
		t.Errorf("reply %+v, want none yet", reply)
	}
	if got := drainEvents(t, sub); strings.Join(got, " ") != strings.Join(want.events, " ") {
		t.Errorf("events %q, want %q", got, want.events)
	}
	for _, w := range want.signals {
		if got := k.nextSignal(t); got != w {
			t.Errorf("signal %+v, want %+v", got, w)
		}
	}
	k.noSignal(t)
	if got := k.freezesSent(); !slices.Equal(got, want.freezes) {
		t.Errorf("freezes %v, want %v (true: freeze, false: thaw)", got, want.freezes)
	}
	checkLaunched(t, k.start, "start", want.start)
	checkLaunched(t, k.teardown, "teardown", want.teardown)
	st, err := statedir.ReadState(s.rec.Root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != wantStatus[want.to] {
		t.Errorf("state file says %s, want %s", st.Status, wantStatus[want.to])
	}
}

// checkLaunched checks whether the goroutine of a blocking op was started,
// and lets it finish.
func checkLaunched(t *testing.T, g gate, what string, want bool) {
	t.Helper()
	if want {
		g.called(t, what)
		g.open(errors.New("not this time"))
		return
	}
	g.notCalled(t, what)
}

func drainEvents(t *testing.T, sub *subscriber) []string {
	t.Helper()
	var types []string
	for {
		select {
		case line := <-sub.ch:
			var ev protocol.Event
			if err := protocol.NewDecoder(strings.NewReader(string(line))).Decode(&ev); err != nil {
				t.Fatalf("event line %q: %v", line, err)
			}
			types = append(types, ev.Type)
		default:
			return types
		}
	}
}

// TestTableRequestsAlwaysAnswered: every request has a cell in every
// phase, so that no request ever goes unanswered.
func TestTableRequestsAlwaysAnswered(t *testing.T) {
	for p := phaseCreating; p < numPhases; p++ {
		for _, in := range []input{inStart, inKill, inKillCgroup, inDelete, inForceDelete, inExec, inExecIgnorePaused, inPause, inResume} {
			if c := transitions[p][in]; c.to == noPhase && c.refuse == allowed {
				t.Errorf("%v in phase %v has no cell", in, p)
			}
		}
	}
}

// TestRefusalNamesPhaseAndRequest: the typed error carries what the
// client's message does not.
func TestRefusalNamesPhaseAndRequest(t *testing.T) {
	var got *refusal
	err := error(&refusal{id: "c1", phase: phaseKillStarting, req: inStart, why: whyStartingAlready})
	if !errors.As(err, &got) || got.phase != phaseKillStarting || got.req != inStart || !errors.Is(err, protocol.ErrInvalidState) {
		t.Errorf("refusal %#v", got)
	}
	if err.Error() != "container c1 is already starting" {
		t.Errorf("message %q", err)
	}
	if p := phase(200); p.String() != "phase(200)" || input(200).String() != "input(200)" {
		t.Errorf("out-of-range names %q %q", p, input(200))
	}
	if phaseKillStarting.String() != "killing for delete, starting" || inForceDelete.String() != "delete --force" {
		t.Errorf("names %q %q", phaseKillStarting, inForceDelete)
	}
}

// TestStartWithoutProcess: a start that fails because the config has no
// process kills the init, so the container stops rather than sit in
// created for good.
func TestStartWithoutProcess(t *testing.T) {
	k := newFakeOps()
	s, sub := cellServer(t, phaseStarting, k)
	r := newReq(protocol.OpStart)
	s.handle(startDone{req: r, err: container.ErrNoProcess})
	if got := k.nextSignal(t); got != (sent{sig: 9}) {
		t.Errorf("signal %+v, want SIGKILL to the init", got)
	}
	if rep := <-r.reply; rep.OK || !strings.Contains(rep.Error, "no process") {
		t.Errorf("reply %+v", rep)
	}
	if s.phase != phaseCreated || len(drainEvents(t, sub)) != 0 {
		t.Errorf("phase %v", s.phase)
	}
}

// TestReapOnce: the init is reaped once; orphans only while no hook runs.
func TestReapOnce(t *testing.T) {
	k := newFakeOps()
	s, sub := cellServer(t, phaseRunning, k)
	k.exit(killedBy(9))
	s.busy = 1
	s.reap()
	k.exit(exitedWith(0))
	s.reap()
	if got := drainEvents(t, sub); len(got) != 1 || got[0] != "stopped" {
		t.Errorf("events %q, want one stopped", got)
	}
	if k.orphans != 0 {
		t.Errorf("orphans reaped while a hook ran")
	}
	s.busy = 0
	s.reap()
	if k.orphans != 1 || k.released != 1 {
		t.Errorf("orphans reaped %d times, container released %d times", k.orphans, k.released)
	}
	if s.exit.Status != 128+9 || s.exit.Signal != 9 {
		t.Errorf("exit %+v, want SIGKILL's", s.exit)
	}
}
