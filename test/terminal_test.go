package test

// Integration tests for process.terminal (issue 3) as a user meets it:
// `crier run` in the foreground on a real terminal, where crier is the
// console socket and proxies the pty and its window size, and `run -d` with
// --console-socket. The test plays the user on the master of a pty pair it
// opens itself; crier runs with the slave as its controlling terminal. Both
// ptys echo and translate newlines, so every check matches a marker the
// container prints, never the raw byte stream.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// userTerminal is a pty pair opened on the host: slave is the terminal crier
// runs on, master is the user's side.
type userTerminal struct {
	t      *testing.T
	master *os.File
	slave  *os.File
	seen   string // what has been read from master so far
	next   int    // where in seen the next expect starts looking
}

// newUserTerminal opens a pty pair; both ends are closed when t ends.
func newUserTerminal(t *testing.T) *userTerminal {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	// Non-blocking, so that os.File polls it and read deadlines work.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	// O_NOCTTY: the test must not make it its own controlling terminal.
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return &userTerminal{t: t, master: master, slave: slave}
}

// setSize resizes the terminal as a terminal emulator does when its window
// changes; the kernel sends SIGWINCH to the terminal's foreground group.
func (u *userTerminal) setSize(rows, cols uint16) {
	u.t.Helper()
	if err := unix.IoctlSetWinsize(int(u.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		u.t.Fatalf("TIOCSWINSZ: %v", err)
	}
}

func (u *userTerminal) termios() unix.Termios {
	u.t.Helper()
	tio, err := unix.IoctlGetTermios(int(u.slave.Fd()), unix.TCGETS)
	if err != nil {
		u.t.Fatalf("TCGETS: %v", err)
	}
	return *tio
}

// write types s.
func (u *userTerminal) write(s string) {
	u.t.Helper()
	u.master.SetWriteDeadline(time.Now().Add(hangDeadline))
	if _, err := u.master.WriteString(s); err != nil {
		u.t.Fatalf("writing %q to the terminal: %v", s, err)
	}
}

// expect reads until the output after the previous match matches re, and
// returns the submatches.
func (u *userTerminal) expect(re *regexp.Regexp) []string {
	u.t.Helper()
	u.master.SetReadDeadline(time.Now().Add(hangDeadline))
	buf := make([]byte, 4096)
	for {
		rest := u.seen[u.next:]
		if loc := re.FindStringIndex(rest); loc != nil {
			u.next += loc[1]
			return re.FindStringSubmatch(rest)
		}
		n, err := u.master.Read(buf)
		u.seen += string(buf[:n])
		if err != nil {
			u.t.Fatalf("waiting for %q on the terminal: %v; it showed %q", re, err, u.seen)
		}
	}
}

// wantHungUp closes the test's slave and checks that the master then reads
// EIO: nothing else (crier, its shim, the container) still holds the user's
// terminal.
func (u *userTerminal) wantHungUp() {
	u.t.Helper()
	u.slave.Close()
	u.master.SetReadDeadline(time.Now().Add(hangDeadline))
	buf := make([]byte, 4096)
	for {
		n, err := u.master.Read(buf)
		u.seen += string(buf[:n])
		if errors.Is(err, syscall.EIO) {
			return
		}
		if err != nil {
			u.t.Errorf("the terminal is still open after run: reading its master: %v", err)
			return
		}
	}
}

// runOnTerminal starts `crier run` with its stdin, stdout and stderr on u's
// slave, as its controlling terminal, the way a shell starts a command.
func (e *env) runOnTerminal(u *userTerminal, args ...string) *cliProc {
	e.t.Helper()
	return e.cliStart(func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = u.slave, u.slave, u.slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}, append([]string{"run"}, args...)...)
}

// terminalBundle makes a bundle whose process runs script with a terminal;
// edit, when not nil, changes the config further.
func terminalBundle(e *env, script string, edit func(*specs.Spec)) string {
	return e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Process.Terminal = true
		if edit != nil {
			edit(s)
		}
	})
}

// line matches a line that the container prints. Its pty ends lines with
// \r\n; were the user's terminal not raw, it would add a \r of its own, and
// that is for the raw-mode checks to report, not for a marker to miss.
func line(re string) *regexp.Regexp {
	return regexp.MustCompile(re + `\r*\n`)
}

// isRaw reports whether tio is the raw mode crier puts the user's terminal
// in while it proxies: no echo, no line editing, no signals from keys, no
// output processing.
func isRaw(tio unix.Termios) bool {
	return tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) == 0 && tio.Oflag&unix.OPOST == 0
}

// TestTerminalRunForeground: `crier run` on a terminal with process.terminal
// gives the container a pty of its own; what it prints reaches the user's
// terminal, what the user types reaches it, the window size and its changes
// are passed on, run exits with the container's status and leaves the
// user's terminal as it found it.
func TestTerminalRunForeground(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	u := newUserTerminal(t)
	u.setSize(37, 91)
	before := u.termios()
	if isRaw(before) {
		t.Fatalf("a new pty is already raw: %+v", before)
	}
	// The trap shows each SIGWINCH with the size the container then sees.
	// While the window changes, init waits for a reader in the background:
	// a trapped signal interrupts wait, where busybox's read would lose it
	// if it came just before read blocks.
	b := terminalBundle(e, `trap 'echo winch=$(stty size)' WINCH
echo tty=$(tty)
echo size=$(stty size)
echo stderr=yes >&2
echo ready
read line; echo got=$line
{ read line; echo got=$line; } </dev/tty & reader=$!
echo waiting
while kill -0 $reader 2>/dev/null; do wait $reader; done
exit 7`, nil)
	p := e.runOnTerminal(u, "--bundle", b, id)

	if m := u.expect(line(`tty=(\S*)`)); !regexp.MustCompile(`^/dev/pts/\d+$`).MatchString(m[1]) {
		t.Errorf("tty in the container = %q, want a /dev/pts/N", m[1])
	}
	u.expect(line(`size=37 91`))
	u.expect(line(`stderr=yes`))
	u.expect(line(`ready`))
	if during := u.termios(); !isRaw(during) {
		t.Errorf("the user's terminal is not raw while run proxies it: lflag %#x oflag %#x", during.Lflag, during.Oflag)
	}

	u.write("hello there\n")
	u.expect(line(`got=hello there`))
	u.expect(line(`waiting`))
	u.setSize(41, 123)
	u.expect(line(`winch=41 123`))
	u.write("bye\n")
	u.expect(line(`got=bye`))

	r := p.wait()
	if r.code != 7 {
		t.Errorf("run exited %d, want the container's 7; terminal showed %q", r.code, u.seen)
	}
	if after := u.termios(); after != before {
		t.Errorf("run left the terminal's mode changed:\n before %+v\n after  %+v", before, after)
	}
	u.wantHungUp()
	// The pty tells the container about a resize; a second SIGWINCH from
	// run would reach its init as well, out of step with the size.
	if n := strings.Count(u.seen, "winch="); n != 1 {
		t.Errorf("the container got %d SIGWINCH for one resize, want 1; terminal showed %q", n, u.seen)
	}
	e.assertGone(id)
}

// TestTerminalRunExitStatus: run on a terminal exits with the container's
// status, 128+N when a signal ends it; keys go to the container, so ^C
// interrupts its foreground job and not run; the user's terminal is given
// back as it was.
func TestTerminalRunExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		end    func(e *env, u *userTerminal, id string)
		want   int
	}{{
		name:   "exit 0",
		script: "echo ready; read line; exit 0",
		end:    func(e *env, u *userTerminal, id string) { u.write("go\n") },
		want:   0,
	}, {
		name:   "exit 3",
		script: "echo ready; read line; exit 3",
		end:    func(e *env, u *userTerminal, id string) { u.write("go\n") },
		want:   3,
	}, {
		// The container's pty turns ^C into SIGINT for its foreground
		// group: sleep dies of it, and sh -c, which catches SIGINT, then
		// exits 130 (were ^C run's, init would get SIGINT and wait on).
		name:   "^C",
		script: "echo ready; sleep 1000; exit 4",
		end:    func(e *env, u *userTerminal, id string) { u.write("\x03") },
		want:   128 + int(unix.SIGINT),
	}, {
		name:   "SIGKILL",
		script: "echo ready; read line",
		end:    func(e *env, u *userTerminal, id string) { e.cliOK("kill", id, "KILL") },
		want:   128 + int(unix.SIGKILL),
	}, {
		// Another's forced delete kills it and removes it before run's
		// own delete: run still ends with the status, saying nothing,
		// as runc's does.
		name:   "deleted by another",
		script: "echo ready; read line",
		end:    func(e *env, u *userTerminal, id string) { e.cliOK("delete", "--force", id) },
		want:   128 + int(unix.SIGKILL),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			u := newUserTerminal(t)
			before := u.termios()
			p := e.runOnTerminal(u, "--bundle", terminalBundle(e, tc.script, nil), id)
			u.expect(line(`ready`))
			tc.end(e, u, id)
			if r := p.wait(); r.code != tc.want {
				t.Errorf("run exited %d, want %d; terminal showed %q", r.code, tc.want, u.seen)
			}
			if after := u.termios(); after != before {
				t.Errorf("run left the terminal's mode changed:\n before %+v\n after  %+v", before, after)
			}
			u.wantHungUp()
			if strings.Contains(u.seen, "crier:") {
				t.Errorf("run printed an error; terminal showed %q", u.seen)
			}
			e.assertGone(id)
		})
	}
}

// TestTerminalRunShimDies: when run fails while it proxies (here its shim
// is killed, while run starts the container or waits for it to stop), it
// still gives the user's terminal back in the mode it found it, and prints
// its error there.
func TestTerminalRunShimDies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	u := newUserTerminal(t)
	before := u.termios()
	p := e.runOnTerminal(u, "--bundle", terminalBundle(e, "echo ready; read line", nil), id)
	u.expect(line(`ready`))
	killShim(t, e.shimState(id))
	r := p.wait()
	if r.code == 0 {
		t.Errorf("run exited 0 after its shim died")
	}
	// run's stderr is the terminal.
	m := u.expect(line(`(crier: [^\r\n]*)`))
	t.Logf("run: %s", m[1])
	if after := u.termios(); after != before {
		t.Errorf("run left the terminal's mode changed:\n before %+v\n after  %+v", before, after)
	}
	// Whether run could delete the container depends on when the shim
	// died; delete --force does the rest.
	if _, err := os.Lstat(shim.Dir(e.root, id)); err == nil {
		e.cliOK("delete", "--force", id)
	}
	u.wantHungUp()
	e.assertGone(id)
}

// TestTerminalRunSignalWhileStarting: a signal that reaches run while it
// starts the container, with the user's terminal already raw (here SIGTERM
// while a startContainer hook holds the start), does not end run: run
// forwards it once the container runs, exits with the status it gave the
// container, and gives the terminal back as it was.
func TestTerminalRunSignalWhileStarting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	u := newUserTerminal(t)
	before := u.termios()
	sync := e.hostDir("sync")
	entered, release := openFifo(t, filepath.Join(sync, "entered")), openFifo(t, filepath.Join(sync, "release"))
	timeout := int(hangDeadline / time.Second)
	b := terminalBundle(e, "read line", func(s *specs.Spec) {
		// Without a pid namespace SIGTERM ends the container's process
		// whenever it comes; pid 1 of its own namespace would ignore it
		// until sh had set a trap.
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sync", Type: "bind", Source: sync, Options: []string{"rbind", "rw"}})
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{
			Path:    "/bin/sh",
			Args:    []string{"sh", "-c", "echo > /sync/entered; read x < /sync/release"},
			Timeout: &timeout,
		}}}
	})
	p := e.runOnTerminal(u, "--bundle", b, id)
	entered.SetReadDeadline(time.Now().Add(hangDeadline))
	if _, err := entered.Read(make([]byte, 1)); err != nil {
		t.Fatalf("waiting for the startContainer hook: %v", err)
	}
	if during := u.termios(); !isRaw(during) {
		t.Errorf("the user's terminal is not raw while run starts the container: lflag %#x oflag %#x", during.Lflag, during.Oflag)
	}
	if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := release.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(); r.code != 128+int(unix.SIGTERM) {
		t.Errorf("run exited %d, want %d from the SIGTERM it forwarded; terminal showed %q", r.code, 128+int(unix.SIGTERM), u.seen)
	}
	if after := u.termios(); after != before {
		t.Errorf("run left the terminal's mode changed:\n before %+v\n after  %+v", before, after)
	}
	u.wantHungUp()
	e.assertGone(id)
}

// openFifo makes a fifo at path and opens it read-write, which neither
// blocks nor sees end of file while the other side comes and goes.
func openFifo(t *testing.T, path string) *os.File {
	t.Helper()
	if err := unix.Mkfifo(path, 0o666); err != nil {
		t.Fatalf("mkfifo %s: %v", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// consoleSocket listens on a Unix socket in the test's directory and
// returns its path and a channel that yields the pty master that arrives on
// it, or is closed without one.
func (e *env) consoleSocket() (string, <-chan *os.File) {
	e.t.Helper()
	path := filepath.Join(e.dir, "console.sock")
	return path, consoleSocketAt(e.t, path)
}

// consoleSocketAt is env.consoleSocket at a path of the caller's: a test
// that takes more than one master needs more than one socket.
func consoleSocketAt(t *testing.T, path string) <-chan *os.File {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.SetDeadline(time.Now().Add(hangDeadline))
	got := make(chan *os.File, 1)
	go func() {
		defer close(got)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(hangDeadline))
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		var fds []int
		for i := range msgs {
			f, _ := unix.ParseUnixRights(&msgs[i])
			fds = append(fds, f...)
		}
		if len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return
		}
		unix.SetNonblock(fds[0], true)
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return got
}

// TestTerminalRunDetachedConsoleSocket: `run -d` with process.terminal
// sends the pty master to --console-socket and returns while the container
// runs on the slave; the holder of the master talks to it.
func TestTerminalRunDetachedConsoleSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	sock, masters := e.consoleSocket()
	b := terminalBundle(e, "echo tty=$(tty); read line; echo got=$line; exit 5", nil)
	// The container waits for a line that only comes after run returns.
	r := e.cliRun("run", "-d", "--console-socket", sock, "--bundle", b, id)
	if r.code != 0 {
		t.Fatalf("run -d: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("run -d printed %q %q, want nothing", r.stdout, r.stderr)
	}
	master, ok := <-masters
	if !ok {
		t.Fatal("no pty master arrived on the console socket")
	}
	t.Cleanup(func() { master.Close() })
	if _, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN); err != nil {
		t.Fatalf("the descriptor received is not a pty master: TIOCGPTN: %v", err)
	}
	sub := e.subscribe(id, true)
	u := &userTerminal{t: t, master: master}
	u.expect(line(`tty=/dev/pts/\d+`))
	u.write("over the socket\n")
	u.expect(line(`got=over the socket`))
	wantExit(t, next(t, sub, protocol.EventStopped), 5, "")
	e.cliOK("delete", id)
	e.assertGone(id)
}

// TestTerminalNoConsoleSocket: a terminal needs someone to hold the pty
// master. Where crier will not be there to hold it (create, run -d) and no
// --console-socket is given, it refuses, as runc does, with one line and
// nothing left behind.
func TestTerminalNoConsoleSocket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"create", []string{"create"}},
		{"run -d", []string{"run", "-d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := terminalBundle(e, "echo should not run", nil)
			r := e.cliRun(append(tc.args, "--bundle", b, id)...)
			wantCLIError(t, tc.name, r, "console-socket", "console socket")
			t.Logf("%s: %s", tc.name, strings.TrimSpace(r.stderr))
			e.assertGone(id)
		})
	}
}

// TestConsoleSocketMisuse: a --console-socket that would never get a pty
// (process.terminal false) or that a foreground run would not use is
// refused, as runc refuses both, with one line and nothing left behind.
func TestConsoleSocketMisuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		terminal bool
		wants    []string
	}{
		{"create without terminal", []string{"create"}, false, []string{"--console-socket", "process.terminal is false"}},
		{"run -d without terminal", []string{"run", "-d"}, false, []string{"--console-socket", "process.terminal is false"}},
		{"foreground run", []string{"run"}, true, []string{"--console-socket", "--detach"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"echo", "should not run"}, func(s *specs.Spec) { s.Process.Terminal = tc.terminal })
			sock, _ := e.consoleSocket()
			r := e.cliRun(append(tc.args, "--console-socket", sock, "--bundle", b, id)...)
			wantCLIError(t, tc.name, r, tc.wants...)
			t.Logf("%s: %s", tc.name, strings.TrimSpace(r.stderr))
			e.assertGone(id)
		})
	}
}
