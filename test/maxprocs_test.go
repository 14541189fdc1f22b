package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crier's entry point starts the Go runtime with one P by putting
// GOMAXPROCS=1 in front of the environment (internal/prefork, issue 14).
// That is the runtime's business only: a program crier runs with the
// caller's environment (ps is the one) must get the caller's, without the
// variable when the caller had none and with the caller's value when it
// had one.
func TestMaxprocsNotInherited(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, nil))
	defer e.cliOK("delete", "--force", id)

	// A ps that records its environment and lists nothing.
	bin := filepath.Join(e.dir, "fakeps")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(e.dir, "ps.env")
	script := "#!/bin/sh\nenv > " + envFile + "\necho '  PID TTY          TIME CMD'\n"
	if err := os.WriteFile(filepath.Join(bin, "ps"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, callers string // the caller's GOMAXPROCS ("" for none)
	}{{"caller without", ""}, {"caller with", "3"}} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(envFile)
			env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
			if tc.callers != "" {
				env = append(env, "GOMAXPROCS="+tc.callers)
			}
			p := e.cliStart(func(c *exec.Cmd) { c.Env = env }, "ps", id)
			p.waitOK()
			b, err := os.ReadFile(envFile)
			if err != nil {
				t.Fatalf("the fake ps did not run: %v", err)
			}
			var got []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "GOMAXPROCS=") {
					got = append(got, l)
				}
			}
			want := ""
			if tc.callers != "" {
				want = "GOMAXPROCS=" + tc.callers
			}
			if strings.Join(got, ",") != want {
				t.Errorf("ps's environment has %q, want %q", got, want)
			}
		})
	}
}
