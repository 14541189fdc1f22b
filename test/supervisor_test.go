package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// Supervisor mode (docs/supervisors.md): under a reaping supervisor that
// runs `crier create`, as conmon and containerd-shim-runc-v2 do, the
// container process is the supervisor's child and the shim learns its exit
// from a pidfd.
//
// The supervisor is this test binary re-executed as a small helper (init
// below), never the test process itself: making that a subreaper would
// adopt the orphans of every test running beside.

// supHelperEnv carries the helper's config (supHelperConfig as JSON).
const supHelperEnv = "CRIER_TEST_SUPERVISOR_HELPER"

type supHelperConfig struct {
	Crier   string
	Global  []string // flags before the command, after --root
	Root    string
	Bundle  string
	ID      string
	PidFile string
	Out     string // the container's stdio
}

func init() {
	if c := os.Getenv(supHelperEnv); c != "" {
		os.Exit(supervisorHelper(c))
	}
}

// supervisorHelper is a supervisor as conmon is one: a child subreaper
// that runs `crier create --pid-file F` as its child, reads F, and, told
// to go on (a line on stdin), runs `crier start` and waits for the pid in
// F as its own child. It reports on stdout, one line each: "pid N",
// "started", then "reaped exit N" / "reaped signal N", or "wait4 ERR" when
// the pid is not its child.
func supervisorHelper(config string) int {
	var c supHelperConfig
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		fmt.Println("error", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("error prctl:", err)
		return 1
	}
	out, err := os.OpenFile(c.Out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	crier := func(args ...string) *exec.Cmd {
		cmd := exec.Command(c.Crier, append(append([]string{"--root", c.Root}, c.Global...), args...)...)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd
	}
	if err := crier("create", "--bundle", c.Bundle, "--pid-file", c.PidFile, c.ID).Run(); err != nil {
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
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return 1
	}
	if err := crier("start", c.ID).Run(); err != nil {
		fmt.Println("error start:", err)
		return 1
	}
	fmt.Println("started")
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 1
		}
		// "exec|fg ARG|ARG|...", or "wait".
		cmd, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch cmd {
		case "wait":
			fmt.Println(reapText("reaped", pid))
			return 0
		case "exec":
			// As conmon and containerd-shim run an exec: detached,
			// then the pid in the pid file is waited for as a child.
			pidFile := c.PidFile + ".exec"
			os.Remove(pidFile)
			if err := crier(append([]string{"exec", "--detach", "--pid-file", pidFile, c.ID}, strings.Split(args, "|")...)...).Run(); err != nil {
				fmt.Println("error exec:", err)
				return 1
			}
			b, _ := os.ReadFile(pidFile)
			epid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			fmt.Println("exec pid", epid)
			fmt.Println(reapText("exec reaped", epid))
		case "fg":
			// A foreground exec: crier exec waits for the process.
			err := crier(append([]string{"exec", c.ID}, strings.Split(args, "|")...)...).Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				fmt.Println("fg exit 0")
			case errors.As(err, &ee):
				fmt.Println("fg exit", ee.ExitCode())
			default:
				fmt.Println("error fg:", err)
				return 1
			}
		}
	}
}

// reapText waits for pid as the caller's child and says how it ended.
func reapText(what string, pid int) string {
	var (
		ws  unix.WaitStatus
		err error
	)
	for {
		if _, err = unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		return "wait4 " + err.Error()
	case ws.Signaled():
		return fmt.Sprintf("%s signal %d", what, int(ws.Signal()))
	}
	return fmt.Sprintf("%s exit %d", what, ws.ExitStatus())
}

// supHelper is a running supervisorHelper.
type supHelper struct {
	t   *testing.T
	cmd *exec.Cmd
	in  *os.File
	out *outPipe
}

// startSupervisor starts the helper on a container made from bundle, with
// global flags and extra environment for crier, and returns it once create
// has returned, with the pid the pid file names.
func (e *env) startSupervisor(id, bundle string, global, environ []string) (*supHelper, int) {
	e.t.Helper()
	cfg, _ := json.Marshal(supHelperConfig{
		Crier: suite.crier, Global: global, Root: e.root, Bundle: bundle, ID: id,
		PidFile: e.dir + "/" + id + ".pid", Out: e.dir + "/" + id + ".out",
	})
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := e.cliCommand()
	cmd.Path, cmd.Args = self, []string{self}
	cmd.Env = append(append(os.Environ(), supHelperEnv+"="+string(cfg)), environ...)
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
	h := &supHelper{t: e.t, cmd: cmd, in: inW, out: newOutPipe(outR)}
	e.t.Cleanup(func() {
		inW.Close()
		outR.Close()
		cmd.Wait()
	})
	line := h.out.line(e.t)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil || !strings.HasPrefix(line, "pid ") {
		b, _ := os.ReadFile(e.dir + "/" + id + ".out")
		e.t.Fatalf("supervisor helper: %q, want the pid; crier said %q", line, b)
	}
	return h, pid
}

// start has the helper start the container, and returns once it has.
func (h *supHelper) start() {
	h.t.Helper()
	h.in.Write([]byte("go\n"))
	if line := h.out.line(h.t); line != "started" {
		h.t.Fatalf("supervisor helper: %q, want started", line)
	}
}

// reaped returns what the helper's wait4 for the container's pid got.
func (h *supHelper) reaped() string {
	h.t.Helper()
	h.in.Write([]byte("wait\n"))
	line := h.out.line(h.t)
	if err := h.cmd.Wait(); err != nil {
		h.t.Errorf("supervisor helper: %v", err)
	}
	return line
}

// wantContainerInit checks that pid is the container's process: pid 1 of
// the container's own pid namespace, and the one crier state names.
func (e *env) wantContainerInit(id string, pid int) {
	e.t.Helper()
	if ns := strings.Fields(procStatus(e.t, pid)["NSpid"]); len(ns) != 2 || ns[1] != "1" {
		e.t.Errorf("pid file names %d, whose NSpid is %v: not pid 1 of a pid namespace of its own", pid, ns)
	}
	if st := e.state(id); st.Pid != pid {
		e.t.Errorf("pid file names %d, crier state %d", pid, st.Pid)
	}
}

// stoppedEvent runs `crier event --event stopped ID`, as a client would,
// and returns what it printed.
func (e *env) stoppedEvent(id string) string {
	e.t.Helper()
	return e.cliOK("event", "--event", protocol.EventStopped, id).stdout
}

// TestSupervisorReapsContainer: under a reaping supervisor with no
// configuration (auto), the pid file names the container's process, the
// supervisor is its parent and reaps it with its status, and the shim's
// stopped event carries the same status; also for a two-stage init
// (joined user namespace), whose stage two must end up the supervisor's
// child too.
func TestSupervisorReapsContainer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		join   bool
		kill   bool
		reaped string
		status int
		signal string
	}{
		{name: "exit 3", args: []string{"sh", "-c", "exit 3"}, reaped: "reaped exit 3", status: 3},
		{name: "exit 0", args: []string{"true"}, reaped: "reaped exit 0", status: 0},
		{name: "SIGKILL", args: []string{"sleep", "1000"}, kill: true, reaped: "reaped signal 9", status: 137, signal: "SIGKILL"},
		{name: "two-stage", args: []string{"sh", "-c", "exit 5"}, join: true, reaped: "reaped exit 5", status: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var userns string
			if tt.join {
				userns = fmt.Sprintf("/proc/%d/ns/user", joinHolder(t, e))
			}
			b := e.bundle(tt.args, func(s *specs.Spec) {
				if tt.join {
					sfJoin(s, specs.UserNamespace, userns)
				}
			})
			if tt.join {
				chownRootfs(t, b)
			}
			id := e.id()
			h, pid := e.startSupervisor(id, b, nil, nil)
			if ppid := procStatus(t, pid)["PPid"]; ppid != strconv.Itoa(h.cmd.Process.Pid) {
				t.Errorf("container process %d has parent %s, want the supervisor %d", pid, ppid, h.cmd.Process.Pid)
			}
			e.wantContainerInit(id, pid)
			if tt.join {
				if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); got != sfNsID(t, "user", userns) {
					t.Errorf("container in user namespace %s, want the joined %s", got, sfNsID(t, "user", userns))
				}
			}
			if !e.shimState(id).Supervised {
				t.Errorf("state.json does not say supervised")
			}
			h.start()
			if tt.kill {
				e.cliOK("kill", id, "KILL")
			}
			if got := h.reaped(); got != tt.reaped {
				t.Errorf("supervisor's wait4: %q, want %q", got, tt.reaped)
			}
			wantExit(t, decodeEvent(t, e.stoppedEvent(id)), tt.status, tt.signal)
			e.cliOK("delete", id)
		})
	}
}

// TestSupervisorModeOff: forced off, by flag or by CRIER_SUPERVISOR, under
// a reaping supervisor: today's behaviour, the shim is the parent and the
// supervisor never gets the child.
func TestSupervisorModeOff(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name            string
		global, environ []string
	}{
		{"flag", []string{"--supervisor", "off"}, nil},
		{"environment", nil, []string{"CRIER_SUPERVISOR=off"}},
		{"flag over environment", []string{"--supervisor=off"}, []string{"CRIER_SUPERVISOR=on"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			h, pid := e.startSupervisor(id, e.bundle([]string{"sh", "-c", "exit 3"}, nil), tt.global, tt.environ)
			st := e.shimState(id)
			if ppid := procStatus(t, pid)["PPid"]; ppid != strconv.Itoa(st.ShimPid) {
				t.Errorf("container process %d has parent %s, want the shim %d", pid, ppid, st.ShimPid)
			}
			if st.Supervised {
				t.Errorf("state.json says supervised")
			}
			e.wantContainerInit(id, pid)
			h.start()
			if got := h.reaped(); got != "wait4 "+unix.ECHILD.Error() {
				t.Errorf("supervisor's wait4: %q, want ECHILD", got)
			}
			wantExit(t, decodeEvent(t, e.stoppedEvent(id)), 3, "")
			e.cliOK("delete", id)
		})
	}
}

// TestSupervisorModeOnWithoutSupervisor: forced on (here by
// CRIER_SUPERVISOR) with no subreaper above create: the container's parent
// is whatever the shim was reparented to, the nearest subreaper or init,
// not the shim; the exit status still comes, once that process reaps.
// And without a supervisor (auto, the seed workflow) the shim stays the
// parent.
func TestSupervisorModeOnWithoutSupervisor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		environ string
		on      bool
	}{
		{"on", "CRIER_SUPERVISOR=on", true},
		{"auto", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			pidFile := e.dir + "/pid"
			outPath := e.dir + "/out"
			f, err := os.Create(outPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := e.cliStart(func(c *exec.Cmd) {
				c.Stdout, c.Stderr = f, f
				c.Env = append(os.Environ(), tt.environ)
			}, "create", "--bundle", e.bundle([]string{"sh", "-c", "exit 4"}, nil), "--pid-file", pidFile, id).wait()
			if r.code != 0 {
				t.Fatalf("create: exit %d: %s", r.code, readFile(t, outPath))
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
			st := e.shimState(id)
			ppid := procStatus(t, pid)["PPid"]
			if want := procStatus(t, st.ShimPid)["PPid"]; tt.on && ppid != want {
				t.Errorf("container process %d has parent %s, want the shim's parent %s", pid, ppid, want)
			}
			if !tt.on && ppid != strconv.Itoa(st.ShimPid) {
				t.Errorf("container process %d has parent %s, want the shim %d", pid, ppid, st.ShimPid)
			}
			if st.Supervised != tt.on {
				t.Errorf("state.json: supervised %v, want %v", st.Supervised, tt.on)
			}
			e.wantContainerInit(id, pid)
			e.cliOK("start", id)
			wantExit(t, decodeEvent(t, e.stoppedEvent(id)), 4, "")
			e.cliOK("delete", id)
		})
	}
}

// TestSupervisorModeInvalid: a mode that is none of auto, on and off fails
// create with one line naming where it came from, and leaves nothing.
func TestSupervisorModeInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"true"}, nil)
	r := e.cliRun("--supervisor", "maybe", "create", "--bundle", b, e.id())
	wantCLIError(t, "--supervisor maybe", r, `--supervisor: unknown supervisor mode "maybe"`)
	r = e.cliStart(func(c *exec.Cmd) { c.Env = append(os.Environ(), "CRIER_SUPERVISOR=yes") }, "create", "--bundle", b, e.id()).wait()
	wantCLIError(t, "CRIER_SUPERVISOR=yes", r, `CRIER_SUPERVISOR: unknown supervisor mode "yes"`)
}
