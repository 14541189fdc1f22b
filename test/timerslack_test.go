package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// timerSlack reads a thread's timer slack (ns), or "" when it is gone.
func timerSlack(tid string) string {
	b, err := os.ReadFile("/proc/" + tid + "/timerslack_ns")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TestTimerSlackOnlyDuringCreate: create's fork and the init stage give
// their runtime's monitor thread a long timer slack while they create
// (internal/sysmon), and every thread its own back before anything they
// start could inherit it: once created, the threads of both have the
// caller's, and so do the create's hooks, the container's process and an
// exec'd process.
func TestTimerSlackOnlyDuringCreate(t *testing.T) {
	t.Parallel()
	own := timerSlack("self")
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, nil)
	hd := e.hostDir("hooks")
	sh := filepath.Join(b, "rootfs", "bin", "sh")
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: sh, Args: []string{"sh", "-c", "cat /proc/self/timerslack_ns > " + filepath.Join(hd, name)}}
	}
	editBundle(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart:      []specs.Hook{hook("prestart")}, //nolint:staticcheck // still part of the spec
			CreateRuntime: []specs.Hook{hook("createRuntime")},
		}
	})
	e.create(id, b)
	for _, name := range []string{"prestart", "createRuntime"} {
		got, err := os.ReadFile(filepath.Join(hd, name))
		if err != nil || strings.TrimSpace(string(got)) != own {
			t.Errorf("%s hook: timer slack %q (%v), want the caller's %s", name, got, err, own)
		}
	}
	shimPid := e.shimState(id).ShimPid
	initPid := strconv.Itoa(e.state(id).Pid)
	ents, err := os.ReadDir("/proc/" + initPid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if s := timerSlack(ent.Name()); s != own {
			t.Errorf("init stage (pid %s), once created: thread %s has timer slack %q ns, want the caller's %s", initPid, ent.Name(), s, own)
		}
	}

	// The create image re-executes once idle for 200 ms; a reading taken
	// while its command line stayed the create image's is the create
	// image's.
	if !servingImage(t, shimPid) {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(shimPid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		var odd []string
		for _, ent := range ents {
			if s := timerSlack(ent.Name()); s != "" && s != own {
				odd = append(odd, ent.Name()+": "+s)
			}
		}
		switch {
		case servingImage(t, shimPid):
			t.Log("the shim re-executed while read; not checking the create image")
		case len(odd) > 0:
			t.Errorf("create image (shim %d), once created: threads with a timer slack other than the caller's %s ns: %v", shimPid, own, odd)
		}
	}
	e.cliOK("start", id)
	if s := timerSlack(strconv.Itoa(e.state(id).Pid)); s != own {
		t.Errorf("container's process: timer slack %q ns, want the caller's %s", s, own)
	}
	r := e.cliRun("exec", id, "cat", "/proc/self/timerslack_ns")
	if r.code != 0 || strings.TrimSpace(r.stdout) != own {
		t.Errorf("exec'd process: exit %d, %q (stderr %q), want timer slack %s", r.code, r.stdout, r.stderr, own)
	}
	e.cliOK("delete", "--force", id)
}
