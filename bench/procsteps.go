package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The lifecycle's process count: how many processes each runtime forks and
// how many programs it execs on each step, counted by the kernel (the
// process events connector, procevents.go) in a pass of its own after the
// timed runs, so that listening to every process event on the machine
// costs the timings nothing. On a machine where starting a program is
// slow, these counts, not CPU, decide the wall times (issue 14).

// A procWin is the window of one step: from just before the benchmark
// forks its first command to just after it reaps its last.
type procWin struct {
	rt     *runtime
	op     string
	iter   int
	t0, t1 int64
}

// procOps are the steps the table reports, in its order ("wait" is
// windowed too, so that what happens during it is not taken for "later").
var procOps = []struct{ op, label string }{
	{"create", "`create`"},
	{"start", "`start`"},
	{"state", "`state`"},
	{"delete", "`delete`"},
	{"cycle", "create+start+wait+delete"},
	{"run", "`run`"},
	{"version", "`--version`"},
}

// procPass runs the steps iters times per runtime, rotating, with the
// connector and taskstats listening, and returns the windows and events.
func (b *B) procPass(rts []*runtime, bundle string, iters int) ([]procWin, []procEvent, map[[2]int]taskFaults, bool, error) {
	pw, err := watchProcs(os.Getpid())
	if err != nil {
		return nil, nil, nil, false, err
	}
	fw, ferr := watchFaults()
	if ferr != nil {
		b.rep.fail("lifecycle page faults: %v", ferr)
	}
	s := b.newScratch()
	defer s.close()
	var wins []procWin
	var runErr error
	for it := 0; it < iters && runErr == nil; it++ {
		for k := range rts {
			rt := rts[(it+k)%len(rts)]
			if err := b.procSteps(s, rt, bundle, it, &wins); err != nil {
				runErr = fmt.Errorf("%s: %w", rt.name, err)
				break
			}
		}
	}
	evs, lost, err := pw.close()
	var faults map[[2]int]taskFaults
	if fw != nil {
		faults = fw.close()
	}
	if runErr != nil {
		return nil, nil, nil, false, runErr
	}
	return wins, evs, faults, lost, err
}

// procSteps runs one iteration of the steps for rt, each in a window.
func (b *B) procSteps(s *scratch, rt *runtime, bundle string, it int, wins *[]procWin) error {
	win := func(op string, fn func() error) error {
		t0 := mono()
		err := fn()
		*wins = append(*wins, procWin{rt: rt, op: op, iter: it, t0: t0, t1: mono()})
		return err
	}
	id := b.newID("p")
	fail := func(err error) error {
		b.deleteC(s, rt, id, true)
		return err
	}
	for _, st := range []struct {
		op string
		fn func() error
	}{
		{"create", func() error { return b.create(s, rt, bundle, id, nil).err }},
		{"state", func() error { return b.state(s, rt, id).err }},
		{"start", func() error { return b.start(s, rt, id).err }},
		{"wait", func() error { _, _, _, err := b.waitExit(s, rt, id); return err }},
		{"delete", func() error { return b.deleteC(s, rt, id, false).err }},
	} {
		if err := win(st.op, st.fn); err != nil {
			return fail(err)
		}
	}
	id = b.newID("p")
	err := win("cycle", func() error {
		if r := b.create(s, rt, bundle, id, nil); r.err != nil {
			return r.err
		}
		if r := b.start(s, rt, id); r.err != nil {
			return r.err
		}
		if _, _, _, err := b.waitExit(s, rt, id); err != nil {
			return err
		}
		return b.deleteC(s, rt, id, false).err
	})
	if err != nil {
		return fail(err)
	}
	id = b.newID("p")
	b.track(rt, id)
	if err := win("run", func() error { return b.exec(s, rt.argv("run", "--bundle", bundle, id), nil, 30e9).err }); err != nil {
		return fail(err)
	}
	b.untrack(rt, id)
	return win("version", func() error { return b.exec(s, []string{rt.bin, "--version"}, nil, 10e9).err })
}

// procTally is what one step of one runtime did in one iteration.
type procTally struct {
	procs, execs int
	chain        []string
	faults       uint64
	faultsPart   bool // a process it started has no exit accounting
}

// procLater is an exec that came outside the window of the step whose
// command started the process: in a later step's window, or between.
type procLater struct {
	rt          *runtime
	label, from string
	where       string // "in `state`'s window", "after `create`, between commands"
}

// tallyProcs attributes the events to the windows: an event counts for the
// step of its runtime during whose window it happened, whichever step's
// command started its process; an exec outside the window of the step
// that started its process is also listed as later.
func tallyProcs(wins []procWin, evs []procEvent, faults map[[2]int]taskFaults, root int) (map[*procWin]*procTally, []procLater) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ts < evs[j].ts })
	byTime := func(ts int64) *procWin {
		for i := range wins {
			if wins[i].t0 <= ts && ts <= wins[i].t1 {
				return &wins[i]
			}
		}
		return nil
	}
	// inWinOf is rt's window holding ts, or else the last one before it.
	inWinOf := func(rt *runtime, ts int64) (*procWin, bool) {
		var last *procWin
		for i := range wins {
			w := &wins[i]
			if w.rt != rt {
				continue
			}
			if w.t0 <= ts && ts <= w.t1 {
				return w, true
			}
			if w.t1 < ts {
				last = w
			}
		}
		return last, false
	}
	out := map[*procWin]*procTally{}
	get := func(w *procWin) *procTally {
		if out[w] == nil {
			out[w] = &procTally{}
		}
		return out[w]
	}
	origin := map[int]*procWin{} // process → the step whose command started it
	threads := map[int][]int{}   // process → its tasks (itself and its threads)
	var later []procLater
	for _, e := range evs {
		switch {
		case e.kind == procEventFork && e.thread:
			threads[e.threadTgid] = append(threads[e.threadTgid], e.tid)
			continue
		case e.kind == procEventFork && e.parent == root:
			origin[e.tgid] = byTime(e.ts)
		case e.kind == procEventFork:
			origin[e.tgid] = origin[e.parent]
		}
		o := origin[e.tgid]
		if o == nil || e.kind == procEventExit {
			continue
		}
		w, in := inWinOf(o.rt, e.ts)
		if e.kind == procEventFork {
			threads[e.tgid] = append(threads[e.tgid], e.tgid)
			if in {
				get(w).procs++
			}
			continue
		}
		label := e.label
		if label == "?" {
			label = exitComm(e, evs, faults)
		}
		if in && w != o {
			label += " (of " + o.op + ")"
		}
		if in {
			t := get(w)
			t.execs++
			t.chain = append(t.chain, label)
		}
		if !in || w != o {
			where := "in `" + w.op + "`'s window"
			if !in {
				where = "after `" + w.op + "` returned, between commands"
			}
			later = append(later, procLater{rt: o.rt, label: strings.TrimSuffix(label, " (of "+o.op+")"), from: o.op, where: where})
		}
	}
	if faults != nil {
		addFaults(origin, threads, faults, get)
	}
	return out, later
}

// addFaults gives each step the faults of the processes it started, over
// their whole lives: the sum over each process's tasks of their exit
// accounting.
func addFaults(origin map[int]*procWin, threads map[int][]int, faults map[[2]int]taskFaults, get func(*procWin) *procTally) {
	for pid, o := range origin {
		if o == nil {
			continue
		}
		t := get(o)
		for _, tid := range threads[pid] {
			f, ok := faults[[2]int{tid, pid}]
			if !ok {
				f, ok = faults[[2]int{tid, 0}]
			}
			if !ok {
				t.faultsPart = true
				continue
			}
			t.faults += f.minflt
		}
	}
}

// exitComm names a process that was gone before its exec could be read by
// its name at exit (taskstats), when it exec'd nothing after e: "true²"
// (marked, since a comm is at most 15 characters and no command line).
func exitComm(e procEvent, evs []procEvent, faults map[[2]int]taskFaults) string {
	for _, x := range evs {
		if x.kind == procEventExec && x.tgid == e.tgid && x.ts > e.ts {
			return "?"
		}
	}
	if f, ok := faults[[2]int{e.tgid, e.tgid}]; ok && f.comm != "" {
		return f.comm + "²"
	}
	return "?"
}

// procReport writes the table of processes and execs per step.
func (b *B) procReport(sec *section, rts []*runtime, bundle string) {
	iters := 3
	if b.quick {
		iters = 2
	}
	wins, evs, faults, lost, err := b.procPass(rts, bundle, iters)
	if err != nil {
		b.rep.fail("lifecycle processes and execs: %v", err)
		return
	}
	tallies, later := tallyProcs(wins, evs, faults, os.Getpid())
	sec.para("**Processes and execs per step**, counted by the kernel: the process events connector (netlink, `PROC_CN_MCAST_LISTEN`) reports every fork, exec and exit on the machine with a CLOCK_MONOTONIC stamp; the benchmark follows its own descendants by their fork events (a shim that daemonizes stays followed) and counts each event for the step during whose window it happened. Processes are forks of new processes, not threads, the CLI's own fork included; execs are every execve, the CLI's own and the container's included. The names are read from /proc/PID/cmdline and /proc/PID/exe the moment the exec event arrives (a mode word such as `init` or `--serve` kept; \"(sealed copy)\": the program re-exec'd itself from a sealed memfd or a read-only bind mount of its own binary, as crun 1.8.1 does on every call and runc 1.1.5 in `runc init` (with execveat, which `strace -e execve` does not show); \"[crier-shim]\": the file behind a bare argv[0] that names another); a process gone before the read is named by its comm at exit, marked ², or `?`, so that those names are racy but the counts are not. %d iterations per runtime in a pass of their own after the timed runs; a cell gives the range when the iterations differ, and the list the most common order (with how often when not always).", iters)
	head := []string{"step", "runtime", "processes", "execs", "what was exec'd, in order"}
	if faults != nil {
		head = append(head, "minor faults ¹")
	}
	t := sec.table(head...)
	for _, o := range procOps {
		for _, rt := range rts {
			var procs, execs, flt []float64
			chains := map[string]int{}
			part := false
			for i := range wins {
				w := &wins[i]
				if w.rt != rt || w.op != o.op {
					continue
				}
				tl := tallies[w]
				if tl == nil {
					tl = &procTally{}
				}
				procs = append(procs, float64(tl.procs))
				execs = append(execs, float64(tl.execs))
				flt = append(flt, float64(tl.faults))
				part = part || tl.faultsPart
				chains[strings.Join(tl.chain, " → ")]++
			}
			if len(procs) == 0 {
				continue
			}
			row := []string{o.label, rt.name, countCell(procs), countCell(execs), commonChain(chains, len(procs))}
			if faults != nil {
				c := num(summarize(flt).p50)
				if part {
					c += " (partial)"
				}
				row = append(row, c)
			}
			t.add(row...)
			b.rep.key["procs."+o.op+"."+rt.name] = summarize(procs).p50
			b.rep.key["execs."+o.op+"."+rt.name] = summarize(execs).p50
		}
	}
	if notes := laterNotes(later); notes != "" {
		sec.para("Execs outside the window of the step whose command started the process (counted above in the window they fell in, marked \"(of step)\"): %s.", notes)
	} else {
		sec.para("No exec came outside the window of the step whose command started its process.")
	}
	if faults != nil {
		sec.para("¹ Minor page faults of the processes the step started, summed over their threads and their whole lives (a shim's until `delete`), the median of the iterations: from the kernel's taskstats exit accounting (genetlink TASKSTATS, registered for every CPU), since no rusage covers processes nobody waits for. Each exec of a Go binary maps and touches its runtime afresh, so on a slow machine these are much of a step's cost. \"partial\": a process of the step had no exit record (still running at the end of the pass).")
	} else {
		sec.para("Page faults are not reported: the kernel's taskstats interface was not available here, and no other record covers the processes nobody waits for.")
	}
	if lost {
		sec.para("**The connector's queue overflowed during the pass (ENOBUFS): some events are missing and the counts above may be low.**")
		b.rep.fail("lifecycle processes and execs: the netlink connector dropped events")
	}
}

// countCell is "3" when every iteration agrees, else "3–4".
func countCell(xs []float64) string {
	d := summarize(xs)
	if d.min == d.max {
		return strconv.Itoa(int(d.min))
	}
	return fmt.Sprintf("%d–%d", int(d.min), int(d.max))
}

// commonChain is the most frequent exec order, with its share when not all.
func commonChain(chains map[string]int, n int) string {
	best, bn := "", -1
	for c, k := range chains {
		if k > bn || (k == bn && c < best) {
			best, bn = c, k
		}
	}
	if best == "" {
		best = "–"
	}
	if bn < n {
		best += fmt.Sprintf(" (%d of %d)", bn, n)
	}
	return best
}

// laterNotes groups the later execs: "crier: crier-shim --serve of `create`:
// in `state`'s window ×2, after `create` returned ×1".
func laterNotes(later []procLater) string {
	type k struct{ rt, label, from string }
	where := map[k]map[string]int{}
	var keys []k
	for _, l := range later {
		kk := k{l.rt.name, l.label, l.from}
		if where[kk] == nil {
			where[kk] = map[string]int{}
			keys = append(keys, kk)
		}
		where[kk][l.where]++
	}
	var parts []string
	for _, kk := range keys {
		var ws []string
		for w, n := range where[kk] {
			ws = append(ws, fmt.Sprintf("%s ×%d", w, n))
		}
		sort.Strings(ws)
		parts = append(parts, fmt.Sprintf("%s: `%s` of a process `%s` started: %s", kk.rt, kk.label, kk.from, strings.Join(ws, ", ")))
	}
	return strings.Join(parts, "; ")
}
