package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// The machine's exec floor: fork+exec+wait of /bin/true and of a static,
// stripped Go program whose main returns (bench/gohello, built as crier
// is), timed as every CLI step is (b.exec). Starting a process costs
// three times as much on some machines of the same kind as on others
// (issue 14), and crier's steps start several: the floor, measured in the
// same run beside every table, tells a reader which machine a table
// comes from. It is measured in batches before the first section, between
// sections and after the last, /bin/true and the Go program alternating;
// each section reports the batches on either side of it.

// floorTotal is about how many runs of each program a whole run makes.
const floorTotal = 200

// floorBatch is one batch of samples, ms.
type floorBatch struct{ trueMs, goMs []float64 }

// execFloor is the batches of one run, in order.
type execFloor struct {
	per     int // runs of each program per batch
	batches []floorBatch
}

// newExecFloor spreads floorTotal runs of each program over the batches
// that steps sections make (one more batch than sections).
func newExecFloor(steps int, quick bool) *execFloor {
	per := max(20, (floorTotal+steps)/(steps+1))
	if quick {
		per = max(10, per/4)
	}
	return &execFloor{per: per}
}

// measure adds one batch.
func (f *execFloor) measure(b *B) {
	s := b.newScratch()
	defer s.close()
	hello := filepath.Join(b.work, "gohello")
	var fb floorBatch
	for i := 0; i < f.per; i++ {
		if r := b.exec(s, []string{"/bin/true"}, nil, 10*time.Second); r.err == nil {
			fb.trueMs = append(fb.trueMs, r.ms())
		}
		if r := b.exec(s, []string{hello}, nil, 10*time.Second); r.err == nil {
			fb.goMs = append(fb.goMs, r.ms())
		}
	}
	f.batches = append(f.batches, fb)
}

// around pools the batches i and i+1: those before and after step i.
func (f *execFloor) around(i int) floorBatch {
	var fb floorBatch
	for j := i; j <= i+1 && j < len(f.batches); j++ {
		fb.trueMs = append(fb.trueMs, f.batches[j].trueMs...)
		fb.goMs = append(fb.goMs, f.batches[j].goMs...)
	}
	return fb
}

// all pools every batch.
func (f *execFloor) all() floorBatch {
	var fb floorBatch
	for _, x := range f.batches {
		fb.trueMs = append(fb.trueMs, x.trueMs...)
		fb.goMs = append(fb.goMs, x.goMs...)
	}
	return fb
}

// line is the sentence under a section's tables.
func (fb floorBatch) line() string {
	t, g := summarize(fb.trueMs), summarize(fb.goMs)
	return fmt.Sprintf("Exec floor in this run, measured just before and after this section (fork+exec+wait from the benchmark, as the CLI steps are timed; %d runs each): `/bin/true` %s ms, Go hello %s ms.", t.n, t.cell(), g.cell())
}
