package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// This file tests the process's environment as runc makes it (runc's
// env.bats): a name given twice keeps its last value, once; HOME, missing
// or empty, comes from the container's /etc/passwd for the process's uid,
// else "/"; for the init and for exec'd processes alike.

// envOf runs `env` in a container whose process has env and the user uid,
// and returns the lines it printed.
func envOf(t *testing.T, e *env, env []string, uid uint32, prepare func(rootfs string)) []string {
	t.Helper()
	b := e.bundle([]string{"env"}, func(s *specs.Spec) {
		s.Process.Env = env
		s.Process.User = specs.User{UID: uid, GID: uid}
	})
	if prepare != nil {
		prepare(filepath.Join(b, "rootfs"))
	}
	out, ev := e.run(e.id(), b, nil)
	if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
		t.Fatalf("env exited %+v; output:\n%s", ev, out)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// wantEnvLines checks that lines hold exactly want, in any order.
func wantEnvLines(t *testing.T, what string, lines []string, want ...string) {
	t.Helper()
	got := map[string]int{}
	for _, l := range lines {
		got[l]++
	}
	for _, w := range want {
		if got[w] != 1 {
			t.Errorf("%s: %q printed %d times, want once; env:\n%s", what, w, got[w], strings.Join(lines, "\n"))
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%s: %d variables, want %d (%q); env:\n%s", what, len(lines), len(want), want, strings.Join(lines, "\n"))
	}
}

func TestParityHomeInit(t *testing.T) {
	e := newEnv(t)
	const path = "PATH=/usr/bin:/bin"
	for _, tc := range []struct {
		name string
		env  []string
		uid  uint32
		want []string
	}{
		{"no HOME, root", []string{path}, 0, []string{path, "HOME=/root"}},
		{"empty HOME", []string{path, "HOME="}, 0, []string{path, "HOME=/root"}},
		{"set then emptied", []string{path, "HOME=/override", "HOME="}, 0, []string{path, "HOME=/root"}},
		{"set", []string{path, "HOME=/override"}, 0, []string{path, "HOME=/override"}},
		{"uid of the image's passwd", []string{path}, 65534, []string{path, "HOME=/var/empty"}},
		{"uid without an entry", []string{path}, 4242, []string{path, "HOME=/"}},
		{"last value wins, once", []string{"ONE=two", path, "ONE=", "ONE=three"}, 0, []string{path, "ONE=three", "HOME=/root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantEnvLines(t, tc.name, envOf(t, e, tc.env, tc.uid, nil), tc.want...)
		})
	}
}

// TestParityHomePasswdNotRegular: an image whose /etc/passwd is a FIFO, or a
// symlink out of the rootfs, neither blocks the init nor makes it read the
// host's file: HOME is "/".
func TestParityHomePasswdNotRegular(t *testing.T) {
	e := newEnv(t)
	env := []string{"PATH=/bin"}
	fifo := func(rootfs string) {
		p := filepath.Join(rootfs, "etc", "passwd")
		os.Remove(p)
		if err := unix.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantEnvLines(t, "FIFO", envOf(t, e, env, 0, fifo), "PATH=/bin", "HOME=/")
	// The host's /etc/passwd has root's home at /root too: a uid only
	// the host knows would tell if the link were followed out.
	host := filepath.Join(e.dir, "passwd")
	if err := os.WriteFile(host, []byte("h:x:4343:4343::/host-home:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(rootfs string) {
		p := filepath.Join(rootfs, "etc", "passwd")
		os.Remove(p)
		if err := os.Symlink(host, p); err != nil {
			t.Fatal(err)
		}
	}
	wantEnvLines(t, "symlink to the host", envOf(t, e, env, 4343, link), "PATH=/bin", "HOME=/")
}

// TestParityHomeExec: an exec'd process gets HOME as the init does, from
// its own env (runc's "env [runc exec -p]"): from the passwd entry of its
// user when process.json has no env, the caller's HOME when it gives one.
func TestParityHomeExec(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	proc := filepath.Join(e.dir, "process.json")
	if err := os.WriteFile(proc, []byte(`{"args":["/bin/env"],"cwd":"/","env":["FOO=bar","FOO=baz"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.Split(strings.TrimSuffix(e.cliOK("exec", "-p", proc, id).stdout, "\n"), "\n")
	wantEnvLines(t, "exec -p", out, "FOO=baz", "HOME=/root")
	out = strings.Split(strings.TrimSuffix(e.cliOK("exec", "--user", "65534", "-e", "HOME=", id, "env").stdout, "\n"), "\n")
	if !containsLine(out, "HOME=/var/empty") {
		t.Errorf("exec --user 65534 -e HOME=: env has no HOME=/home:\n%s", strings.Join(out, "\n"))
	}
	out = strings.Split(strings.TrimSuffix(e.cliOK("exec", "-e", "HOME=/else", id, "env").stdout, "\n"), "\n")
	if !containsLine(out, "HOME=/else") {
		t.Errorf("exec -e HOME=/else: env has no HOME=/else:\n%s", strings.Join(out, "\n"))
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestParityEnvInvalid: an env entry without "=" is refused at create with
// one line naming it, as runc refuses it.
func TestParityEnvInvalid(t *testing.T) {
	wantCreateFails(t, func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "NOEQUALS") }, "env", "NOEQUALS")
}
