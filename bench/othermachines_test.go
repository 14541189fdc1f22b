package main

import (
	"strings"
	"testing"
)

// fakeReport is a report as a run writes it, with the given exec floor.
func fakeReport(floor, marker string) string {
	return "# Performance\n\nintro\n\n| machine |  |\n|---|---|\n| exec floor: fork+exec+wait of `/bin/true` (ms) | **" + floor +
		"** (1–2), n 207 over the whole run |\n\n| software | version |\n|---|---|\n| crier | " + marker +
		" |\n\n## Summary: crier against the targets\n\n| step | ratio |\n|---|---|\n| create | " + marker +
		" |\n\n## 1. Lifecycle\n\nsection of " + marker + "\n"
}

func TestWithOtherMachines(t *testing.T) {
	slowOld := fakeReport("2.35", "slow-old")
	fastOld := fakeReport("0.790", "fast-old")
	cases := []struct {
		name      string
		old       string
		floor     float64
		want      []string // in the result, in this order
		wantNot   []string
		unchanged bool
	}{
		{name: "no old report", old: "", floor: 0.8, unchanged: true},
		{name: "old of the same class", old: fastOld, floor: 0.8, unchanged: true},
		{name: "old of the other class", old: slowOld, floor: 0.8,
			want:    []string{"section of new", otherHeading, "### The last run on a slow machine", "<!-- class: slow -->", "| crier | slow-old |", "#### Summary: crier against the targets", "| create | slow-old |"},
			wantNot: []string{"section of slow-old", "fast machine"}},
		{name: "carried run kept by a run of the same class as the old one", old: withOtherMachines(fastOld, slowOld, 0.79), floor: 0.7,
			want:    []string{"section of new", "<!-- class: slow -->", "| create | slow-old |"},
			wantNot: []string{"fast-old"}},
		{name: "carried run replaced by a run of its class", old: withOtherMachines(fastOld, slowOld, 0.79), floor: 2.4,
			want:    []string{"section of new", "<!-- class: fast -->", "| create | fast-old |"},
			wantNot: []string{"slow-old", "<!-- class: slow -->"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := fakeReport("x", "new")
			got := withOtherMachines(md, tc.old, tc.floor)
			if tc.unchanged {
				if got != md {
					t.Errorf("changed the report:\n%s", got)
				}
				return
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("%q missing (or out of order) in:\n%s", w, got)
				}
				at += i + len(w)
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("%q in:\n%s", w, got)
				}
			}
		})
	}
}
