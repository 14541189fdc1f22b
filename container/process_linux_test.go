package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestLookPath(t *testing.T) {
	root := t.TempDir()
	noexec := filepath.Join(root, "noexec")
	bin := filepath.Join(root, "bin")
	dirs := filepath.Join(root, "dirs")
	for _, d := range []string{noexec, bin, filepath.Join(dirs, "prog")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(noexec, "prog"), 0o644)
	writeFile(t, filepath.Join(bin, "prog"), 0o755)
	writeFile(t, filepath.Join(bin, "owner-only"), 0o700)

	tests := []struct {
		name    string
		file    string
		dirs    []string
		chdir   string
		want    string
		wantErr bool
	}{
		{name: "found", file: "prog", dirs: []string{bin}, want: bin + "/prog"},
		{name: "skips non-executable", file: "prog", dirs: []string{noexec, bin}, want: bin + "/prog"},
		{name: "skips directory", file: "prog", dirs: []string{dirs, bin}, want: bin + "/prog"},
		{name: "first match wins", file: "prog", dirs: []string{bin, noexec}, want: bin + "/prog"},
		{name: "trailing slash", file: "prog", dirs: []string{bin + "/"}, want: bin + "/prog"},
		{name: "any execute bit", file: "owner-only", dirs: []string{bin}, want: bin + "/owner-only"},
		{name: "empty entry is cwd", file: "prog", dirs: []string{noexec, ""}, chdir: bin, want: "./prog"},
		{name: "absolute kept", file: bin + "/prog", dirs: nil, want: bin + "/prog"},
		{name: "relative with slash kept", file: "./prog", dirs: nil, chdir: bin, want: "./prog"},
		{name: "missing", file: "nope", dirs: []string{noexec, bin}, wantErr: true},
		{name: "only non-executable", file: "prog", dirs: []string{noexec}, wantErr: true},
		{name: "only directory", file: "prog", dirs: []string{dirs}, wantErr: true},
		{name: "no dirs", file: "prog", dirs: nil, wantErr: true},
		{name: "empty file", file: "", dirs: []string{bin}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chdir != "" {
				t.Chdir(tt.chdir)
			}
			got, err := lookPath(tt.file, tt.dirs, "")
			if tt.wantErr {
				want := fmt.Sprintf("exec: %q: executable file not found in $PATH", tt.file)
				if err == nil || err.Error() != want {
					t.Fatalf("got %q, %v; want error %q", got, err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// A name with a slash is checked as Go's exec.LookPath checks it in runc,
// with its words; relative names are found from the cwd given.
func TestLookPathSlashWording(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "prog"), 0o755)
	writeFile(t, filepath.Join(dir, "noexec"), 0o644)
	for _, tt := range []struct {
		file, cwd, want string
	}{
		{file: "/no/such/prog", want: `exec: "/no/such/prog": stat /no/such/prog: no such file or directory`},
		{file: dir, want: fmt.Sprintf("exec: %q: is a directory", dir)},
		{file: dir + "/noexec", want: fmt.Sprintf("exec: %q: permission denied", dir+"/noexec")},
		{file: "./nope", cwd: dir, want: `exec: "./nope": stat ./nope: no such file or directory`},
		{file: "./prog", cwd: dir},
		{file: "prog", cwd: dir},
	} {
		dirs := []string{"/no/such/dir", ""}
		got, err := lookPath(tt.file, dirs, tt.cwd)
		if tt.want == "" {
			if err != nil || got != tt.file && got != "./"+tt.file {
				t.Errorf("lookPath(%q) from %q = %q, %v; want it found", tt.file, tt.cwd, got, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("lookPath(%q) from %q = %q, %v; want error %q", tt.file, tt.cwd, got, err, tt.want)
		}
	}
}

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered through the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLookPathEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{name: "unset", env: []string{"HOME=/root"}, want: defaultPath},
		{name: "nil env", env: nil, want: defaultPath},
		{name: "set", env: []string{"HOME=/", "PATH=/a:/b"}, want: "/a:/b"},
		{name: "last wins", env: []string{"PATH=/a", "X=1", "PATH=/b"}, want: "/b"},
		{name: "set empty", env: []string{"PATH="}, want: ""},
		{name: "prefix only", env: []string{"PATHX=/a", "MYPATH=/b"}, want: defaultPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envPath(tt.env); got != tt.want {
				t.Errorf("envPath(%q) = %q, want %q", tt.env, got, tt.want)
			}
		})
	}
}

func TestRlimitResource(t *testing.T) {
	known := map[string]int{
		"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE,
		"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
		"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
		"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
		"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
		"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
		"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
		"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
	}
	for name, want := range known {
		got, err := rlimitResource(name)
		if err != nil || got != want {
			t.Errorf("rlimitResource(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, name := range []string{"RLIMIT_FOO", "rlimit_nofile", "NOFILE", ""} {
		_, err := rlimitResource(name)
		if want := fmt.Sprintf("unknown rlimit type %q", name); err == nil || err.Error() != want {
			t.Errorf("rlimitResource(%q) err = %v, want %q", name, err, want)
		}
	}
}

type validateProcessCase struct {
	name    string
	edit    func(p *specs.Process)
	wantErr string
}

// validateProcessCases edit a minimal valid process into each case.
func validateProcessCases() []validateProcessCase {
	intp := func(v int) *int { return &v }
	return []validateProcessCase{
		{name: "minimal", edit: func(*specs.Process) {}},
		{name: "full", edit: func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{
				Bounding: []string{"CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"},
				Ambient:  []string{"CAP_CHOWN"},
			}
			p.Rlimits = []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096},
				{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
			}
			p.OOMScoreAdj = intp(-1000)
		}},
		{name: "no args", edit: func(p *specs.Process) { p.Args = nil }, wantErr: "args must not be empty"},
		{name: "empty argv0", edit: func(p *specs.Process) { p.Args = []string{""} }, wantErr: "args must not be empty"},
		{name: "relative cwd", edit: func(p *specs.Process) { p.Cwd = "tmp" }, wantErr: `cwd "tmp" is not an absolute path`},
		{name: "empty cwd", edit: func(p *specs.Process) { p.Cwd = "" }, wantErr: `cwd "" is not an absolute path`},
		{
			name:    "unknown rlimit",
			edit:    func(p *specs.Process) { p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_FOO"}} },
			wantErr: `unknown rlimit type "RLIMIT_FOO"`,
		},
		{
			name: "duplicate rlimit",
			edit: func(p *specs.Process) {
				p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1}, {Type: "RLIMIT_NOFILE", Soft: 2, Hard: 2}}
			},
			wantErr: `duplicate rlimit type "RLIMIT_NOFILE"`,
		},
		{
			name:    "soft above hard",
			edit:    func(p *specs.Process) { p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}} },
			wantErr: "rlimit RLIMIT_NOFILE soft limit 10 above hard limit 5",
		},
		{name: "oom too high", edit: func(p *specs.Process) { p.OOMScoreAdj = intp(1001) }, wantErr: "oomScoreAdj 1001 outside [-1000, 1000]"},
	}
}

func TestValidateProcess(t *testing.T) {
	for _, tt := range validateProcessCases() {
		t.Run(tt.name, func(t *testing.T) {
			p := &specs.Process{Args: []string{"sh"}, Cwd: "/"}
			tt.edit(p)
			err := validateProcess(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := validateProcess(nil); err == nil {
		t.Error("validateProcess(nil) succeeded")
	}
}

func TestSetupProcessEarlyUnknownRlimit(t *testing.T) {
	p := &specs.Process{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_FOO", Soft: 1, Hard: 1}}}
	err := setupProcessEarly(p)
	if want := `unknown rlimit type "RLIMIT_FOO"`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// execHelperEnv names the scenario a re-executed test binary runs in
// TestHelperExecProcess instead of running tests.
const execHelperEnv = "CRIER_TEST_EXEC_PROCESS"

type execScenario struct {
	process    specs.Process
	beforeExec func() error
	want       map[string]string
}

// execScenarios returns the cases TestExecProcess runs in children; it is
// a function so that parent and child build the same values without
// package-level state.
func execScenarios() map[string]execScenario {
	umask := uint32(0o027)
	oom := 500
	netBind := []string{"CAP_NET_BIND_SERVICE"}
	report := "cat /proc/self/status; grep 'Max open files' /proc/self/limits; " +
		"echo oom=$(cat /proc/self/oom_score_adj); echo cwd=$(pwd)"
	return map[string]execScenario{
		"unprivileged": {
			process: specs.Process{
				User: specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534, 100}, Umask: &umask},
				Args: []string{"sh", "-c", report},
				Env:  []string{"PATH=/nonexistent:/usr/bin:/bin"},
				Cwd:  "/usr",
				Capabilities: &specs.LinuxCapabilities{
					Bounding: netBind, Effective: netBind, Inheritable: netBind, Permitted: netBind, Ambient: netBind,
				},
				Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}},
				OOMScoreAdj:     &oom,
				NoNewPrivileges: true,
			},
			beforeExec: func() error {
				_, err := fmt.Println("hook=ran")
				return err
			},
			want: map[string]string{
				"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "100 65534",
				"CapInh": "0000000000000400", "CapPrm": "0000000000000400", "CapEff": "0000000000000400",
				"CapBnd": "0000000000000400", "CapAmb": "0000000000000400",
				"NoNewPrivs": "1", "Umask": "0027", "nofile": "512 1024", "oom": "500", "cwd": "/usr", "hook": "ran",
			},
		},
		"root without capabilities": {
			process: specs.Process{Args: []string{"/bin/sh", "-c", report}, Cwd: "/"},
			want: map[string]string{
				"Uid": "0 0 0 0", "Groups": "", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
				"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "0", "Umask": "0022", "cwd": "/",
			},
		},
		"not in path": {
			process: specs.Process{Args: []string{"crier-no-such-program"}, Env: []string{"PATH=/nonexistent"}, Cwd: "/"},
			want:    map[string]string{"error": `exec: "crier-no-such-program": executable file not found in $PATH`},
		},
		"missing cwd": {
			process: specs.Process{Args: []string{"/bin/sh"}, Cwd: "/nonexistent/crier"},
			want:    map[string]string{"error": "chdir /nonexistent/crier: no such file or directory"},
		},
		"hook error": {
			process:    specs.Process{Args: []string{"/bin/sh"}, Cwd: "/"},
			beforeExec: func() error { return errors.New("boom") },
			want:       map[string]string{"error": "before exec: boom"},
		},
	}
}

// TestHelperExecProcess is not a test: it is the child side of
// TestExecProcess, since a successful execProcess replaces the process.
func TestHelperExecProcess(t *testing.T) {
	name := os.Getenv(execHelperEnv)
	if name == "" {
		t.Skip("helper process for TestExecProcess")
	}
	runtime.LockOSThread()
	// Start from a umask no scenario asks for, so the default is visible.
	unix.Umask(0o077)
	sc, ok := execScenarios()[name]
	if !ok {
		fmt.Printf("error=unknown scenario %q\n", name)
		os.Exit(2)
	}
	err := setupProcessEarly(&sc.process)
	if err == nil {
		err = execProcess(&sc.process, nil, nil, sc.beforeExec)
	}
	fmt.Printf("error=%v\n", err)
	os.Exit(0)
}

func TestExecProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and capabilities")
	}
	for name, sc := range execScenarios() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperExecProcess$")
			cmd.Env = append(os.Environ(), execHelperEnv+"="+name)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
			}
			got := parseReport(out)
			for k, want := range sc.want {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("%s = %q (present %v), want %q\noutput:\n%s", k, v, ok, want, out)
				}
			}
		})
	}
}

// parseReport reads the "Key:\tvalue" lines of /proc/self/status and the
// "key=value" lines the scenarios print, normalising runs of blanks.
func parseReport(out []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				m["nofile"] = f[0] + " " + f[1]
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, ":") {
			m[k] = v
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}
