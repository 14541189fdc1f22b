//go:build cri

package cri

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	critestFlag     = flag.Bool("critest", false, "run critest (make critest), with each handler")
	critestHandlers = flag.String("critest-handlers", "crier,runc", "the handlers critest runs with, in turn")
	critestFocus    = flag.String("critest-focus", "", "a regexp: only the specs it matches (ginkgo's focus)")
)

// critestSkips are the specs critest runs offline without: each is a
// regexp of ginkgo's full spec text, and the reason. docs/kubernetes.md
// lists them.
var critestSkips = []struct{ pattern, reason string }{
	{`Image Manager`, "pulls images from registries (offline)"},
	{`Image Consistency`, "pulls images from registries (offline)"},
	{`Image Identifier Consistency`, "pulls images from registries (offline)"},
	{`Image Volume`, "pulls images; image volumes need containerd 2.1"},
	{`NRI`, "needs NRI, which containerd 1.6 does not have"},
	{`AppArmor`, "no AppArmor on this host"},
	{`SupplementalGroupsPolicy`, "needs containerd 2.0 and images with predefined users (pulled)"},
	{`UserNamespaces`, "pod user namespaces need containerd 2.0"},
	{`port mapping`, "needs the portmap CNI plugin, whose iptables chains are the host's, shared"},
	{`NoNewPrivs`, "pulls a special image (nonewprivs)"},
	{`Idempotence (StopPodSandbox|StopContainer) should not return an error if not found`, "containerd 1.6 answers NotFound (fixed in containerd 1.7)"},
}

// critestReport is what the tests read of ginkgo's JSON report.
type critestReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		State                   string
		RunTime                 time.Duration
		Failure                 struct{ Message string }
	}
}

// TestCritest runs the CRI validation suite offline with each handler in
// turn, against the same containerd, and checks that every spec that
// passes with runc passes with crier.
func TestCritest(t *testing.T) {
	if !*critestFlag {
		t.Skip("critest runs with -critest (make critest)")
	}
	if _, err := os.Stat(suite.critest); err != nil {
		t.Fatalf("%v (make cri-tools)", err)
	}
	var skips []string
	for _, s := range critestSkips {
		skips = append(skips, s.pattern)
	}
	passed := map[string]map[string]bool{}
	for _, name := range strings.Split(*critestHandlers, ",") {
		passed[name] = runCritest(t, name, strings.Join(skips, "|"))
	}
	crier, runc := passed["crier"], passed["runc"]
	if crier == nil || runc == nil {
		return
	}
	var missing []string
	for spec := range runc {
		if !crier[spec] {
			missing = append(missing, spec)
		}
	}
	sort.Strings(missing)
	for _, spec := range missing {
		t.Errorf("passes with runc, not with crier: %s", spec)
	}
	t.Logf("critest: %d specs pass with crier, %d with runc", len(crier), len(runc))
}

// runCritest runs critest with handler name and returns the specs that
// passed, each logged with its state. critest joins containerd's IPC
// namespace: the segment it makes "on the host" must be the one a
// host-IPC pod sees, and it goes with the namespace.
func runCritest(t *testing.T, name, skip string) map[string]bool {
	report := filepath.Join(suite.dir, "critest-"+name+".json")
	args := []string{
		fmt.Sprintf("--ipc=/proc/%d/ns/ipc", suite.containerd.Process.Pid), suite.critest,
		"-runtime-endpoint", "unix://" + suite.sock, "-image-endpoint", "unix://" + suite.sock,
		"-runtime-handler", name,
		"-ginkgo.skip", skip, "-ginkgo.no-color", "-ginkgo.json-report", report, "-ginkgo.timeout", "25m",
	}
	if *critestFocus != "" {
		args = append(args, "-ginkgo.focus", *critestFocus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 26*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Dir = suite.dir
	logPath := filepath.Join(suite.dir, "critest-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	begin := time.Now()
	runErr := cmd.Run()
	logf.Close()
	t.Logf("critest with %s: %v in %v", name, runErr, time.Since(begin).Round(time.Second))
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("critest with %s wrote no report: %v\n%s", name, err, logTail(logPath))
	}
	var r critestReport
	if err := json.Unmarshal(b, &r); err != nil || len(r) != 1 {
		t.Fatalf("critest's report %s: %v", report, err)
	}
	passed := map[string]bool{}
	counts := map[string]int{}
	skipRE := regexp.MustCompile(skip)
	for _, s := range r[0].SpecReports {
		if s.LeafNodeType != "It" {
			continue
		}
		spec := strings.Join(append(s.ContainerHierarchyTexts, s.LeafNodeText), " ")
		state := s.State
		if state == "skipped" && skipRE.MatchString(spec) {
			state = "skip-listed"
		}
		counts[state]++
		if state == "passed" {
			passed[spec] = true
		}
		if state == "skipped" {
			continue // out of focus, or a benchmark: counted, not listed
		}
		line := fmt.Sprintf("%s %-11s %s (%v)", name, state, spec, s.RunTime.Round(time.Millisecond))
		if state == "failed" {
			line += ":\n" + s.Failure.Message
		}
		t.Log(line)
	}
	t.Logf("critest with %s: %v", name, counts)
	return passed
}
