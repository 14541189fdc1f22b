package test

// Integration tests for what `crier create` leaves holding its caller's
// stdout and stderr (issue 11). Scripts capture create's output
// (`x=$(crier create ...)`), and containerd-shim-runc-v2 reads it through
// pipes to their end of file before it answers `ctr run` or `docker run`.
// With process.terminal the container's stdio is the pty, so nothing may
// keep the caller's pipes once create has returned: not the shim, not the
// init waiting for start. Without a terminal the caller's stdio is the
// container's (as with runc): the container holds them until it exits, and
// the shim never does.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// pipeEOFDeadline bounds the wait for a pipe's end of file: well above the
// milliseconds it takes, well below hangDeadline, which kills the helper.
const pipeEOFDeadline = hangDeadline / 2

// createPipes are the pipes a caller gives create as stdout and stderr.
type createPipes struct {
	outR, outW, errR, errW *os.File
}

func newCreatePipes() (*createPipes, error) {
	p := &createPipes{}
	var err error
	if p.outR, p.outW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if p.errR, p.errW, err = os.Pipe(); err != nil {
		p.outR.Close()
		p.outW.Close()
		return nil, err
	}
	return p, nil
}

// closeWriters drops the caller's own write ends, once the command has them.
func (p *createPipes) closeWriters() {
	p.outW.Close()
	p.errW.Close()
}

// readToEOF reads both pipes to their end of file, within pipeEOFDeadline,
// and returns what came. On the deadline, err names the processes that
// still hold a write end.
func (p *createPipes) readToEOF() (stdout, stderr string, err error) {
	defer p.outR.Close()
	defer p.errR.Close()
	deadline := time.Now().Add(pipeEOFDeadline)
	var got [2]string
	for i, r := range []*os.File{p.outR, p.errR} {
		r.SetReadDeadline(deadline)
		b, rerr := io.ReadAll(r)
		got[i] = string(b)
		if rerr != nil {
			return got[0], got[1], fmt.Errorf("%s not at end of file after %v (%v); held by %s",
				[]string{"stdout", "stderr"}[i], pipeEOFDeadline, rerr, strings.Join(pipeHolders(r), ", "))
		}
	}
	return got[0], got[1], nil
}

// pipeHolders names the processes that have the pipe of r open (either
// end), for a failure message.
func pipeHolders(r *os.File) []string {
	var st unix.Stat_t
	if err := unix.Fstat(int(r.Fd()), &st); err != nil {
		return []string{err.Error()}
	}
	want := fmt.Sprintf("pipe:[%d]", st.Ino)
	self := os.Getpid()
	var out []string
	links, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, l := range links {
		if target, err := os.Readlink(l); err != nil || target != want {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(l, "/")[2])
		if pid == self {
			continue
		}
		out = append(out, fmt.Sprintf("%d (%s, fd %s)", pid, cmdlineOf(pid), filepath.Base(l)))
	}
	if len(out) == 0 {
		return []string{"nobody else"}
	}
	return out
}

func cmdlineOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// createWithPipes runs `crier create` with pipes as its stdout and stderr,
// as `x=$(crier create ...)` does, and returns once it has exited (the
// pipes may still be open).
func (e *env) createWithPipes(id, bundle string, extra ...string) *createPipes {
	e.t.Helper()
	p, err := newCreatePipes()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := e.cliCommand(append(append([]string{"create", "--bundle", bundle}, extra...), id)...)
	cmd.Stdout, cmd.Stderr = p.outW, p.errW
	err = cmd.Start()
	p.closeWriters()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		out, errs, _ := p.readToEOF()
		e.t.Fatalf("create: %v: %s%s", err, out, errs)
	}
	return p
}

// TestCreateTerminalReleasesCallerStdio: create with process.terminal and
// --console-socket, its stdout and stderr pipes: once create has returned
// the pipes reach end of file while the container still waits for start
// (as with runc: nothing of the caller's stdio is kept), and the container
// then runs on the pty whose master the socket got.
func TestCreateTerminalReleasesCallerStdio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	sock, masters := e.consoleSocket()
	b := terminalBundle(e, "echo tty=$(tty); exit 6", nil)
	p := e.createWithPipes(id, b, "--console-socket", sock)
	out, errs, err := p.readToEOF()
	if err != nil {
		t.Errorf("create's caller: %v", err)
	}
	if out != "" || errs != "" {
		t.Errorf("create printed %q %q, want nothing", out, errs)
	}
	if st := e.state(id); st.Status != protocol.StatusCreated {
		t.Errorf("container is %s once create's output ended, want created", st.Status)
	}
	master, ok := <-masters
	if !ok {
		t.Fatal("no pty master arrived on the console socket")
	}
	t.Cleanup(func() { master.Close() })
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	u := &userTerminal{t: t, master: master}
	u.expect(line(`tty=/dev/pts/\d+`))
	wantExit(t, next(t, sub, protocol.EventStopped), 6, "")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestCreateStdioIsTheContainers: without a terminal the container's stdio
// is create's caller's, as with runc: what it prints arrives there, and the
// pipes end when the container exits, while the shim still serves it (the
// shim keeps none of them).
func TestCreateStdioIsTheContainers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, nil)
	p := e.createWithPipes(id, b)
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	wantExit(t, next(t, sub, protocol.EventStopped), 3, "")
	out, errs, err := p.readToEOF()
	if err != nil {
		t.Errorf("after the container exited: %v", err)
	}
	if out != "to-stdout\n" || errs != "to-stderr\n" {
		t.Errorf("the container's output on create's pipes: %q %q, want %q %q", out, errs, "to-stdout\n", "to-stderr\n")
	}
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("container is %s, want stopped with its shim still serving", st.Status)
	}
	e.cliOK("delete", id)
	e.assertGone(id)
}

// createPipesHelperEnv carries createPipesHelper's config
// (createPipesConfig as JSON).
const createPipesHelperEnv = "CRIER_TEST_CREATE_PIPES_HELPER"

type createPipesConfig struct {
	Crier, Root, Bundle, ID, PidFile, ConsoleSocket string
}

func init() {
	if c := os.Getenv(createPipesHelperEnv); c != "" {
		os.Exit(createPipesHelper(c))
	}
}

// createPipesHelper is a supervisor as containerd-shim-runc-v2 is one: a
// child subreaper that runs `crier create --pid-file F` with pipes as its
// stdout and stderr, and waits for the pid in F as its own child. It
// reports on stdout, one line each: "pid N" once create has exited; with
// a console socket, "eof OUT ERR" (quoted) once create's pipes have ended
// or "held ..." if they did not within pipeEOFDeadline; told to go on (a
// line on stdin), "started" after `crier start`, "reaped exit N" or
// "reaped signal N"; without a console socket, the pipes' "eof" or "held"
// line after the reap.
func createPipesHelper(config string) int {
	var c createPipesConfig
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		fmt.Println("error", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("error prctl:", err)
		return 1
	}
	p, err := newCreatePipes()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	args := []string{"--root", c.Root, "create", "--bundle", c.Bundle, "--pid-file", c.PidFile}
	if c.ConsoleSocket != "" {
		args = append(args, "--console-socket", c.ConsoleSocket)
	}
	cmd := exec.Command(c.Crier, append(args, c.ID)...)
	cmd.Stdout, cmd.Stderr = p.outW, p.errW
	err = cmd.Run()
	p.closeWriters()
	if err != nil {
		fmt.Println("error create:", err)
		return 1
	}
	b, err := os.ReadFile(c.PidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Printf("error pid file %q: %v\n", b, err)
		return 1
	}
	fmt.Println("pid", pid)
	reportEOF := func() {
		if out, errs, err := p.readToEOF(); err != nil {
			fmt.Println("held", err)
		} else {
			fmt.Printf("eof %q %q\n", out, errs)
		}
	}
	if c.ConsoleSocket != "" {
		reportEOF()
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 1
	}
	if err := exec.Command(c.Crier, "--root", c.Root, "start", c.ID).Run(); err != nil {
		fmt.Println("error start:", err)
		return 1
	}
	fmt.Println("started")
	fmt.Println(reapText("reaped", pid)) // supervisor_test.go
	if c.ConsoleSocket == "" {
		reportEOF()
	}
	return 0
}

// startCreatePipesHelper starts createPipesHelper on a container made from
// bundle and returns it with its stdin and the reader of its reports.
func (e *env) startCreatePipesHelper(id, bundle, consoleSocket string) (cmd *exec.Cmd, in *os.File, out *outPipe) {
	e.t.Helper()
	cfg, _ := json.Marshal(createPipesConfig{
		Crier: suite.crier, Root: e.root, Bundle: bundle, ID: id,
		PidFile: filepath.Join(e.dir, id+".pid"), ConsoleSocket: consoleSocket,
	})
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd = e.cliCommand()
	cmd.Path, cmd.Args = self, []string{self}
	cmd.Env = append(os.Environ(), createPipesHelperEnv+"="+string(cfg))
	inR, inW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	e.t.Cleanup(func() {
		inW.Close()
		outR.Close()
		cmd.Wait()
	})
	return cmd, inW, newOutPipe(outR)
}

// wantLine reads the helper's next report and checks its prefix.
func wantLine(t *testing.T, out *outPipe, prefix string) string {
	t.Helper()
	line := out.line(t)
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("supervisor helper: %q, want %q...", line, prefix)
	}
	return line
}

// TestCreateSupervisedReleasesCallerStdio: under a reaping supervisor that
// reads create's output through pipes, as containerd-shim-runc-v2 does
// (`ctr run -t` and `docker run -t` hung on it): with a terminal the pipes
// end while the container, the supervisor's child, waits for start; without
// one they end when it exits, and carry its output. The shim, detached at
// birth, keeps none of them in either case.
func TestCreateSupervisedReleasesCallerStdio(t *testing.T) {
	t.Parallel()
	for _, terminal := range []bool{true, false} {
		t.Run(map[bool]string{true: "terminal", false: "no terminal"}[terminal], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			var sock string
			var masters <-chan *os.File
			b := e.bundle([]string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, func(s *specs.Spec) {
				s.Process.Terminal = terminal
			})
			if terminal {
				sock, masters = e.consoleSocket()
			}
			cmd, in, out := e.startCreatePipesHelper(id, b, sock)
			pid, _ := strconv.Atoi(strings.TrimPrefix(wantLine(t, out, "pid "), "pid "))
			if ppid := procStatus(t, pid)["PPid"]; ppid != strconv.Itoa(cmd.Process.Pid) {
				t.Errorf("container process %d has parent %s, want the supervisor %d", pid, ppid, cmd.Process.Pid)
			}
			if terminal {
				if got := out.line(t); got != `eof "" ""` {
					t.Errorf("create's pipes while the container waits for start: %s, want both ended and empty", got)
				}
				if st := e.state(id); st.Status != protocol.StatusCreated {
					t.Errorf("container is %s once create's output ended, want created", st.Status)
				}
				master, ok := <-masters
				if !ok {
					t.Fatal("no pty master arrived on the console socket")
				}
				t.Cleanup(func() { master.Close() })
				in.WriteString("go\n")
				wantLine(t, out, "started")
				u := &userTerminal{t: t, master: master}
				u.expect(line(`to-stdout`))
				u.expect(line(`to-stderr`))
			} else {
				in.WriteString("go\n")
				wantLine(t, out, "started")
			}
			if got := out.line(t); got != "reaped exit 3" {
				t.Errorf("supervisor's wait4: %q, want reaped exit 3", got)
			}
			if !terminal {
				if got, want := out.line(t), `eof "to-stdout\n" "to-stderr\n"`; got != want {
					t.Errorf("create's pipes after the container exited: %s, want %s", got, want)
				}
			}
			wantExit(t, decodeEvent(t, e.stoppedEvent(id)), 3, "")
			e.cliOK("delete", id)
			e.assertGone(id)
		})
	}
}

// userNamespace gives s a user namespace that maps the container's ids 0 to
// 65535 to the host's 100000 and up; the rootfs must be chowned to match
// (chownRootfs).
func userNamespace(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

// TestTerminalOwner: the process's pty belongs to the process's uid, with
// the group devpts gives it (gid=5 in the default config), as runc makes
// it; also in a user namespace, where the pty must be the container's to
// open at all.
func TestTerminalOwner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		userns   bool
		want     string
	}{
		{name: "root", want: "0:5"},
		{name: "uid 1000", uid: 1000, gid: 100, want: "1000:5"},
		{name: "user namespace", userns: true, want: "0:5"},
		{name: "user namespace, uid 1000", userns: true, uid: 1000, gid: 100, want: "1000:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := terminalBundle(e, "echo owner=$(stat -c %u:%g $(tty))", func(s *specs.Spec) {
				s.Process.User = specs.User{UID: tc.uid, GID: tc.gid}
				if tc.userns {
					userNamespace(s)
				}
			})
			if tc.userns {
				chownRootfs(t, b)
			}
			r := e.cliRun("run", "--bundle", b, id)
			if r.code != 0 {
				t.Fatalf("run: exit %d: %q %q", r.code, r.stdout, r.stderr)
			}
			if kv := keyValues(r.stdout); kv["owner"] != tc.want {
				t.Errorf("the pty's owner in the container: %q, want %s (output %q)", kv["owner"], tc.want, r.stdout)
			}
			e.assertGone(id)
		})
	}
}

// TestTerminalNewlines: what the process prints through its terminal
// reaches the output of a foreground run or exec (here a file) with its
// newlines as it wrote them, as with runc (which clears the pty's ONLCR):
// "\n", not "\r\n". The exec prints at once, before crier exec could
// receive the pty: the stage clears ONLCR before it sends it.
func TestTerminalNewlines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := terminalBundle(e, `printf 'one\ntwo\n'`, nil)
	r := e.cliRun("run", "--bundle", b, id)
	if r.code != 0 || r.stdout != "one\ntwo\n" {
		t.Errorf("run: exit %d, output %q, want 0 and %q", r.code, r.stdout, "one\ntwo\n")
	}
	e.assertGone(id)

	id = e.id()
	sock, masters := e.consoleSocket()
	e.cliOK("run", "-d", "--console-socket", sock, "--bundle", terminalBundle(e, "exec sleep 1000", nil), id)
	if master, ok := <-masters; ok {
		t.Cleanup(func() { master.Close() })
	}
	sub := e.subscribe(id, true)
	r = e.cliRun("exec", "-t", id, "printf", `three\nfour\n`)
	if r.code != 0 || r.stdout != "three\nfour\n" {
		t.Errorf("exec -t: exit %d, output %q, want 0 and %q", r.code, r.stdout, "three\nfour\n")
	}
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestTerminalOwnerExec: an exec'd process's pty belongs to its uid too,
// with devpts's group, as runc makes it.
func TestTerminalOwnerExec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		userns   bool
		want     string
	}{
		{name: "root", want: "0:5"},
		{name: "uid 1000", uid: 1000, gid: 100, want: "1000:5"},
		{name: "user namespace, uid 1000", userns: true, uid: 1000, gid: 100, want: "1000:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			sock, masters := e.consoleSocket()
			b := terminalBundle(e, "exec sleep 1000", func(s *specs.Spec) {
				s.Process.User = specs.User{UID: tc.uid, GID: tc.gid}
				if tc.userns {
					userNamespace(s)
				}
			})
			if tc.userns {
				chownRootfs(t, b)
			}
			e.cliOK("run", "-d", "--console-socket", sock, "--bundle", b, id)
			if master, ok := <-masters; ok {
				t.Cleanup(func() { master.Close() })
			}
			sub := e.subscribe(id, true)
			r := e.cliOK("exec", "-t", id, "sh", "-c", "echo owner=$(stat -c %u:%g $(tty))")
			if kv := keyValues(r.stdout); kv["owner"] != tc.want {
				t.Errorf("the exec'd process's pty: owner %q, want %s (output %q)", kv["owner"], tc.want, r.stdout)
			}
			e.cliOK("kill", id, "KILL")
			next(t, sub, protocol.EventStopped)
			e.cliOK("delete", id)
			e.assertGone(id)
		})
	}
}
