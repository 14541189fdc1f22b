package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// lifecycle times each CLI step of a /bin/true container, the whole
// create+start+wait+delete, run and --version, for every runtime in turn
// (runc 1.5.3 too), rotating the order each iteration; then counts the
// processes and execs of each step in a pass of its own (procsteps.go).
func (b *B) lifecycle(sec *section) {
	n, warm := 150, 3
	if b.quick {
		n, warm = 8, 1
	}
	bundle, err := b.makeBundle("true", "/bin/true")
	if err != nil {
		b.rep.fail("lifecycle: %v", err)
		return
	}
	type key struct {
		rt *runtime
		op string
	}
	wall := map[key][]float64{}
	cpu := map[key][]float64{}
	calls := map[*runtime][]float64{}
	var shimCPU []float64
	failed := map[*runtime]int{}
	s := b.newScratch()
	defer s.close()

	once := func(rt *runtime, rec bool) error {
		add := func(op string, r result) {
			if rec {
				wall[key{rt, op}] = append(wall[key{rt, op}], r.ms())
				cpu[key{rt, op}] = append(cpu[key{rt, op}], r.cpuMs())
			}
		}
		// The steps one by one.
		id := b.newID("l")
		r := b.create(s, rt, bundle, id, nil)
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		add("create", r)
		r = b.state(s, rt, id)
		if st, _ := status(r.out); r.err == nil && st != "created" {
			r.err = fmt.Errorf("%s state %s: status %q, want created", rt.name, id, st)
		}
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		add("state", r)
		if r = b.start(s, rt, id); r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		add("start", r)
		w, c, _, err := b.waitExit(s, rt, id)
		if err != nil {
			b.deleteC(s, rt, id, true)
			return err
		}
		add("wait", result{wall: w, cpu: c})
		if rt == b.crier && rec {
			if pid := b.shimPid(id); pid > 0 {
				shimCPU = append(shimCPU, float64(schedCPU(pid))/1e6)
			}
		}
		if r = b.deleteC(s, rt, id, false); r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		add("delete", r)

		// The whole cycle as a script runs it.
		id = b.newID("c")
		t0 := mono()
		var sum time.Duration
		r = b.create(s, rt, bundle, id, nil)
		sum += r.cpu
		if r.err == nil {
			r = b.start(s, rt, id)
			sum += r.cpu
		}
		var n int
		if r.err == nil {
			_, c, n, r.err = b.waitExit(s, rt, id)
			sum += c
		}
		if r.err == nil {
			r = b.deleteC(s, rt, id, false)
			sum += r.cpu
		}
		t1 := mono()
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		add("cycle", result{wall: time.Duration(t1 - t0), cpu: sum})
		if rec {
			calls[rt] = append(calls[rt], float64(n))
		}

		// run in the foreground: create, start, wait, delete in one command.
		id = b.newID("r")
		b.track(rt, id)
		r = b.exec(s, rt.argv("run", "--bundle", bundle, id), nil, 30*time.Second)
		if r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		b.untrack(rt, id)
		add("run", r)

		r = b.exec(s, []string{rt.bin, "--version"}, nil, 10*time.Second)
		if r.err != nil {
			return r.err
		}
		add("version", r)
		return nil
	}

	for it := -warm; it < n; it++ {
		for k := range b.cliRts {
			rt := b.cliRts[(it+warm+k)%len(b.cliRts)]
			if failed[rt] >= 3 {
				continue
			}
			if err := once(rt, it >= 0); err != nil {
				if err == errStopping {
					return
				}
				failed[rt]++
				b.rep.fail("lifecycle %s: %v", rt.name, err)
			}
		}
	}

	ops := []struct{ op, label string }{
		{"create", "`create` (/bin/true)"},
		{"start", "`start`"},
		{"state", "`state` (created)"},
		{"delete", "`delete` (stopped)"},
		{"wait", "wait for exit ¹"},
		{"cycle", "**create+start+wait+delete** ²"},
		{"run", "`run` /bin/true (foreground)"},
		{"version", "`--version`"},
	}
	for _, kind := range []string{"wall", "cpu"} {
		data := wall
		if kind == "cpu" {
			data = cpu
			sec.para("CPU time of the CLI process itself (rusage of the child, user + system, in ms; it includes the children the CLI waits for, not the shim or container init it leaves running):")
		} else {
			sec.para("Wall time in ms, from fork to reaping the CLI:")
		}
		t := b.crunTable(sec, "step")
		for _, o := range ops {
			d := map[*runtime]dist{}
			for _, rt := range b.cliRts {
				d[rt] = summarize(data[key{rt, o.op}])
				if kind == "wall" {
					b.rep.key["life."+o.op+"."+rt.name] = d[rt].p50
					b.rep.key["life."+o.op+"."+rt.name+".p90"] = d[rt].p90
				}
			}
			b.crunRow(t, o.label, d)
		}
	}
	cr, cu := summarize(calls[b.runc]), summarize(calls[b.crun])
	sec.para("¹ crier: one `crier event --event stopped ID`, which returns at once when the shim already has the stopped event and otherwise waits for it to be pushed. runc and crun have no way to wait for a container they are not the parent of, so their user polls `state` until it says stopped; here back to back with no pause, the fastest (and costliest) a poller can learn it. /bin/true has usually exited by the first call: in the full cycle runc needed %s `state` calls at the median (max %s), crun %s (max %s).",
		num(cr.p50), num(cr.max), num(cu.p50), num(cu.max))
	sec.para("² Timed from the fork of `create` to the reaping of `delete`, as a script runs the four commands; the CPU figure adds up the CLI processes.")
	if d := summarize(shimCPU); d.n > 0 {
		sec.para("Not in the tables: crier's shim, which outlives `create`, used %s ms of CPU (p10–p90 %s–%s, from /proc/PID/task/*/schedstat) per /bin/true container from its start to the stopped event. runc's and crun's equivalent work is done by `runc init`/crun's child inside the container process before it execs, which no rusage above counts either.",
			num(d.p50), num(d.p10), num(d.p90))
		b.rep.key["life.shimcpu"] = d.p50
	}
	sec.para("%d iterations per runtime after %d warm-up iterations; each iteration runs the steps for every runtime in a rotating order. runc is Debian's 1.1.5, runc 1.5.3 the newest release (built with `go install -tags seccomp`), crun Debian's 1.8.1, the anchor of every ratio.", n, warm)
	b.procReport(sec, b.cliRts, bundle)
	b.spaced(sec, bundle)
}

// crunTable is a table of the CLI runtimes' figures, first naming its
// rows, then one column per runtime and one of each one's ratio to crun
// (crunRow).
func (b *B) crunTable(sec *section, first string) *table {
	head := []string{first}
	for _, rt := range b.cliRts {
		head = append(head, rt.name)
	}
	for _, rt := range b.cliRts {
		if rt != b.crun {
			head = append(head, rt.name+" ÷ crun")
		}
	}
	return sec.table(head...)
}

// crunRow adds a row of crunTable: each runtime's d, then its median's
// ratio to crun's.
func (b *B) crunRow(t *table, label string, d map[*runtime]dist) {
	row := []string{label}
	for _, rt := range b.cliRts {
		row = append(row, d[rt].cell())
	}
	for _, rt := range b.cliRts {
		if rt != b.crun {
			row = append(row, ratio(d[rt], d[b.crun]))
		}
	}
	t.add(row...)
}

// shimPid returns the pid of the crier shim of container id.
func (b *B) shimPid(id string) int {
	raw, err := os.ReadFile(filepath.Join(b.crier.root, id, "state.json"))
	if err != nil {
		return 0
	}
	var st struct {
		ShimPid int `json:"shimPid"`
	}
	json.Unmarshal(raw, &st)
	return st.ShimPid
}

// schedCPU is the CPU time of every thread of pid so far, in ns, from
// schedstat (nanosecond resolution, unlike /proc/PID/stat's ticks).
func schedCPU(pid int) int64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var sum int64
	for _, t := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(raw))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	return sum
}
