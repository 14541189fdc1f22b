package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Machines of this kind differ: on one, starting a process costs three
// times what it costs on another, and crier's figures against crun's move
// with it (issue 14). A run writes docs/performance.md whole, so that the
// figures of one machine never mix with another's; but the report keeps,
// at its end, the summary of the last run on a machine of the other
// class, carried over from the report it replaces.

// fastFloor is the exec floor (fork+exec+wait of /bin/true, ms) below which
// a machine counts as fast: 0.8 ms on the fast ones seen, 2.2-2.7 on the
// slow ones.
const fastFloor = 1.5

// otherHeading starts the section that holds the other machines' runs.
const otherHeading = "## Runs on other machines"

func machineClass(floorMs float64) string {
	if floorMs < fastFloor {
		return "fast"
	}
	return "slow"
}

func classTitle(class string) string {
	if class == "fast" {
		return fmt.Sprintf("The last run on a fast machine (exec floor of `/bin/true` under %v ms)", fastFloor)
	}
	return fmt.Sprintf("The last run on a slow machine (exec floor of `/bin/true` of %v ms or more)", fastFloor)
}

var (
	floorRow  = regexp.MustCompile("(?m)^\\| exec floor: fork\\+exec\\+wait of `/bin/true` \\(ms\\) \\| \\*\\*([0-9.]+)\\*\\*")
	classMark = regexp.MustCompile(`<!-- class: (\w+) -->`)
)

// withOtherMachines appends to md, the report of a run whose exec floor
// was floorMs, the runs on machines of another class that old, the report
// it replaces, holds: old's own summary when old's machine was of another
// class, and the other runs old carried, unless of this run's class.
func withOtherMachines(md, old string, floorMs float64) string {
	class := machineClass(floorMs)
	own, carried, _ := strings.Cut(old, "\n"+otherHeading+"\n")
	blocks := map[string]string{}
	for _, b := range strings.Split(carried, "\n### ")[1:] {
		if m := classMark.FindStringSubmatch(b); m != nil && m[1] != class {
			_, body, _ := strings.Cut(b, "\n")
			blocks[m[1]] = strings.TrimSpace(body)
		}
	}
	if m := floorRow.FindStringSubmatch(own); m != nil {
		floor, err := strconv.ParseFloat(m[1], 64)
		if oc := machineClass(floor); err == nil && oc != class {
			if s := summaryOf(own); s != "" {
				blocks[oc] = s
			}
		}
	}
	if len(blocks) == 0 {
		return md
	}
	var sb strings.Builder
	sb.WriteString(strings.TrimRight(md, "\n") + "\n\n" + otherHeading + "\n\n")
	sb.WriteString("Carried over from the reports this one replaced, as those runs wrote them: the machine, the software and the summary of the last run on a machine of another class, so that the figures of a fast and a slow machine stand side by side. Their sections are in the git history of this file.\n")
	classes := make([]string, 0, len(blocks))
	for c := range blocks {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range classes {
		fmt.Fprintf(&sb, "\n### %s <!-- class: %s -->\n\n%s\n", classTitle(c), c, blocks[c])
	}
	return sb.String()
}

// summaryOf returns a report's machine and software tables and its
// summary: from the machine table to the first numbered section.
func summaryOf(report string) string {
	i := strings.Index(report, "| machine |")
	if i < 0 {
		return ""
	}
	s := report[i:]
	if j := strings.Index(s, "\n## 1. "); j >= 0 {
		s = s[:j]
	}
	// Its headings go below the carried run's own.
	s = strings.ReplaceAll(s, "\n## ", "\n#### ")
	return strings.TrimSpace(s)
}
