package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cliTimeout bounds every CLI run: one still running then has hung, which
// is a failure of the run (it is killed, and counted).
const cliTimeout = 30 * time.Second

// proc is one crier CLI run. Its output goes to files, not pipes: a
// container that create makes keeps create's stdio, and a pipe would not
// end with the CLI.
type proc struct {
	args     []string
	cmd      *exec.Cmd
	out, err *os.File
	begin    time.Time
	killed   atomic.Bool // the soak SIGKILLed it on purpose
	hung     atomic.Bool // it outlived cliTimeout
	timer    *time.Timer
	// lines, for a run started with startPiped: its stdout line by line,
	// closed at EOF.
	lines chan string
}

// result is a finished CLI run.
type result struct {
	args           []string
	code           int
	stdout, stderr string
	elapsed        time.Duration
	killed, hung   bool
}

func (r *result) String() string {
	return fmt.Sprintf("crier %s: exit %d after %v, stderr %q", strings.Join(r.args, " "), r.code, r.elapsed.Round(time.Millisecond), r.stderr)
}

// start starts `crier --root ROOT args...` with its output to files in dir.
func (s *soak) start(dir string, args ...string) (*proc, error) {
	p := &proc{args: args}
	var err error
	if p.out, err = os.CreateTemp(dir, "out-"); err != nil {
		return nil, err
	}
	if p.err, err = os.CreateTemp(dir, "err-"); err != nil {
		p.out.Close()
		return nil, err
	}
	p.cmd = exec.Command(s.crier, append([]string{"--root", s.root}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	return p, p.launch()
}

// startPiped is start with stdout a pipe read line by line into p.lines:
// for `crier event`, which starts nothing that would keep the pipe (a shim
// it brings back gets /dev/null).
func (s *soak) startPiped(dir string, args ...string) (*proc, error) {
	p := &proc{args: args, lines: make(chan string, 16)}
	var err error
	if p.err, err = os.CreateTemp(dir, "err-"); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		p.err.Close()
		return nil, err
	}
	p.cmd = exec.Command(s.crier, append([]string{"--root", s.root}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = w, p.err
	err = p.launch()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		defer r.Close()
		defer close(p.lines)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				p.lines <- strings.TrimSuffix(line, "\n")
			}
			if err != nil {
				return
			}
		}
	}()
	return p, nil
}

func (p *proc) launch() error {
	p.begin = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.closeFiles()
		return err
	}
	p.timer = time.AfterFunc(cliTimeout, func() {
		p.hung.Store(true)
		p.cmd.Process.Kill()
	})
	return nil
}

func (p *proc) closeFiles() {
	if p.out != nil {
		p.out.Close()
	}
	p.err.Close()
}

// kill SIGKILLs the CLI, on purpose.
func (p *proc) kill() {
	p.killed.Store(true)
	p.cmd.Process.Kill()
}

// wait waits for the run to end and reads what it printed.
func (p *proc) wait() *result {
	err := p.cmd.Wait()
	p.timer.Stop()
	r := &result{args: p.args, elapsed: time.Since(p.begin), killed: p.killed.Load(), hung: p.hung.Load()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.code = -1
	}
	p.closeFiles()
	if p.out != nil {
		r.stdout = readAll(p.out.Name())
	}
	r.stderr = readAll(p.err.Name())
	return r
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// oneLine reports whether a failed run's stderr is exactly one non-empty
// line: a clear error.
func oneLine(stderr string) bool {
	line, ok := strings.CutSuffix(stderr, "\n")
	return ok && strings.TrimSpace(line) != "" && !strings.Contains(line, "\n")
}

// run runs the CLI to its end, and counts it.
func (s *soak) run(dir string, args ...string) (*result, error) {
	p, err := s.start(dir, args...)
	if err != nil {
		return nil, err
	}
	r := p.wait()
	s.stats.addRun(r)
	return r, nil
}

// timing keeps the mean duration of the normal runs of create, start and
// delete, so that a kill "during create" falls within a create's time on
// this machine, as loaded as it is now.
type timing struct {
	mu   sync.Mutex
	mean map[string]time.Duration
}

func (t *timing) init() {
	// This machine's, unloaded, until measured.
	t.mean = map[string]time.Duration{"create": 200 * time.Millisecond, "start": 100 * time.Millisecond, "delete": 80 * time.Millisecond}
}

func (t *timing) note(op string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// An exponential mean: it follows the machine's load.
	t.mean[op] = (t.mean[op]*7 + d) / 8
}

func (t *timing) of(op string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mean[op]
}

// lifeDir makes the files' directory of lifecycle i.
func (s *soak) lifeDir(i int) (string, error) {
	dir := filepath.Join(s.tmp, "life", fmt.Sprint(i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}
