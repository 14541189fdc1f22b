package main

import (
	"time"
)

// spaced times `create` and `run` of the /bin/true container for every
// runtime with the machine left idle for a pause before each, rotating
// the order: how a user at a shell, or an engine starting one container
// now and then, meets them, where the lifecycle table above has them back
// to back. The pause matters to the kernel: moving a process into a
// cgroup by its pid takes the threadgroup lock, and the first taker after
// a quiet spell waits for an RCU grace period (docs/performance-notes.md);
// back to back, most creates find it still warm from the one before.
func (b *B) spaced(sec *section, bundle string) {
	n, pause := 30, 50*time.Millisecond
	if b.quick {
		n = 4
	}
	s := b.newScratch()
	defer s.close()
	wall := map[string]map[*runtime][]float64{"create": {}, "run": {}}
	failed := map[*runtime]int{}
	for it := 0; it < n; it++ {
		for k := range b.cliRts {
			rt := b.cliRts[(it+k)%len(b.cliRts)]
			for _, op := range []string{"create", "run"} {
				if b.stopping.Load() {
					return
				}
				if failed[rt] >= 3 {
					continue
				}
				time.Sleep(pause)
				id := b.newID("p")
				var r result
				if op == "create" {
					r = b.create(s, rt, bundle, id, nil)
				} else {
					b.track(rt, id)
					r = b.exec(s, rt.argv("run", "--bundle", bundle, id), nil, 30*time.Second)
				}
				if r.err != nil {
					failed[rt]++
					b.rep.fail("spaced %s %s: %v", op, rt.name, r.err)
				} else {
					wall[op][rt] = append(wall[op][rt], r.ms())
				}
				// A run deletes its container; a failed one may not have.
				if op == "create" || r.err != nil {
					b.deleteC(s, rt, id, true)
				} else {
					b.untrack(rt, id)
				}
			}
		}
	}
	sec.para("**Spaced out.** The same `create` and `run` with the machine left idle for %d ms before each, as a user at a shell or an engine starting a container now and then meets them, rather than back to back: wall time in ms, %d of each per runtime, rotating. Moving a process into a cgroup by its pid (as runc and crun move their init) takes the kernel's threadgroup lock, whose first taker after a quiet spell waits for an RCU grace period; back to back, most creates find it still warm from the one before. crier's init moves its main thread into its v1 cgroups itself, which skips the lock.", pause.Milliseconds(), n)
	t := b.crunTable(sec, "step after a pause")
	for _, op := range []struct{ key, label string }{{"create", "`create` (/bin/true)"}, {"run", "`run` /bin/true (foreground)"}} {
		d := map[*runtime]dist{}
		for _, rt := range b.cliRts {
			d[rt] = summarize(wall[op.key][rt])
			b.rep.key["spaced."+op.key+"."+rt.name] = d[rt].p50
			b.rep.key["spaced."+op.key+"."+rt.name+".p90"] = d[rt].p90
		}
		b.crunRow(t, op.label, d)
	}
}
