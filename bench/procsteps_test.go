package main

import (
	"strings"
	"testing"
)

// TestTallyProcs checks the attribution of process events to steps: by
// window, with the events of a process a previous step started counted
// where they happened and listed as later, threads not counted as
// processes, and faults summed over a process's threads for the step that
// started it.
func TestTallyProcs(t *testing.T) {
	rt := &runtime{name: "crier"}
	other := &runtime{name: "crun"}
	wins := []procWin{
		{rt: rt, op: "create", t0: 100, t1: 200},
		{rt: other, op: "create", t0: 210, t1: 240},
		{rt: rt, op: "state", t0: 300, t1: 400},
	}
	const root = 1
	evs := []procEvent{
		{kind: procEventFork, ts: 110, parent: root, tgid: 10, tid: 10},
		{kind: procEventExec, ts: 111, tgid: 10, label: "crier"},
		{kind: procEventFork, ts: 112, parent: 10, tgid: 10, tid: 12, thread: true, threadTgid: 10},
		{kind: procEventFork, ts: 120, parent: 10, tgid: 11, tid: 11},
		{kind: procEventExec, ts: 130, tgid: 11, label: "crier-shim"},
		{kind: procEventFork, ts: 215, parent: root, tgid: 30, tid: 30},
		{kind: procEventExec, ts: 216, tgid: 30, label: "crun"},
		{kind: procEventExec, ts: 250, tgid: 11, label: "late"},
		{kind: procEventFork, ts: 310, parent: root, tgid: 20, tid: 20},
		{kind: procEventExec, ts: 311, tgid: 20, label: "crier"},
		{kind: procEventExec, ts: 350, tgid: 11, label: "crier-shim --serve"},
		{kind: procEventExit, ts: 390, tgid: 20},
	}
	faults := map[[2]int]taskFaults{
		{10, 10}: {tgid: 10, minflt: 100},
		{12, 10}: {tgid: 10, minflt: 5},
		{11, 11}: {tgid: 11, minflt: 50},
		{20, 20}: {tgid: 20, minflt: 7},
	}
	out, later := tallyProcs(wins, evs, faults, root)
	check := func(w *procWin, procs, execs int, chain string, flt uint64) {
		t.Helper()
		got := out[w]
		if got == nil {
			t.Fatalf("%s %s: no tally", w.rt.name, w.op)
		}
		if got.procs != procs || got.execs != execs || strings.Join(got.chain, " → ") != chain || got.faults != flt {
			t.Errorf("%s %s: procs %d execs %d chain %q faults %d; want %d %d %q %d",
				w.rt.name, w.op, got.procs, got.execs, strings.Join(got.chain, " → "), got.faults, procs, execs, chain, flt)
		}
	}
	check(&wins[0], 2, 2, "crier → crier-shim", 155)
	check(&wins[2], 1, 2, "crier → crier-shim --serve (of create)", 7)
	check(&wins[1], 1, 1, "crun", 0)
	if out[&wins[0]].faultsPart || out[&wins[2]].faultsPart {
		t.Errorf("crier: faults marked partial though every task has an exit record")
	}
	if !out[&wins[1]].faultsPart {
		t.Errorf("crun create: faults not marked partial though its process has no exit record")
	}
	want := []string{"late|after `create` returned, between commands", "crier-shim --serve|in `state`'s window"}
	if len(later) != len(want) {
		t.Fatalf("later: %+v, want %v", later, want)
	}
	for i, l := range later {
		if got := l.label + "|" + l.where; got != want[i] || l.from != "create" || l.rt != rt {
			t.Errorf("later %d: %q from %s (%s), want %q from create (crier)", i, got, l.from, l.rt.name, want[i])
		}
	}
}
