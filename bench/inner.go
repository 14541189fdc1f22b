package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// inner measures, in the private mount namespace the outer role made.
func inner() error {
	work, prefix := *flagWork, *flagID
	if work == "" || prefix == "" {
		return errors.New("-phase inner needs -work and -id")
	}
	// crun 1.8.1 refuses the hybrid layout; without the v2 mount every
	// runtime sees plain cgroup v1.
	if err := unix.Unmount("/sys/fs/cgroup/unified", 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("umount /sys/fs/cgroup/unified: %w", err)
	}
	// The sweep knows this run's processes by their mount namespace.
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err == nil {
		os.WriteFile(filepath.Join(work, "mntns"), []byte(ns), 0o644)
	}
	// State roots on a tmpfs, as /run is on a real host (here it is not).
	if err := os.MkdirAll(filepath.Join(work, "state"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", filepath.Join(work, "state"), "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount a tmpfs for the state roots: %w", err)
	}
	wait := *flagWait
	if wait == 0 {
		wait = time.Minute
		if *flagQuick {
			wait = 10 * time.Second
		}
	}
	spec, err := os.ReadFile(filepath.Join(work, "spec.json"))
	if err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(*flagBin)
	if err != nil {
		return err
	}
	b := &B{
		work: work, repo: *flagRepo, prefix: prefix, quick: *flagQuick, wait: wait,
		spec: spec, devnull: devnull,
		env:     []string{"PATH=" + benchPath, "HOME=/root"},
		live:    map[*runtime]map[string]bool{},
		conmons: map[int]bool{},
	}
	for _, d := range []string{"scratch", "stamps", "bundles", "state"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	runcBin, _ := exec.LookPath("runc")
	crunBin, _ := exec.LookPath("crun")
	b.crier = &runtime{name: "crier", bin: filepath.Join(bin, "crier"), root: filepath.Join(work, "state", "crier")}
	b.runc = &runtime{name: "runc", bin: runcBin, root: filepath.Join(work, "state", "runc")}
	b.crun = &runtime{name: "crun", bin: crunBin, root: filepath.Join(work, "state", "crun")}
	b.runcConmon = &runtime{name: "runc", bin: runcBin, root: filepath.Join(work, "state", "runc-conmon")}
	b.rts = []*runtime{b.crier, b.runc, b.crun}
	b.cliRts = []*runtime{b.crier, b.runc}
	if *flagRunc15 != "" {
		b.runc15 = &runtime{name: "runc 1.5.3", bin: *flagRunc15, root: filepath.Join(work, "state", "runc-1.5.3")}
		b.cliRts = append(b.cliRts, b.runc15)
	}
	b.cliRts = append(b.cliRts, b.crun)

	b.rep = &report{quick: b.quick, wait: wait.String(), machine: machine(), versions: b.versions(), key: map[string]float64{}}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		b.stopping.Store(true)
		fmt.Fprintln(os.Stderr, "bench: interrupted; cleaning up")
		b.cleanup()
		sweep(work, prefix)
		os.Exit(130)
	}()
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintln(os.Stderr, "bench: panic:", p)
			b.cleanup()
			sweep(work, prefix)
			panic(p)
		}
		b.cleanup()
		sweep(work, prefix)
	}()

	want := map[string]bool{}
	for _, s := range strings.Split(*flagOnly, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	on := func(name string) bool { return len(want) == 0 || want[name] }

	rep := b.rep
	sLife := rep.section("1. Lifecycle",
		"Each CLI step of a `/bin/true` container, the whole create+start+wait-for-exit+delete, `run` and `--version` (the binary's start-up floor); then the processes each step forks and the programs it execs, counted by the kernel.")
	sExit := rep.section("2. Exit notification",
		"How long after the container's process exits a subscriber that is not its parent learns it, and what waiting costs.")
	sMem := rep.section("3. Shim memory",
		"An idle supervisor per container, with 1, 50 and 500 containers at once (conmon and containerd-shim-runc-v2 with 1 and 50).")
	sTput := rep.section("4. Throughput")
	sFan := rep.section("5. Fan-out",
		"One container, 1000 subscribers.")
	sScale := rep.section("6. Scale",
		"The cost of one more container with many already running: is it flat?")
	sClients := rep.section("7. Under podman and containerd",
		"What a user of the clients feels: `podman run --rm` and `ctr run --rm` of /bin/true with crier and with runc as the runtime, and the memory of the supervisors, conmon and containerd-shim-runc-v2, beside crier's shim.")
	sOOM := rep.section("8. OOM notification",
		"How long after the kernel's OOM killer is invoked in a container's memory cgroup a subscriber that is already connected holds the shim's `oom` event.")

	steps := []struct {
		name string
		fn   func()
		secs []*section // the sections it writes, for the exec floor's line
	}{
		{"lifecycle", func() { b.lifecycle(sLife) }, []*section{sLife}},
		{"exit", func() { b.exitLatency(sExit) }, []*section{sExit}},
		{"wait", func() { b.waitCost(sExit) }, []*section{sExit}},
		{"oom", func() { b.oomLatency(sOOM) }, []*section{sOOM}},
		{"throughput", func() { b.throughput(sTput) }, []*section{sTput}},
		{"fanout", func() { b.fanout(sFan) }, []*section{sFan}},
		{"memory", func() { b.memory(sMem, sScale) }, []*section{sMem, sScale}},
		{"clients", func() { b.clients(sClients) }, []*section{sClients}},
	}
	runs := func(name string) bool { return on(name) || (name == "memory" && on("scale")) }
	nrun := 0
	for _, st := range steps {
		if runs(st.name) {
			nrun++
		}
	}
	t0 := time.Now()
	load0 := loadavg()
	// The exec floor in batches around the sections (floor.go).
	floor := newExecFloor(nrun, b.quick)
	floor.measure(b)
	secFloor := map[*section]*floorBatch{}
	for _, st := range steps {
		if !runs(st.name) {
			continue
		}
		if b.stopping.Load() {
			break
		}
		fmt.Printf("bench: %s (at %s)\n", st.name, time.Since(t0).Round(time.Second))
		st.fn()
		floor.measure(b)
		fb := floor.around(len(floor.batches) - 2)
		for _, sec := range st.secs {
			if secFloor[sec] == nil {
				secFloor[sec] = &floorBatch{}
			}
			secFloor[sec].trueMs = append(secFloor[sec].trueMs, fb.trueMs...)
			secFloor[sec].goMs = append(secFloor[sec].goMs, fb.goMs...)
		}
	}
	for _, sec := range rep.sections {
		if fb := secFloor[sec]; fb != nil && len(sec.parts) > 0 {
			sec.para("%s", fb.line())
		}
	}
	all := floor.all()
	ft, fg := summarize(all.trueMs), summarize(all.goMs)
	rep.machine = append(rep.machine,
		[2]string{"exec floor: fork+exec+wait of `/bin/true` (ms)", ft.cell() + fmt.Sprintf(", n %d over the whole run", ft.n)},
		[2]string{"exec floor: fork+exec+wait of a static Go hello (ms)", fg.cell() + fmt.Sprintf(", n %d over the whole run", fg.n)})
	b.rep.key["floor.true"], b.rep.key["floor.go"] = ft.p50, fg.p50
	var kept []*section
	for _, s := range rep.sections {
		if len(s.parts) > 0 {
			kept = append(kept, s)
		}
	}
	rep.sections = kept
	rep.summary = b.summary()
	rep.took = time.Since(t0).Round(time.Second).String() + " (measuring, without set-up)"
	rep.load = load0 + " → " + loadavg() + " (at the start, before the benchmark's own work, it is other work on the machine)"
	md := rep.markdown()
	fmt.Println()
	fmt.Println(md)
	out := *flagOut
	if out == "" && !b.quick && len(want) == 0 {
		out = filepath.Join(b.repo, "docs", "performance.md")
	}
	if out != "" {
		// The last run on a machine of the other class stays at the
		// end (othermachines.go).
		if old, err := os.ReadFile(out); err == nil {
			if floor, ok := b.rep.key["floor.true"]; ok {
				md = withOtherMachines(md, string(old), floor)
			}
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Printf("bench: wrote %s\n", out)
	}
	return nil
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// summary compares the headline figures with the targets of issues 4 and
// 14.
func (b *B) summary() *section {
	k := b.rep.key
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := k[n]; !ok {
				return false
			}
		}
		return true
	}
	s := &section{title: "Summary: crier against the targets"}
	b.lifeSummary(s)
	t := s.table("figure (medians)", "runc", "crun", "others", "crier", "target", "met?")
	verdict := func(v, target float64, lowerIsBetter bool) string {
		ok := v <= target
		if !lowerIsBetter {
			ok = v >= target
		}
		if ok {
			return "yes"
		}
		return "**no**: " + pct(v, target)
	}
	for _, op := range []struct{ key, label string }{{"create", "`create` after 50 ms idle, median (p90) (ms)"}, {"run", "`run` /bin/true after 50 ms idle, median (p90) (ms)"}} {
		pre := "spaced." + op.key + "."
		if !has(pre+"crier", pre+"crun") {
			continue
		}
		mp := func(rt string) string { return num(k[pre+rt]) + " (" + num(k[pre+rt+".p90"]) + ")" }
		others := ""
		if _, ok := k[pre+"runc 1.5.3"]; ok {
			others = "runc 1.5.3: " + mp("runc 1.5.3")
		}
		t.add(op.label, mp("runc"), mp("crun"), others, "**"+mp("crier")+"**", "–", "")
	}
	if has("exit.0.p50", "exit.1.p50") {
		worst := max(k["exit.0.p50"], k["exit.1.p50"])
		var others []string
		for _, o := range []struct{ tag, name string }{{"pidfd", "pidfd"}, {"conmon", "conmon exit file"}, {"containerd", "containerd event"}} {
			if v, ok := k["exit."+o.tag+".p50"]; ok {
				others = append(others, o.name+" "+num(v))
			}
		}
		crier := "CLI **" + num(k["exit.0.p50"]) + "**, Go **" + num(k["exit.1.p50"]) + "**"
		if v, ok := k["exit.all.p50"]; ok {
			crier += ", `event --all` " + num(v)
		}
		if v, ok := k["exit.own.p50"]; ok {
			crier += "; crier's own part (after the pidfd, same exit) " + num(v)
		}
		t.add("exit → subscriber, median (ms)", "poll 10 ms: "+num(k["exit.poll10.p50"]), "", strings.Join(others, ", "),
			crier, "≤ 1.0", verdict(worst, 1.0, true))
		worstP99 := max(k["exit.0.p99"], k["exit.1.p99"])
		t.add("exit → subscriber, p99 (ms)", "", "", "",
			"CLI **"+num(k["exit.0.p99"])+"**, Go **"+num(k["exit.1.p99"])+"**", "≤ 2", verdict(worstP99, 2, true))
	}
	if has("oom.cli.p50", "oom.go.p50") {
		ref := ""
		if v, ok := k["oom.eventfd.p50"]; ok {
			ref = "eventfd wake-up " + num(v)
		}
		t.add("OOM kill (eventfd) → `oom` event, median (p99) (ms)", "", "", ref,
			"CLI **"+num(k["oom.cli.p50"])+"** ("+num(k["oom.cli.p99"])+"), Go **"+num(k["oom.go.p50"])+"** ("+num(k["oom.go.p99"])+")", "–", "")
	}
	if has("wait.cli.pct", "wait.go.pct") {
		worst := max(k["wait.cli.pct"], k["wait.go.pct"])
		t.add("CPU while waiting (% of a core)", "poll 10 ms: "+num(k["wait.poll10.pct"])+" %", "", "",
			"CLI "+num(k["wait.cli.pct"])+" %, Go "+num(k["wait.go.pct"])+" %", "none (< 0.1 %)", verdict(worst, 0.1, true))
	}
	if has("mem.crier.50") {
		others := []string{}
		if v, ok := k["mem.conmon.50"]; ok {
			others = append(others, "conmon "+num(v))
		}
		if v, ok := k["mem.containerd.50"]; ok {
			others = append(others, "containerd-shim "+num(v))
		}
		if v, ok := k["mem.go.50"]; ok {
			others = append(others, "idle Go "+num(v))
		}
		t.add("idle shim USS at 50 containers (kB per shim)", "no shim", "no shim", strings.Join(others, ", "),
			"**"+num(k["mem.crier.50"])+"**", "≤ 700", verdict(k["mem.crier.50"], 700, true))
	}
	for _, c := range []struct{ name, label string }{{"podman", "`podman run --rm` /bin/true (ms)"}, {"ctr", "`ctr run --rm` /bin/true (ms)"}} {
		cr, rc := "e2e."+c.name+".crier", "e2e."+c.name+".runc"
		if has(cr, rc) && k[cr] > 0 && k[rc] > 0 {
			t.add(c.label, num(k[rc]), "", "", "**"+num(k[cr])+"**", "≤ runc", verdict(k[cr], k[rc], true))
		}
	}
	if has("tput.crier", "tput.runc", "tput.crun") {
		others := ""
		if v, ok := k["tput.runc 1.5.3"]; ok {
			others = "runc 1.5.3: " + num(v)
		}
		t.add("create+start throughput, 2 workers (/s)", num(k["tput.runc"]), num(k["tput.crun"]), others,
			"**"+num(k["tput.crier"])+"**", "≥ crun", verdict(k["tput.crier"], k["tput.crun"], false))
	}
	if len(t.rows) == 0 {
		// A run of a section or two: only the lifecycle table, if any.
		s.parts = s.parts[:len(s.parts)-1]
	}
	return s
}

// pct is how far v is above (+) or below (-) target, "+6.5 %".
func pct(v, target float64) string {
	d := 100 * (v - target) / target
	if d > -10 && d < 10 {
		return fmt.Sprintf("%+.1f %%", d)
	}
	return fmt.Sprintf("%+.0f %%", d)
}

// lifeSummary is the summary's first table: the lifecycle steps against
// crun 1.8.1 measured in the same run, at the median and at p90, with
// issue 14's targets (at or below 1.0 at both; the moonshot is 0.8).
func (b *B) lifeSummary(s *section) {
	k := b.rep.key
	get := func(op string, rt *runtime) (p50, p90 float64, ok bool) {
		if rt == nil {
			return 0, 0, false
		}
		p50, ok = k["life."+op+"."+rt.name]
		p90 = k["life."+op+"."+rt.name+".p90"]
		return p50, p90, ok && p50 > 0
	}
	if _, _, ok := get("cycle", b.crier); !ok {
		return
	}
	t := s.table("lifecycle step (ms, median (p90))", "runc", "runc 1.5.3", "crun", "crier", "crier ÷ crun, median", "crier ÷ crun, p90", "target", "met?")
	cell := func(op string, rt *runtime) string {
		p50, p90, ok := get(op, rt)
		if !ok {
			return "–"
		}
		return num(p50) + " (" + num(p90) + ")"
	}
	for _, op := range []struct {
		key, label string
		target     bool
	}{
		{"cycle", "create+start+wait+delete", true},
		{"create", "`create`", true},
		{"start", "`start`", true},
		{"state", "`state`", true},
		{"run", "`run` /bin/true", true},
		{"delete", "`delete`", false},
		{"version", "`--version`", false},
	} {
		c50, c90, ok1 := get(op.key, b.crier)
		u50, u90, ok2 := get(op.key, b.crun)
		if !ok1 || !ok2 {
			continue
		}
		r50, r90 := c50/u50, c90/u90
		target, met := "–", ""
		if op.target {
			target = "≤ 1.0 at both (moonshot 0.8)"
			switch {
			case r50 <= 0.8 && r90 <= 0.8:
				met = "yes, and the moonshot"
			case r50 <= 1 && r90 <= 1:
				met = "yes"
			default:
				met = "**no**: median " + pct(c50, u50) + ", p90 " + pct(c90, u90)
			}
		}
		t.add(op.label, cell(op.key, b.runc), cell(op.key, b.runc15), cell(op.key, b.crun), "**"+cell(op.key, b.crier)+"**",
			fmt.Sprintf("%.2f", r50), fmt.Sprintf("%.2f", r90), target, met)
	}
	s.para("The lifecycle figures of section 1, each step's ratio to crun 1.8.1 in the same run at the median and at p90 (each ratio divides crier's percentile by crun's). runc is Debian's 1.1.5.")
}
