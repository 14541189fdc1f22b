package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// dist summarises samples.
type dist struct {
	n                            int
	p10, p50, p90, p99, max, min float64
}

func summarize(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		// Linear interpolation between closest ranks.
		x := p * float64(len(s)-1)
		i := int(math.Floor(x))
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (x-float64(i))*(s[i+1]-s[i])
	}
	return dist{n: len(s), p10: q(0.10), p50: q(0.50), p90: q(0.90), p99: q(0.99), max: s[len(s)-1], min: s[0]}
}

// num formats a value with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// cell is "median (p10–p90)".
func (d dist) cell() string {
	if d.n == 0 {
		return "–"
	}
	return fmt.Sprintf("**%s** (%s–%s)", num(d.p50), num(d.p10), num(d.p90))
}

// ratio is a/b of the medians, as "0.93×".
func ratio(a, b dist) string {
	if a.n == 0 || b.n == 0 || b.p50 == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.p50/b.p50)
}

type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) markdown() string {
	var sb strings.Builder
	sb.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for range t.head {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, r := range t.rows {
		for len(r) < len(t.head) {
			r = append(r, "")
		}
		sb.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return sb.String()
}

// A section is one numbered part of the report.
type section struct {
	title string
	intro []string // paragraphs before the tables
	parts []any    // *table or string (a paragraph), in order
}

func (s *section) para(format string, args ...any) {
	s.parts = append(s.parts, fmt.Sprintf(format, args...))
}
func (s *section) table(head ...string) *table {
	t := &table{head: head}
	s.parts = append(s.parts, t)
	return t
}

func (s *section) markdown() string {
	var sb strings.Builder
	sb.WriteString("## " + s.title + "\n\n")
	for _, p := range s.intro {
		sb.WriteString(p + "\n\n")
	}
	for _, p := range s.parts {
		switch p := p.(type) {
		case *table:
			sb.WriteString(p.markdown() + "\n")
		case string:
			sb.WriteString(p + "\n\n")
		}
	}
	return sb.String()
}

type report struct {
	quick    bool
	wait     string
	took     string // how long the run took
	load     string // load averages at the start and the end
	machine  [][2]string
	versions [][2]string
	summary  *section
	sections []*section
	failures []string
	// key figures for the summary, by name
	key map[string]float64
	// servingWait is the longest the memory section waited, after its
	// second of idle, for crier's shims to serve from their serving image.
	servingWait time.Duration
}

func (r *report) section(title string, intro ...string) *section {
	s := &section{title: title, intro: intro}
	r.sections = append(r.sections, s)
	return s
}

func (r *report) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.failures = append(r.failures, msg)
	fmt.Fprintln(os.Stderr, "bench: FAILED:", msg)
}

func (r *report) markdown() string {
	var sb strings.Builder
	sb.WriteString("# Performance\n\n")
	sb.WriteString("Written by `make bench` (`go run ./bench`, source in [bench/](../bench)); do not edit by hand. ")
	sb.WriteString("Run it as root on a fresh clone (about 10 minutes: it installs runc, crun, conmon, containerd and podman from Debian if they are missing, and the first time builds runc 1.5.3); `make bench BENCH_FLAGS=-quick` is a short check that writes nothing, and `BENCH_FLAGS='-only clients'` runs one section, writing nothing unless `-out FILE` is given (`go run ./bench -h` lists the sections). ")
	sb.WriteString("crier, runc (Debian's 1.1.5) and crun (Debian's 1.8.1, the anchor of every ratio) ran on the same busybox bundle (the runtime-tools v0.9.0 rootfs, runc's default spec), and runc 1.5.3, the newest release (`go install -tags seccomp github.com/opencontainers/runc@v1.5.3`, or `make runc-suite`'s), beside them in the lifecycle and throughput sections, ")
	sb.WriteString("interleaved run by run so that machine noise hits them alike; all figures come from this one run. Each runtime has its own `--root` on a tmpfs (as /run is on a real host), and everything runs in a private mount namespace (`unshare -m`) where /sys/fs/cgroup/unified is unmounted, because crun 1.8.1 refuses this machine's hybrid cgroup layout: all of them see plain cgroup v1. crier runs from a copy of `bin/` the benchmark writes afresh, each binary with one write (as `make build` and `make install` write them), so that the page cache holds it in 2 MB folios: a binary the kernel has dropped from the page cache and read back in 4 kB pages (these machines drop what was not used for a minute) made create 0.7 ms and run 0.5 ms slower here; the shim's serving image brings the CLI binary back in 2 MB folios (docs/performance-notes.md). ")
	sb.WriteString("Times are medians with p10–p90 in brackets; ratios divide medians unless they say p90. ")
	sb.WriteString("The exec floor, fork+exec+wait of `/bin/true` and of a static Go program whose main returns, timed as the CLI steps are, is measured before, between and after the sections: the machine table gives the whole run's, each section the floor around it. It tells a fast machine from a slow one: crier's steps start several programs, so on a machine where starting one is slow they fall behind (issue 14), and the lifecycle section counts the processes and execs of each step to say how many.\n\n")
	if r.quick {
		sb.WriteString("**This is a `-quick` run: few samples, a " + r.wait + " wait and 100 containers instead of 500. Do not quote it.**\n\n")
	}
	mt := &table{head: []string{"machine", ""}}
	for _, kv := range r.machine {
		mt.add(kv[0], kv[1])
	}
	if r.took != "" {
		mt.add("this run took", r.took)
	}
	if r.load != "" {
		mt.add("load average (1 min) at start → end", r.load)
	}
	sb.WriteString(mt.markdown() + "\n")
	vt := &table{head: []string{"software", "version"}}
	for _, kv := range r.versions {
		vt.add(kv[0], kv[1])
	}
	sb.WriteString(vt.markdown() + "\n")
	if len(r.failures) > 0 {
		sb.WriteString("**Failures during this run** (their figures are missing or partial):\n\n")
		for _, f := range r.failures {
			sb.WriteString("- " + strings.ReplaceAll(f, "\n", " ") + "\n")
		}
		sb.WriteString("\n")
	}
	if r.summary != nil {
		sb.WriteString(r.summary.markdown())
	}
	for _, s := range r.sections {
		sb.WriteString(s.markdown())
	}
	return sb.String()
}
