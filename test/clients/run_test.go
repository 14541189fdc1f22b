//go:build clients

package clients

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// This file runs the clients' commands: each bounded by the step timeout,
// so that a hang fails the step that hung, by name, instead of the suite.

// tool is one client command line: a binary, the global flags that put it
// in its sandbox, and its environment.
type tool struct {
	bin  string
	args []string // global flags, before every command
	env  []string // added to the test's environment
	dir  string   // where its output files go (in the sandbox)
}

// result is what a finished command did.
type result struct {
	line    string // the command line, for messages
	stdout  string
	stderr  string
	code    int
	elapsed time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d\nstdout: %s\nstderr: %s", r.line, r.code, r.stdout, r.stderr)
}

// proc is a command running in the background.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	line     string
	out, err *os.File
	begin    time.Time
	cancel   context.CancelFunc
	done     chan struct{}
	waitErr  error
	timeout  time.Duration
}

// command makes the exec.Cmd of a client command. It runs in a process
// group of its own, and the whole group is killed when ctx ends: a client
// that hangs takes what it forked in the foreground with it.
func (c *tool) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append(append([]string{}, c.args...), args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Daemonised children (conmon, shims) may keep a copy of an output
	// pipe: do not wait for them.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// start starts a client command in the background. Its stdout and stderr
// go to files, not pipes: daemons it forks keep them.
func (c *tool) start(t *testing.T, timeout time.Duration, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := c.command(ctx, args...)
	p := &proc{t: t, cmd: cmd, cancel: cancel, done: make(chan struct{}), timeout: timeout,
		line: c.bin + " " + strings.Join(args, " ")}
	var err error
	if p.out, err = os.CreateTemp(c.dir, "stdout-"); err != nil {
		t.Fatal(err)
	}
	if p.err, err = os.CreateTemp(c.dir, "stderr-"); err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = p.out, p.err
	p.begin = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", p.line, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	// A test that fails before waiting must not leave the command behind.
	t.Cleanup(func() { p.cancel(); <-p.done })
	return p
}

// wait waits for the command and returns what it did; a command that ran
// out of time fails the test, naming it.
func (p *proc) wait() result {
	p.t.Helper()
	r := p.finish()
	if r.code < 0 {
		p.t.Fatalf("%s: no answer after %v (killed); it hung\nstdout: %s\nstderr: %s", p.line, p.timeout, r.stdout, r.stderr)
	}
	return r
}

// finish waits for the command and returns what it did; code -1 means it
// was killed on timeout.
func (p *proc) finish() result {
	<-p.done
	p.cancel()
	return p.result()
}

func (p *proc) result() result {
	r := result{line: p.line, code: exitCode(p.waitErr), elapsed: time.Since(p.begin)}
	p.out.Close()
	p.err.Close()
	b, _ := os.ReadFile(p.out.Name())
	r.stdout = string(b)
	b, _ = os.ReadFile(p.err.Name())
	r.stderr = string(b)
	return r
}

// run runs a client command to its end, bounded by the step timeout.
func (c *tool) run(t *testing.T, args ...string) result {
	t.Helper()
	return c.start(t, *stepFlag, args...).wait()
}

// try runs a client command to its end, or kills it after timeout, and
// never fails the test: for the clean-up that must go on whatever happens.
func (c *tool) try(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	return c.start(t, timeout, args...).finish()
}

// ok runs a client command and fails the test unless it succeeds.
func (c *tool) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := c.run(t, args...)
	if r.code != 0 {
		t.Fatal(r)
	}
	return r.stdout
}

// runTTY runs a client command with a terminal as its stdin, stdout and
// stderr, and as its controlling terminal, as a user at a shell would: the
// clients' -t modes want one. It returns what the terminal showed.
func (c *tool) runTTY(t *testing.T, args ...string) result {
	t.Helper()
	master, slave, err := clientsandbox.OpenPty()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *stepFlag)
	defer cancel()
	cmd := c.command(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	line := c.bin + " " + strings.Join(args, " ")
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	slave.Close()
	screen := make(chan string, 1)
	go func() {
		// Reading ends with EIO once every holder of the slave is gone.
		b, _ := io.ReadAll(master)
		screen <- string(b)
	}()
	err = cmd.Wait()
	r := result{line: line, code: exitCode(err), elapsed: time.Since(begin)}
	select {
	case r.stdout = <-screen:
	case <-time.After(5 * time.Second):
		// Something the client started still holds the terminal.
		master.Close()
		r.stdout = <-screen
	}
	master.Close()
	if r.code < 0 {
		t.Fatalf("%s: no answer after %v (killed); it hung\nterminal: %q", line, *stepFlag, r.stdout)
	}
	return r
}

// lines is a command whose stdout is read line by line as it comes: an
// event stream.
type lines struct {
	p  *proc
	ch chan string
}

// startLines starts a client command whose stdout the test reads as it
// goes. It ends when the test does, or after timeout.
func (c *tool) startLines(t *testing.T, timeout time.Duration, args ...string) *lines {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := c.command(ctx, args...)
	p := &proc{t: t, cmd: cmd, cancel: cancel, done: make(chan struct{}), timeout: timeout,
		line: c.bin + " " + strings.Join(args, " ")}
	if p.out, err = os.CreateTemp(c.dir, "unused-"); err != nil {
		t.Fatal(err)
	}
	if p.err, err = os.CreateTemp(c.dir, "stderr-"); err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, p.err
	p.begin = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", p.line, err)
	}
	w.Close()
	l := &lines{p: p, ch: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
		r.Close()
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.cancel(); <-p.done })
	return l
}

// next returns the first line from now on that match accepts, failing
// the test if the stream ends or the step timeout passes first.
func (l *lines) next(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.After(*stepFlag)
	var seen []string
	for {
		select {
		case s, ok := <-l.ch:
			if !ok {
				<-l.p.done
				r := l.p.result()
				t.Fatalf("%s: ended before %s (exit %d)\nlines: %q\nstderr: %s", l.p.line, what, r.code, seen, r.stderr)
			}
			if match(s) {
				return s
			}
			seen = append(seen, s)
		case <-deadline:
			t.Fatalf("%s: no %s after %v\nlines: %q", l.p.line, what, *stepFlag, seen)
		}
	}
}

// within returns the first line from now on that match accepts, or false
// if none comes within d.
func (l *lines) within(d time.Duration, match func(string) bool) (string, bool) {
	deadline := time.After(d)
	for {
		select {
		case s, ok := <-l.ch:
			if !ok {
				return "", false
			}
			if match(s) {
				return s, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// stop ends the stream.
func (l *lines) stop() {
	l.p.cancel()
	<-l.p.done
}

// exitCode returns the exit status of a finished command's error: -1 when
// it did not exit by itself (killed on timeout).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// waitFor polls cond until it holds or the step timeout passes: for the
// states that no client can be asked to wait for (a daemon's socket
// answering, a process finishing its exec).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(*stepFlag)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, *stepFlag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
