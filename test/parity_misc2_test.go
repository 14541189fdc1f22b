package test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// This file tests what runc's integration suite checks of create's
// descriptors, kill without a pid namespace, exec's --debug lines, the
// console size and seccomp's argument rules and default flags, each as
// runc 1.5 behaves.

// TestParitySeccompSameArgOR: a rule that compares one argument twice
// matches when either comparison holds, as runc (which makes each
// condition a rule of its own) and its seccomp.bats "[seccomp -ENOSYS
// handling]" profile have it; different arguments still must all hold.
func TestParitySeccompSameArgOR(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall numbers are x86_64's")
	}
	e := newEnv(t)
	errno := uint(unix.ENOANO)
	b := e.bundle([]string{"/sysno", "121:1337", "121:2020", "121:7", "109:1:5", "109:1:6", "109:2:5"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{
				// getpgid(1337) or getpgid(2020)
				{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: &errno, Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: 1337, Op: specs.OpEqualTo}, {Index: 0, Value: 2020, Op: specs.OpEqualTo}}},
				// setpgid(1, 5): both must hold
				{Names: []string{"setpgid"}, Action: specs.ActErrno, ErrnoRet: &errno, Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 1, Value: 5, Op: specs.OpEqualTo}}},
			},
		}
	})
	copySysno(t, e, b)
	_, kv := e.runOK(e.id(), b, nil)
	enoano := strconv.Itoa(int(unix.ENOANO))
	wantKV(t, kv, "121:1337", enoano)
	wantKV(t, kv, "121:2020", enoano)
	wantKV(t, kv, "109:1:5", enoano)
	for _, call := range []string{"121:7", "109:1:6", "109:2:5"} {
		if kv[call] == enoano || kv[call] == "" {
			t.Errorf("%s: errno %q, want the kernel's answer, not the rule's %s", call, kv[call], enoano)
		}
	}
}

func copySysno(t *testing.T, e *env, bundle string) {
	t.Helper()
	data, err := os.ReadFile(buildSysno(t, e.dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "sysno"), data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestParitySeccompDefaultFlags: a profile without a flags field is
// loaded with SECCOMP_FILTER_FLAG_SPEC_ALLOW (4), as runc's; an empty
// list gives none (seccomp.bats "SECCOMP_FILTER_FLAG_*" reads the
// --debug line).
func TestParitySeccompDefaultFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []specs.LinuxSeccompFlag
		want  string
	}{
		{"no flags field", nil, "seccomp filter flags: 4"},
		{"empty list", []specs.LinuxSeccompFlag{}, "seccomp filter flags: 0"},
		{"LOG", []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}, "seccomp filter flags: 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.bundle([]string{"sh", "-c", "mkdir /tmp/x"}, func(s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: tc.flags,
					Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
			})
			if tc.flags != nil && len(tc.flags) == 0 {
				// runtime-spec's type drops an empty list (omitempty):
				// write it into config.json by hand.
				path := filepath.Join(b, "config.json")
				var cfg map[string]any
				if err := json.Unmarshal([]byte(readFile(t, path)), &cfg); err != nil {
					t.Fatal(err)
				}
				cfg["linux"].(map[string]any)["seccomp"].(map[string]any)["flags"] = []string{}
				raw, err := json.Marshal(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := e.cliRun("--debug", "run", "--bundle", b, e.id())
			if r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("run: exit %d, stderr %q; want mkdir refused by the filter", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, `msg="`+tc.want+`"`) {
				t.Errorf("--debug run: stderr %q, want the line %q", r.stderr, tc.want)
			}
		})
	}
}

// TestParityExecveFailureRun: in a foreground run, a process whose execve
// fails (its interpreter is missing) prints that error alone, one line,
// and run exits 255, as runc's init does (run.bats "[execve error]");
// `start` fails with the same words and no "start:" before them.
func TestParityExecveFailureRun(t *testing.T) {
	e := newEnv(t)
	const want = "exec /run.sh: no such file or directory"
	b := e.bundle([]string{"/run.sh"}, nil)
	badInterpreter(t, b)
	id := e.id()
	r := e.cliRun("run", "--bundle", b, id)
	if r.code != 255 || r.stderr != want+"\n" || r.stdout != "" {
		t.Errorf("run: exit %d, stdout %q, stderr %q; want 255 and the one line %q", r.code, r.stdout, r.stderr, want)
	}
	e.wantNoStateDir(id)

	id = e.id()
	e.create(id, b)
	r = e.cliRun("start", id)
	wantErrorLine(t, "start", r, "crier: "+want)
	e.cliOK("delete", "--force", id)
}

// TestParityExecDebug: `--debug exec` logs the exec stage's steps in the
// words exec.bats reads, to stderr, or with --log to the file alone.
func TestParityExecDebug(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	words := []string{"level=debug", "nsexec container setup", "child process in init()", "setns_init: about to exec"}
	r := e.cliOK("--debug", "exec", id, "true")
	for _, w := range words {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("--debug exec: stderr %q lacks %q", r.stderr, w)
		}
	}
	log := filepath.Join(e.dir, "exec.log")
	r = e.cliOK("--debug", "--log", log, "exec", id, "true")
	if strings.Contains(r.stderr, "level=debug") {
		t.Errorf("--debug --log exec: stderr %q, want the debug lines in the log only", r.stderr)
	}
	got := readFile(t, log)
	for _, w := range words {
		if !strings.Contains(got, w) {
			t.Errorf("--debug --log exec: log %q lacks %q", got, w)
		}
	}
	e.cliOK("delete", "--force", id)
}

func wantWinsize(t *testing.T, what string, master *os.File, rows, cols uint16) {
	t.Helper()
	ws, err := unix.IoctlGetWinsize(int(master.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		t.Fatalf("%s: TIOCGWINSZ: %v", what, err)
	}
	if ws.Row != rows || ws.Col != cols {
		t.Errorf("%s: the pty is %dx%d, want %dx%d (process.consoleSize)", what, ws.Row, ws.Col, rows, cols)
	}
}

// TestParityConsoleSize: the pty of a process with a terminal has its
// consoleSize before its master reaches the console socket, for the init
// and for an exec'd process (tty.bats "exec [tty consolesize]").
func TestParityConsoleSize(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 12, Width: 99}
	})
	initMasters := consoleSocketAt(t, filepath.Join(e.dir, "init.sock"))
	e.cliOK("run", "-d", "--console-socket", filepath.Join(e.dir, "init.sock"), "--bundle", b, id)
	master, ok := <-initMasters
	if !ok {
		t.Fatal("no pty master for the init")
	}
	defer master.Close()
	wantWinsize(t, "init", master, 12, 99)

	proc := filepath.Join(e.dir, "process.json")
	p, err := json.Marshal(specs.Process{Terminal: true, ConsoleSize: &specs.Box{Height: 10, Width: 110},
		Args: []string{"sleep", "1000"}, Cwd: "/", Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(proc, p, 0o644); err != nil {
		t.Fatal(err)
	}
	execMasters := consoleSocketAt(t, filepath.Join(e.dir, "exec.sock"))
	e.cliOK("exec", "-d", "--console-socket", filepath.Join(e.dir, "exec.sock"), "-p", proc, id)
	em, ok := <-execMasters
	if !ok {
		t.Fatal("no pty master for the exec'd process")
	}
	defer em.Close()
	wantWinsize(t, "exec", em, 10, 110)
	e.cliOK("delete", "--force", id)
}

// TestParityCreatedFDs: a created container's init, with a terminal,
// holds the pty as its stdio and nothing of crier's but the sync socket
// and the Go runtime's own: not /dev/null, not the binary it was exec'd
// from (create.bats "detect fd leak").
func TestParityCreatedFDs(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh"}, func(s *specs.Spec) { s.Process.Terminal = true })
	sock := filepath.Join(e.dir, "c.sock")
	masters := consoleSocketAt(t, sock)
	e.create(id, b, "--console-socket", sock)
	master, ok := <-masters
	if !ok {
		t.Fatal("no pty master")
	}
	defer master.Close()
	pid := e.state(id).Pid
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ptn, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave := "/dev/pts/" + strconv.Itoa(ptn)
	for _, ent := range ents {
		target, err := os.Readlink(filepath.Join(dir, ent.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fd, _ := strconv.Atoi(ent.Name())
		switch {
		case fd <= 2 && target != slave:
			t.Errorf("fd %d -> %s, want the pty slave %s", fd, target, slave)
		case fd > 2 && !strings.HasPrefix(target, "socket:[") && !strings.HasPrefix(target, "anon_inode:") && !strings.HasPrefix(target, "pipe:["):
			t.Errorf("fd %d -> %s: init holds what the container should not see", fd, target)
		}
	}
	e.cliOK("delete", "--force", id)
}

// hostPidnsTarget runs a container without a pid namespace of its own
// and execs n sleeps into it; it returns the id and the pids of its cgroup.
func hostPidnsTarget(t *testing.T, e *env, n int) (string, []int) {
	t.Helper()
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
	})
	e.cliOK("run", "-d", "--bundle", b, id)
	for range n {
		execDetached(t, e, id, "sleep", "1000")
	}
	pids := pidsCgroupProcs(t, id)
	if len(pids) != n+1 {
		t.Fatalf("cgroup of %s holds %v, want the init and %d more", id, pids, n)
	}
	return id, pids
}

// pidsCgroupProcs lists the processes of id's pids cgroup.
func pidsCgroupProcs(t *testing.T, id string) []int {
	t.Helper()
	var pids []int
	for _, f := range cgroupProcs(t, filepath.Join("/sys/fs/cgroup/pids", id)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return pids
}

// waitPidsGone waits, on each pid's pidfd, for all of them to exit.
func waitPidsGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if !pidfdExited(fd, 10*time.Second) {
			t.Errorf("pid %d still runs after kill KILL", pid)
		}
		unix.Close(fd)
	}
}

// TestParityKillHostPidns: without a pid namespace of its own, the
// container's processes outlive its init, and `kill ID KILL` reaches all
// of them through the cgroup, as runc's (kill.bats "kill KILL [host
// pidns]"); also once the init is gone and the container is stopped
// ("[host pidns + init gone]"). Other signals still go to the init only,
// and a stopped container refuses them.
func TestParityKillHostPidns(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		t.Skip("needs the cgroup v1 pids hierarchy")
	}
	t.Run("running", func(t *testing.T) {
		e := newEnv(t)
		id, pids := hostPidnsTarget(t, e, 3)
		e.cliOK("kill", id, "KILL")
		waitPidsGone(t, pids)
		e.waitStopped(id)
		if left := pidsCgroupProcs(t, id); len(left) != 0 {
			t.Errorf("cgroup.procs holds %v after kill KILL", left)
		}
		e.cliOK("delete", id)
		e.assertGone(id)
	})
	t.Run("init gone", func(t *testing.T) {
		e := newEnv(t)
		id, pids := hostPidnsTarget(t, e, 3)
		sub := e.subscribe(id, false)
		if err := unix.Kill(e.state(id).Pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		next(t, sub, protocol.EventStopped)
		r := e.cliRun("kill", id, "TERM")
		wantErrorLine(t, "kill TERM of the stopped container", r, "container not running")
		e.cliOK("kill", id, "KILL")
		waitPidsGone(t, pids)
		if left := pidsCgroupProcs(t, id); len(left) != 0 {
			t.Errorf("cgroup.procs holds %v after kill KILL", left)
		}
		e.cliOK("delete", id)
		e.assertGone(id)
	})
}

// TestParityEventsOOM: runc's `events` stream tells of an OOM kill in the
// container with {"type":"oom","id":ID} between its stats lines, and ends
// once the container is deleted (events.bats "events oom").
func TestParityEventsOOM(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.cliOK("run", "-d", "--bundle", e.oomBundle([]string{"sleep", "1000"}), id)
	p, out := e.cliStartPiped("events", "--interval", "100ms", id)
	// A stats line: events has subscribed to the shim before its first.
	if line := out.line(t); !strings.HasPrefix(line, `{"type":"stats","id":"`+id+`"`) {
		t.Fatalf("events printed %q, want a stats line first", line)
	}
	if r := e.cliRun("exec", id, "sh", "-c", oomAlloc); r.code != 137 {
		t.Errorf("exec of the hog: exit %d, want 137: %s", r.code, r.stderr)
	}
	want := `{"type":"oom","id":"` + id + `"}`
	for {
		line := out.line(t)
		if line == want {
			break
		}
		if !strings.HasPrefix(line, `{"type":"stats"`) {
			t.Fatalf("events printed %q, want stats lines, then %s", line, want)
		}
	}
	// events prints a stats line (1.4 kB) every 100 ms until it sees the
	// container gone: read them, or a delete slow enough to fill the pipe
	// (seen under load in CI) blocks its write, and it never gets there.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, out.br)
	}()
	e.cliOK("delete", "--force", id)
	r := p.wait()
	<-drained
	if r.code != 0 {
		t.Errorf("events: exit %d once the container was deleted: %s", r.code, r.stderr)
	}
}

// TestParityDebugExeSeal: `--debug run` says how the binary init runs
// from was sealed, in the words of runc's exeseal lines (run.bats
// "[/proc/self/exe clone]"): a copy, and on a private overlayfs where the
// kernel allows (Linux 6.13), else in a sealed memfd.
func TestParityDebugExeSeal(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"echo", "Hello World"}, nil)
	r := e.cliOK("--debug", "run", "--bundle", b, e.id())
	if !strings.Contains(r.stdout, "Hello World") {
		t.Errorf("run: stdout %q, want Hello World", r.stdout)
	}
	if !strings.Contains(r.stderr, "runc exeseal: using /proc/self/exe clone") {
		t.Errorf("--debug run: stderr %q lacks the exeseal line", r.stderr)
	}
	overlay := strings.Contains(r.stderr, "runc exeseal: using overlayfs for sealed /proc/self/exe")
	memfd := strings.Contains(r.stderr, "the copy is a sealed memfd")
	if overlay == memfd {
		t.Errorf("--debug run: stderr %q, want one line saying overlayfs or memfd", r.stderr)
	}
}
