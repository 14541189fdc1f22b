package test

import (
	"strings"
	"testing"
)

// TestParityHelpUnknownCommand: `crier foo -h` fails, naming foo, as
// runc's "No help topic for 'foo'" (help.bats); a command's -h succeeds.
func TestParityHelpUnknownCommand(t *testing.T) {
	e := newEnv(t)
	for _, flag := range []string{"-h", "--help"} {
		wantCLIError(t, "foo "+flag, e.cliRun("foo", flag), "No help topic for 'foo'")
		if r := e.cliOK("list", flag); !strings.Contains(r.stdout, "list") {
			t.Errorf("list %s printed %q", flag, r.stdout)
		}
	}
	if r := e.cliOK("-h"); !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("-h printed %q", r.stdout)
	}
}

// TestParityListOrder: list prints the containers by ID, whatever order
// they were created in (list.bats).
func TestParityListOrder(t *testing.T) {
	e := newEnv(t)
	base := e.id()
	ids := []string{base + "-c", base + "-a", base + "-b"}
	for _, id := range ids {
		e.create(id, e.bundle([]string{"true"}, nil))
	}
	want := base + "-a\n" + base + "-b\n" + base + "-c\n"
	if out := e.cliOK("list", "-q").stdout; out != want {
		t.Errorf("list -q = %q, want %q", out, want)
	}
	lines := strings.Split(strings.TrimSpace(e.cliOK("list").stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], base+"-a ") || !strings.HasPrefix(lines[3], base+"-c ") {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}
	for _, id := range ids {
		e.cliOK("delete", "--force", id)
	}
}
