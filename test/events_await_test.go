package test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// waitTicket waits for n waiters to hold a ticket for id (statedir.Await),
// watching for them rather than polling.
func (e *env) waitTicket(id string, n int) { e.waitEntries(statedir.AwaitPath(e.root, id), n) }

// waitEntries waits for the directory dir to exist and hold n entries.
func (e *env) waitEntries(dir string, n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	if err := statedir.WaitExist(ctx, dir); err != nil {
		e.t.Fatalf("waiting for %s: %v", dir, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		e.t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		e.t.Fatal(err)
	}
	f.SetReadDeadline(deadline(ctx))
	buf := make([]byte, 4096)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) >= n {
			return
		}
		if _, err := f.Read(buf); err != nil {
			e.t.Fatalf("waiting for %d entries in %s: %v (%d so far)", n, dir, err, len(ents))
		}
	}
}

// ticketTaken starts watching for a waiter to take a ticket for id, and
// returns a func that waits until one has: its ticket file is there, or
// it has given it back already (the ticket's directory went). Unlike
// waitTicket it sees a ticket however briefly held: a waiter for a
// container that exists gives its ticket back once it has subscribed,
// which may be before anyone looks. Call it before the waiter starts.
func (e *env) ticketTaken(id string) (wait func()) {
	e.t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		e.t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	if _, err := unix.InotifyAddWatch(fd, e.root, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		f.Close()
		e.t.Fatal(err)
	}
	dir := statedir.AwaitPath(e.root, id)
	return func() {
		e.t.Helper()
		defer f.Close()
		f.SetReadDeadline(time.Now().Add(hangDeadline))
		buf := make([]byte, 4096)
		created, watching := false, false
		for {
			if !watching {
				// Once the directory is there, watch it too: its
				// ticket may come, or it may go with the ticket.
				_, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE_SELF|unix.IN_ONLYDIR)
				watching = err == nil
				if !watching && created {
					return // made and gone before it could be watched
				}
			}
			if watching {
				ents, err := os.ReadDir(dir)
				if len(ents) > 0 || errors.Is(err, fs.ErrNotExist) {
					return
				}
			}
			n, err := f.Read(buf)
			if err != nil {
				e.t.Fatalf("waiting for a ticket in %s: %v", dir, err)
			}
			eachInotifyEvent(buf[:n], func(_ uint32, name string) {
				created = created || name == filepath.Base(dir)
			})
		}
	}
}

func deadline(ctx context.Context) (d time.Time) {
	d, _ = ctx.Deadline()
	return d
}

// TestEventBeforeCreateWhileOffCPU: a waiter started before the
// container gets its events even when it does not run again until the
// container has come and gone (it is stopped with SIGSTOP meanwhile), as
// a waiter on a busy machine may not: `crier event --monitor ID &` and
// then a short create, start, delete used to leave it waiting forever.
func TestEventBeforeCreateWhileOffCPU(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		args     []string
		badMount bool     // the create fails
		want     []string // the types printed
		code     int
		stderr   string
	}{
		{name: "monitor", args: []string{"--monitor"}, want: []string{"created", "started", "stopped", "deleted"}},
		{name: "--event stopped", args: []string{"--event", "stopped"}, want: []string{"stopped"}},
		{name: "monitor since 2", args: []string{"-m", "--since", "2"}, want: []string{"stopped", "deleted"}},
		// All of it happened after the waiter began: none is history.
		{name: "monitor, no history", args: []string{"-m", "--no-history"}, want: []string{"created", "started", "stopped", "deleted"}},
		{name: "--event paused", args: []string{"--event", "paused"}, code: 1, stderr: "was deleted before any paused event"},
		{name: "create fails", args: []string{"--event", "created"}, badMount: true, code: 1, stderr: "create failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", "exit 17"}, func(s *specs.Spec) {
				if tc.badMount {
					s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: filepath.Join(e.dir, "none"), Options: []string{"bind"}})
				}
			})
			// Two waiters, so that one delivery serves several.
			waiters := []*cliProc{
				e.cliStart(nil, append([]string{"event"}, append(tc.args, id)...)...),
				e.cliStart(nil, append([]string{"event"}, append(tc.args, id)...)...),
			}
			e.waitTicket(id, len(waiters))
			for _, w := range waiters {
				w.cmd.Process.Signal(syscall.SIGSTOP)
			}
			if tc.badMount {
				e.createFails(id, b)
			} else {
				e.create(id, b)
				e.cliOK("start", id)
				wantExit(t, e.waitStopped(id), 17, "")
				e.cliOK("delete", id)
			}
			for i, w := range waiters {
				w.cmd.Process.Signal(syscall.SIGCONT)
				r := w.wait()
				if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
					t.Fatalf("waiter %d: exit %d, stderr %q; want %d and %q", i, r.code, r.stderr, tc.code, tc.stderr)
				}
				evs := events(t, r.stdout)
				if got := typesOf(evs); !slices.Equal(got, tc.want) {
					t.Errorf("waiter %d printed %q, want %q", i, got, tc.want)
				}
				for _, ev := range evs {
					if ev.ID != id {
						t.Errorf("waiter %d: event of %q", i, ev.ID)
					}
					if ev.Type == protocol.EventStopped {
						wantExit(t, ev, 17, "")
					}
				}
			}
		})
	}
}

// TestEventWaiterEndsCleanly: a waiter for an ID that never comes gives
// its ticket back whether it is interrupted, terminated, hung up on or
// times out (newEnv checks that the root is left empty). Under nohup a
// SIGHUP stays ignored: the SIGTERM after it is what ends the waiter.
func TestEventWaiterEndsCleanly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		sig   syscall.Signal
		nohup bool
	}{
		{"SIGINT", syscall.SIGINT, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGHUP", syscall.SIGHUP, false},
		{"SIGHUP under nohup", syscall.SIGTERM, true},
		{"--timeout", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			if tc.sig == 0 {
				r := e.cliRun("event", "--timeout", "100ms", id)
				wantCLIError(t, "event --timeout", r, "timed out")
				return
			}
			var nohup func(*exec.Cmd)
			if tc.nohup {
				nohup = func(c *exec.Cmd) { c.Path, c.Args = "/usr/bin/nohup", append([]string{"nohup"}, c.Args...) }
			}
			w := e.cliStart(nohup, "event", "--monitor", id)
			e.waitTicket(id, 1)
			if tc.nohup {
				// Both pending at once would go lowest first:
				// SIGHUP, had it not been ignored.
				w.cmd.Process.Signal(syscall.SIGHUP)
			}
			w.cmd.Process.Signal(tc.sig)
			err := w.cmd.Wait()
			w.out.Close()
			w.err.Close()
			ws, _ := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != tc.sig {
				t.Errorf("waiter ended with %v, want killed by %v", err, tc.sig)
			}
		})
	}
}

// TestEventAllWhileOffCPU: an `event --all` stream that is off the CPU
// (stopped with SIGSTOP) while containers come and go still prints their
// events once it runs again, and those of a container it follows live
// once only. On SIGTERM it gives its ticket back (newEnv checks that the
// root is left empty).
func TestEventAllWhileOffCPU(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream, out := e.cliStartPiped("event", "--all", "--monitor")
	e.waitEntries(statedir.AwaitAllPath(e.root), 1)
	b := e.bundle([]string{"sh", "-c", "exit 17"}, nil)
	lifecycle := func(id string) {
		e.create(id, b)
		e.cliOK("start", id)
		wantExit(t, e.waitStopped(id), 17, "")
		e.cliOK("delete", id)
	}
	stream.cmd.Process.Signal(syscall.SIGSTOP)
	gone := []string{e.id(), e.id()}
	for _, id := range gone {
		lifecycle(id)
	}
	stream.cmd.Process.Signal(syscall.SIGCONT)
	want := []string{"created", "started", "stopped", "deleted"}
	seen := map[string][]string{}
	for range 2 * len(want) {
		ev := decodeEvent(t, out.line(t))
		seen[ev.ID] = append(seen[ev.ID], ev.Type)
		if ev.Type == protocol.EventStopped {
			wantExit(t, ev, 17, "")
		}
	}
	// One followed live; its deleted is the stream's last line.
	live := e.id()
	lifecycle(live)
	for {
		ev := decodeEvent(t, out.line(t))
		seen[ev.ID] = append(seen[ev.ID], ev.Type)
		if ev.ID == live && ev.Type == protocol.EventDeleted {
			break
		}
	}
	for _, id := range append(gone, live) {
		if !slices.Equal(seen[id], want) {
			t.Errorf("stream printed %q for %s, want %q", seen[id], id, want)
		}
	}
	stream.cmd.Process.Signal(syscall.SIGTERM)
	if rest := out.rest(t); rest != "" {
		t.Errorf("stream printed more: %q", rest)
	}
	stream.cmd.Wait()
	stream.out.Close()
	stream.err.Close()
	if ws, _ := stream.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("stream ended %v, want killed by SIGTERM", stream.cmd.ProcessState)
	}
}

// TestEventWhileDeletedOffCPU: a waiter that finds the container there
// (on the Go path: the relay, which would serve it at once, is off) and is
// then off the CPU while the container is deleted still prints all its
// events: it took its ticket before it looked. Whether it had subscribed
// before the stop or not, the output is the same.
func TestEventWhileDeletedOffCPU(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sh", "-c", "exit 17"}, nil))
	e.cliOK("start", id)
	wantExit(t, e.waitStopped(id), 17, "")
	taken := e.ticketTaken(id)
	w := e.cliStart(func(c *exec.Cmd) { c.Env = append(os.Environ(), "CRIER_RELAY=0") }, "event", "--monitor", id)
	taken()
	w.cmd.Process.Signal(syscall.SIGSTOP)
	e.cliOK("delete", id)
	w.cmd.Process.Signal(syscall.SIGCONT)
	r := w.waitOK()
	want := []string{"created", "started", "stopped", "deleted"}
	if got := typesOf(events(t, r.stdout)); !slices.Equal(got, want) {
		t.Errorf("waiter printed %q, want %q", got, want)
	}
}
