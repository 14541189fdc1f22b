package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// stats are the soak's figures, counted by name.
type stats struct {
	mu     sync.Mutex
	counts map[string]int
	// badRuns are samples of CLI runs that failed without one clear line,
	// or hung.
	badRuns []string
	// lives: lifecycles per kill point; failed: those with a problem.
	lives  map[string]int
	failed int
	runs   []time.Duration // elapsed of every CLI run that was not killed
}

func (st *stats) count(name string, n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.counts == nil {
		st.counts = map[string]int{}
	}
	st.counts[name] += n
}

func (st *stats) get(name string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.counts[name]
}

// addRun counts a finished CLI run: one the soak killed counts as such;
// any other either succeeded, or failed with one line on stderr, or is
// bad; one that outlived cliTimeout hung.
func (st *stats) addRun(r *result) {
	verb := r.args[0]
	switch {
	case r.killed:
		st.count("CLI runs killed by the soak", 1)
	case r.hung:
		st.count("CLI runs hung", 1)
		st.bad(r)
	case r.code == 0:
		st.count("CLI runs succeeded", 1)
	case oneLine(r.stderr):
		st.count("CLI runs failed with one line", 1)
		st.count("  failed: "+verb+": "+errorGist(r.stderr), 1)
	default:
		st.count("CLI runs failed without one clear line", 1)
		st.bad(r)
	}
	if !r.killed {
		st.mu.Lock()
		st.runs = append(st.runs, r.elapsed)
		st.mu.Unlock()
	}
}

// errorGist is an error line without what differs from one container to
// the next, to count errors of a kind together.
func errorGist(stderr string) string {
	var words []string
	for _, w := range strings.Fields(stderr) {
		if strings.Contains(w, "soak") || strings.ContainsAny(w, "0123456789") {
			w = "…"
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

func (st *stats) bad(r *result) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.badRuns) < 20 {
		st.badRuns = append(st.badRuns, r.String())
	}
}

func (st *stats) addLife(l *life) {
	kill := l.kill
	if l.how != "" {
		kill += "/" + l.how
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lives == nil {
		st.lives = map[string]int{}
	}
	st.lives[kill]++
	if len(l.problems) > 0 {
		st.failed++
	}
}

func (st *stats) addSubscriber(sub *subscriber) {
	st.count("subscribers "+sub.kind, 1)
	switch {
	case sub.left.Load():
		st.count("subscribers that left on purpose", 1)
	case sub.cut.Load():
		st.count("subscribers cut off by a shim kill", 1)
	default:
		st.count("subscribers that stayed connected", 1)
	}
}

// addExit counts a container's stopped event (nil: none came) against
// what it must say: per container, as the first subscriber to see it, or
// the crier event that brought the shim back, got it.
func (st *stats) addExit(want expectation, ev *protocol.Event) {
	what := "exits seen by a shim"
	if want.kind == expectUnknownOK {
		what = "exits with no shim alive"
	}
	switch {
	case want.check(ev) != nil:
		st.count(what+": wrong or lost", 1)
	case ev.ExitUnknown:
		st.count(what+": stopped says exitUnknown", 1)
	default:
		st.count(what+": stopped exact", 1)
	}
}

func (st *stats) addDeleteRetries(try int) {
	st.count("delete --force drives", 1)
	st.count("delete --force retries", try)
}

// bad reports whether any figure that must be zero is not.
func (st *stats) isBad() bool {
	for _, k := range []string{"CLI runs hung", "CLI runs failed without one clear line", "subscribers that stayed: stopped wrong or missing",
		"exits seen by a shim: wrong or lost", "exits with no shim alive: wrong or lost", "subscribers that stayed: stream bad", "subscribers hung"} {
		if st.get(k) > 0 {
			return true
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.failed > 0
}

func (st *stats) passed(n int) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return n - st.failed
}

// print prints the figures.
func (s *soak) print(elapsed time.Duration, l leaks) {
	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	n := s.o.n
	fmt.Printf("\nsoak: %d lifecycles in %v (%.0f ms each, %.1f per second), load average now %s\n",
		n, elapsed.Round(time.Second), float64(elapsed.Milliseconds())/float64(n), float64(n)/elapsed.Seconds(), loadAvg())
	fmt.Println("kill points:")
	for _, k := range sortedKeys(st.lives) {
		fmt.Printf("  %-28s %5d\n", k, st.lives[k])
	}
	fmt.Println("figures:")
	for _, k := range sortedKeys(st.counts) {
		fmt.Printf("  %-60s %6d\n", k, st.counts[k])
	}
	if len(st.runs) > 0 {
		rs := slices.Clone(st.runs)
		slices.Sort(rs)
		fmt.Printf("  CLI run time: median %v, p99 %v, max %v\n", rs[len(rs)/2].Round(time.Millisecond),
			rs[len(rs)*99/100].Round(time.Millisecond), rs[len(rs)-1].Round(time.Millisecond))
	}
	for _, b := range st.badRuns {
		fmt.Println("  bad run:", b)
	}
	fmt.Println("left behind (all must be 0):")
	l.print()
	fmt.Printf("lifecycles with a problem: %d\n", st.failed)
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
