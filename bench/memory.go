package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mem is one process's memory in kB, from /proc/PID/smaps_rollup.
type mem struct{ rss, pss, uss int }

func smaps(pid int) mem {
	var m mem
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(string(f[1]))
		switch string(f[0]) {
		case "Rss:":
			m.rss = v
		case "Pss:":
			m.pss = v
		case "Private_Clean:", "Private_Dirty:":
			m.uss += v
		}
	}
	return m
}

// memRow summarises the memory of a set of processes: the median process
// and the sum.
func memRow(t *table, name string, n int, pids []int) (ussMedian float64) {
	var rss, pss, uss []float64
	var total int
	for _, p := range pids {
		m := smaps(p)
		if m.rss == 0 {
			continue
		}
		rss = append(rss, float64(m.rss))
		pss = append(pss, float64(m.pss))
		uss = append(uss, float64(m.uss))
		total += m.uss
	}
	if len(uss) == 0 {
		t.add(name, strconv.Itoa(n), "no process found")
		return 0
	}
	r, p, u := summarize(rss), summarize(pss), summarize(uss)
	t.add(name, strconv.Itoa(n), strconv.Itoa(len(uss)), num(r.p50), num(p.p50), "**"+num(u.p50)+"**",
		num(u.min)+"–"+num(u.max), num(float64(total)/1024))
	return u.p50
}

// memory measures idle supervisors beside crier's shim, and with it the
// scale figures: crier, runc and crun each grow to 500 running containers,
// with the cost of one more container at 0, 50 and 500.
func (b *B) memory(mem, scale *section) {
	counts := []int{1, 50, 500}
	if b.quick {
		counts = []int{1, 50, 100}
	}
	const extra = 25 // "one more" samples at each checkpoint
	bundle, err := b.makeBundle("sleep", "/bin/sleep", "1000")
	if err != nil {
		b.rep.fail("memory: %v", err)
		return
	}
	mt := mem.table("supervisor, idle", "containers", "processes", "RSS (kB)", "PSS (kB)", "**USS (kB)**", "USS range", "USS total (MB)")
	st := scale.table("runtime", "containers running", "`create` one more (ms)", "`start` (ms)", "`delete --force` (ms)", "growing to it: create+start")

	last := counts[len(counts)-1]
	// Up through the counts, then down again to 50 and 0: if the figures
	// on the way down match those on the way up, a change is the
	// containers' doing and not drift in the machine.
	type step struct {
		n    int
		down bool
	}
	steps := []step{{n: 0}}
	for _, c := range counts {
		steps = append(steps, step{n: c})
	}
	steps = append(steps, step{n: 50, down: true}, step{n: 0, down: true})
	for _, rt := range b.rts {
		var ids []string
		for _, stp := range steps {
			c := stp.n
			rate := ""
			switch {
			case c > len(ids):
				more := make([]string, c-len(ids))
				for i := range more {
					more[i] = b.newID("m")
				}
				d, err := b.parallel(2, more, b.launch(rt, bundle))
				ids = append(ids, more...)
				if err != nil {
					b.rep.fail("scale %s to %d: %v", rt.name, c, err)
				}
				rate = num(float64(len(more))/d.Seconds()) + " /s"
				time.Sleep(time.Second) // idle
			case c < len(ids):
				if _, err := b.parallel(2, ids[c:], b.remove(rt)); err != nil {
					b.rep.fail("scale %s: delete: %v", rt.name, err)
				}
				ids = ids[:c]
				time.Sleep(time.Second)
			}
			if rt == b.crier && c > 0 && !stp.down {
				var pids []int
				for _, id := range ids {
					if p := b.shimPid(id); p > 0 {
						pids = append(pids, p)
					}
				}
				// Idle is in the serving image: after a burst of
				// creates the shims put off their re-exec until a
				// CPU is free (shim/idle.go).
				if waited := waitServing(pids, 30*time.Second); waited > b.rep.servingWait {
					b.rep.servingWait = waited
				}
				u := memRow(mt, "crier-shim", c, pids)
				b.rep.key[fmt.Sprintf("mem.crier.%d", c)] = u
			}
			if c == 1 {
				continue
			}
			cr, sr, dr := b.oneMore(rt, bundle, extra)
			label := strconv.Itoa(c)
			if stp.down {
				label += " (on the way down)"
			}
			st.add(rt.name, label, summarize(cr).cell(), summarize(sr).cell(), summarize(dr).cell(), rate)
			key := fmt.Sprintf("scale.%s.%d", rt.name, c)
			if stp.down {
				key += ".down"
			}
			b.rep.key[key] = summarize(cr).p50
		}
		if _, err := b.parallel(2, ids, b.remove(rt)); err != nil {
			b.rep.fail("scale %s: delete: %v", rt.name, err)
		}
		if b.stopping.Load() {
			return
		}
	}
	k := b.rep.key
	var flat []string
	for _, rt := range b.rts {
		c0, cN, c0d := k[fmt.Sprintf("scale.%s.0", rt.name)], k[fmt.Sprintf("scale.%s.%d", rt.name, last)], k[fmt.Sprintf("scale.%s.0.down", rt.name)]
		if c0 > 0 && cN > 0 && c0d > 0 {
			flat = append(flat, fmt.Sprintf("%s %.2f× (and %.2f× against none on the way down)", rt.name, cN/c0, cN/c0d))
		}
	}
	if len(flat) > 0 {
		scale.para("**Flat?** `create` with %d running against none, medians: %s. crier's per-shim USS: %s kB with 1 container, %s kB with 50, %s kB with %d.",
			last, strings.Join(flat, "; "), num(k["mem.crier.1"]), num(k["mem.crier.50"]), num(k[fmt.Sprintf("mem.crier.%d", last)]), last)
	}
	scale.para("Each runtime in turn grows to %d running `sleep 1000` containers (2 workers, create+start; the last column is that rate), then shrinks to 50 and 0 again. At 0, 50 and %d running, and at 50 and 0 on the way down, %d more containers are created, started and force-deleted one at a time; the table gives their medians (p10–p90). Unlike the other sections, the runtimes are measured one after another here, so compare a runtime's rows with each other rather than across runtimes. crier's shim memory at the same points is in the memory table above.", counts[len(counts)-1], counts[len(counts)-1], extra)

	if b.haveConmon() {
		b.conmonMemory(mt, bundle)
	} else {
		mt.add("conmon", "–", "not installed")
	}
	if b.haveContainerd() {
		b.containerdMemory(mt)
	} else {
		mt.add("containerd-shim-runc-v2", "–", "not installed")
	}
	b.goBaseline(mt)
	mem.para("Each row is the median process of its kind (RSS, PSS, USS) while that many containers run `sleep 1000`; USS is Private_Clean + Private_Dirty from /proc/PID/smaps_rollup, what the process alone costs; PSS shares the shared pages out among the processes mapping them. crier has one shim per container, conmon one conmon per container (supervising runc), containerd one containerd-shim-runc-v2 per container (`ctr run --rootfs`, no image; containerd itself not counted). The idle Go program is this benchmark's exit-stamp helper (CGO_ENABLED=0, -ldflags '-s -w', `time.Sleep`) run on the host: the floor for a Go shim. Measured after 1 s idle, and for crier once every shim serves from its serving image: after a burst of creates a shim puts off its re-exec while the CPUs are all taken (at most 10 s); the longest wait for that here was %v after the 1 s.", b.rep.servingWait.Round(time.Millisecond))
}

// oneMore creates, starts and force-deletes n containers one at a time.
func (b *B) oneMore(rt *runtime, bundle string, n int) (create, start, del []float64) {
	s := b.newScratch()
	defer s.close()
	for i := 0; i < n; i++ {
		id := b.newID("o")
		r := b.create(s, rt, bundle, id, nil)
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			b.rep.fail("scale %s: %v", rt.name, r.err)
			return
		}
		create = append(create, r.ms())
		if r = b.start(s, rt, id); r.err != nil {
			b.deleteC(s, rt, id, true)
			b.rep.fail("scale %s: %v", rt.name, r.err)
			return
		}
		start = append(start, r.ms())
		if r = b.deleteC(s, rt, id, true); r.err != nil {
			b.rep.fail("scale %s: %v", rt.name, r.err)
			return
		}
		del = append(del, r.ms())
	}
	return
}

func (b *B) conmonMemory(t *table, bundle string) {
	s := b.newScratch()
	defer s.close()
	var ids []string
	var pids []int
	defer func() {
		for _, id := range ids {
			b.deleteC(s, b.runcConmon, id, true)
		}
		for _, p := range pids {
			b.conmonForget(p)
		}
	}()
	for _, c := range []int{1, 50} {
		for len(ids) < c {
			id := b.newID("mm")
			ids = append(ids, id)
			pid, err := b.conmonCreate(id, bundle)
			if pid > 0 {
				pids = append(pids, pid)
			}
			if err == nil {
				err = b.start(s, b.runcConmon, id).err
			}
			if err != nil {
				b.rep.fail("conmon memory: %v", err)
				return
			}
		}
		time.Sleep(time.Second)
		u := memRow(t, "conmon (+ runc)", c, pids)
		b.rep.key[fmt.Sprintf("mem.conmon.%d", c)] = u
	}
}

func (b *B) containerdMemory(t *table) {
	if err := b.startContainerd(); err != nil {
		b.rep.fail("containerd memory: %v", err)
		return
	}
	defer b.stopContainerd()
	s := b.newScratch()
	defer s.close()
	var ids []string
	defer func() {
		for _, id := range ids {
			b.ctrRemove(s, id)
		}
	}()
	for _, c := range []int{1, 50} {
		for len(ids) < c {
			id := b.newID("mc")
			ids = append(ids, id)
			if r := b.ctrRun(s, id, "", "/bin/sleep", "1000"); r.err != nil {
				b.rep.fail("containerd memory: %v", r.err)
				return
			}
		}
		time.Sleep(time.Second)
		u := memRow(t, "containerd-shim-runc-v2", c, b.containerdShims())
		b.rep.key[fmt.Sprintf("mem.containerd.%d", c)] = u
	}
}

// goBaseline runs the exit-stamp helper, a trivial idle Go program, on the
// host: 1 and then 50 copies.
func (b *B) goBaseline(t *table) {
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	for _, n := range []int{1, 50} {
		for len(cmds) < n {
			c := exec.Command(filepath.Join(b.work, "exitstamp"), "1h")
			c.Stdin, c.Stdout, c.Stderr = b.devnull, b.devnull, b.devnull
			if err := c.Start(); err != nil {
				b.rep.fail("Go baseline: %v", err)
				return
			}
			cmds = append(cmds, c)
		}
		time.Sleep(time.Second)
		var pids []int
		for _, c := range cmds {
			pids = append(pids, c.Process.Pid)
		}
		u := memRow(t, "idle Go program (CGO off, -s -w)", n, pids)
		b.rep.key[fmt.Sprintf("mem.go.%d", n)] = u
	}
}

// waitServing waits, up to limit, until every shim in pids runs its
// serving image, and returns how long that took.
func waitServing(pids []int, limit time.Duration) time.Duration {
	t0 := time.Now()
	for _, pid := range pids {
		for time.Since(t0) < limit {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || strings.Contains(string(b), "--serve") {
				break
			}
			// A shim says nothing when it has re-executed.
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(t0)
}
