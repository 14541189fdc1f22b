package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file tests capabilities as runc handles them (runc's
// capabilities.bats): a name crier does not know is ignored with a
// warning, an ambient capability that is not inheritable is skipped with a
// warning, and exec --cap raises an inheritable capability in the
// ambient set too.

// capLines returns the Cap* lines of /proc/self/status as printed by cat.
func capLines(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(k, "Cap") {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

func TestParityCapsUnknownIgnored(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"cat", "/proc/self/status"}, func(s *specs.Spec) {
		s.Process.Capabilities.Bounding = []string{"CAP_UNKNOWN", "UNKNOWN_CAP", "CAP_KILL"}
	})
	r := e.cliStart(nil, "run", "--bundle", b, e.id()).waitOK()
	caps := capLines(r.stdout)
	if caps["CapBnd"] != "0000000000000020" || caps["CapInh"] != "0000000000000000" || caps["CapAmb"] != "0000000000000000" {
		t.Errorf("caps %v: want bounding CAP_KILL alone", caps)
	}
	if !strings.Contains(r.stderr, "crier: warning: ignoring unknown or unavailable capabilities: [CAP_UNKNOWN UNKNOWN_CAP]") {
		t.Errorf("stderr %q: want the warning about the unknown names", r.stderr)
	}
}

func TestParityCapsAmbientNotInheritable(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"cat", "/proc/self/status"}, func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Permitted = append(c.Permitted, "CAP_CHOWN")
		c.Inheritable = []string{"CAP_KILL"}
		c.Ambient = []string{"CAP_KILL", "CAP_CHOWN"}
	})
	r := e.cliStart(nil, "run", "--bundle", b, e.id()).waitOK()
	if got := capLines(r.stdout)["CapAmb"]; got != "0000000000000020" {
		t.Errorf("CapAmb %s, want CAP_KILL alone (0x20)", got)
	}
	if !strings.Contains(r.stderr, "can't raise ambient capability CAP_CHOWN: ") || strings.Contains(r.stderr, "CAP_KILL") {
		t.Errorf("stderr %q: want runc's warning about CAP_CHOWN alone", r.stderr)
	}
}

func TestParityExecCapAmbient(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Inheritable: []string{"CAP_CHOWN", "CAP_SYSLOG"},
			Permitted:   []string{"CAP_KILL", "CAP_CHOWN"},
			Effective:   []string{"CAP_KILL"},
			Bounding:    []string{"CAP_KILL", "CAP_CHOWN", "CAP_SYSLOG"},
			Ambient:     []string{"CAP_CHOWN"},
		}
	})
	e.cliOK("run", "-d", "--bundle", b, id)
	caps := capLines(e.cliOK("exec", id, "cat", "/proc/self/status").stdout)
	if caps["CapAmb"] != "0000000000000001" || caps["CapInh"] != "0000000400000001" {
		t.Errorf("exec: caps %v, want ambient CAP_CHOWN, inheritable CAP_CHOWN and CAP_SYSLOG", caps)
	}
	caps = capLines(e.cliOK("exec", "--cap", "CAP_SYSLOG", id, "cat", "/proc/self/status").stdout)
	if caps["CapAmb"] != "0000000400000001" || caps["CapPrm"] != "0000000400000021" || caps["CapEff"] != "0000000400000021" {
		t.Errorf("exec --cap CAP_SYSLOG: caps %v, want it ambient, permitted and effective too", caps)
	}
	// Not inheritable: bounding, effective and permitted only.
	caps = capLines(e.cliOK("exec", "--cap", "CAP_KILL", id, "cat", "/proc/self/status").stdout)
	if caps["CapAmb"] != "0000000000000001" {
		t.Errorf("exec --cap CAP_KILL: CapAmb %s, want CAP_CHOWN alone", caps["CapAmb"])
	}
	e.cliOK("delete", "--force", id)
}
