package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// A shim that comes back. A container outlives its shim: when crier-shim
// dies (the OOM killer, SIGKILL, a bug), the container runs on, and the
// next crier command that finds the socket refusing starts a new shim for
// it (cmd/runtime, recover.go there). Recover is that shim's first image:
// it takes the container over from what the dead one left on disk, and
// then, as after create, execs itself to serve (Resume):
//
//   - the state file (statedir): the container's pid and start time, its
//     cgroups, its status and, once stopped, its exit;
//   - the config the container was created from (statedir.ConfigFile);
//   - the event journal (journal.go): the history and the last seq, so
//     that seq goes on where it stopped, never repeating;
//   - the socket's path, on which it listens anew.
//
// The container is taken over by pid and start time, with a pidfd, never
// by pid alone. It is not the new shim's child (the old one's death gave it
// to the nearest subreaper, or init), so its exit is read as a supervised
// one's: from the pidfd once its reaper has reaped it (PIDFD_INFO_EXIT).
// If it exited while no shim watched, its status is gone, and stopped says
// so (exitUnknown). Nothing of the container is touched: its processes,
// cgroups and mounts stay as they were.
//
// The directory's lock (statedir.Dir.Lock) keeps two from coming back at
// once: the second waits, finds the socket answering, and leaves.

// ErrShimAlive is Recover's error when the container's shim still answers:
// there is nothing to take over.
var ErrShimAlive = errors.New("the container's shim is running")

// Recover takes over container id under root from its dead shim and
// serves it. report gets one line, as from create: {"pid":N,"shim":S} once
// the socket listens (or {"error":...}); Recover returns only on failure.
func Recover(root, id string, report io.WriteCloser) error {
	h, err := takeOver(root, id)
	if err != nil {
		reportRecover(report, Report{Error: err.Error()})
		return err
	}
	reportRecover(report, Report{Pid: h.Container.Pid})
	return execServe(h)
}

func reportRecover(w io.WriteCloser, r Report) {
	r.Shim = os.Getpid()
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
	w.Close()
}

// takeOver builds the serving image's handoff from what is on disk, with
// the socket listening, under the directory's lock.
func takeOver(root, id string) (*handoff, error) {
	d, err := statedir.Open(root, id)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	unlock, err := d.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := d.ReadState()
	if err != nil {
		return nil, err
	}
	if answers(d) || container.Alive(st.ShimPid, st.ShimStart) {
		return nil, ErrShimAlive
	}
	if st.Status == protocol.StatusCreating {
		return nil, fmt.Errorf("container %q: its shim died while creating it; delete it with --force", id)
	}
	h, err := recoveredHandoff(d, st)
	if err != nil {
		return nil, err
	}
	if err := d.RemoveSocket(); err != nil {
		h.close()
		return nil, err
	}
	sock, err := d.SocketPath()
	if err != nil {
		h.close()
		return nil, err
	}
	ln, err := protocol.Listen(sock)
	if err != nil {
		h.close()
		return nil, err
	}
	f, err := ln.File() // a dup, for the serving image
	ln.Close()
	if err != nil {
		h.close()
		return nil, err
	}
	h.ListenFD = int(f.Fd())
	return h, nil
}

// answers reports whether a shim accepts on the directory's socket.
func answers(d *statedir.Dir) bool {
	sock, err := d.SocketPath()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// recoveredHandoff is the record, the container and the phase of the
// container as the dead shim left them.
func recoveredHandoff(d *statedir.Dir, st *statedir.State) (*handoff, error) {
	b, err := d.ReadConfig()
	if err != nil {
		return nil, err
	}
	spec, err := container.ParseSpec(b, d.Path()+"/"+statedir.ConfigFile)
	if err != nil {
		return nil, err
	}
	rec := record{
		Root: d.Root(), ID: st.ID, Bundle: st.Bundle, LogPath: st.Log,
		Buffer: ParseBuffer(st.EventBuffer), Owner: st.Owner, PidStart: st.PidStart,
		Supervised: st.Supervised, Adopted: true, SharedPidNS: !container.OwnPidNamespace(spec),
	}
	if rec.CreatedAt, err = time.Parse(time.RFC3339Nano, st.Created); err != nil {
		return nil, fmt.Errorf("state file: created %q: %w", st.Created, err)
	}
	if rec.ShimStart, err = container.StartTime(os.Getpid()); err != nil {
		return nil, err
	}
	if err := rec.replayJournal(d); err != nil {
		return nil, err
	}
	h := &handoff{Rec: rec, ListenFD: -1, Container: &container.Handoff{
		ID: st.ID, Bundle: st.Bundle, Rootfs: st.Rootfs, Spec: servingSpec(spec),
		Pid: st.Pid, PidFD: -1, SyncFD: -1, Cgroup: st.Cgroup,
	}}
	switch st.Status {
	case protocol.StatusStopped:
		h.Phase, h.Exit = phaseStopped, recordedExit(&st.State)
		return h, nil
	case protocol.StatusCreated:
		// Its init gives up when the shim goes (the sync socket's
		// EOF): it cannot be started, only deleted.
		h.Phase = phaseCreated
	case protocol.StatusPaused:
		h.Phase = phasePaused
	default:
		h.Phase = phaseRunning
	}
	// A process that is gone, or another one's now, has exited unseen:
	// the serving image's first look says so (pidfd -1: exitUnknown).
	if fd, err := unix.PidfdOpen(st.Pid, 0); err == nil {
		if container.Alive(st.Pid, st.PidStart) || zombieOf(st.Pid, st.PidStart) {
			h.Container.PidFD = fd
		} else {
			unix.Close(fd)
		}
	}
	return h, nil
}

// zombieOf reports whether pid is the process that started at start, dead
// but not yet reaped: its reaper will reap it, and the pidfd then has its
// status.
func zombieOf(pid int, start uint64) bool {
	got, err := container.StartTime(pid)
	return err == nil && got == start
}

// recordedExit is the exit the state file recorded before stopped was
// published (exitStatus.record), or an unknown one.
func recordedExit(st *protocol.State) *exitStatus {
	e := &exitStatus{Unknown: st.ExitStatus == nil || st.ExitUnknown, OOMKilled: st.OOMKilled}
	if st.ExitStatus != nil {
		e.Status = *st.ExitStatus
	}
	if st.Signal != "" {
		if sig, err := protocol.ParseSignal(st.Signal); err == nil {
			e.Signal = sig
		}
	}
	e.At, _ = time.Parse(time.RFC3339Nano, st.ExitedAt)
	return e
}

// replayJournal takes the history and the last seq from the journal: the
// events the dead shim published, each written before it was.
func (rec *record) replayJournal(d *statedir.Dir) error {
	b, err := d.ReadJournal()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var ev protocol.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			// A line cut short by the death: it was never sent.
			if i == bytes.Count(b, []byte("\n")) {
				break
			}
			return fmt.Errorf("%s/%s line %d: %w", d.Path(), statedir.JournalFile, i+1, err)
		}
		if ev.Seq <= rec.Seq {
			continue
		}
		rec.Seq = ev.Seq
		if at, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
			rec.LastAt = at
		}
		if rec.Buffer == nil || rec.Buffer[ev.Type] {
			rec.History = appendHistory(rec.History, ev)
		}
	}
	return nil
}

// close closes what h holds.
func (h *handoff) close() {
	for _, fd := range []int{h.ListenFD, h.Container.PidFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// execServe execs the shim binary in serve mode with h. It returns only
// on failure.
func execServe(h *handoff) error {
	for _, fd := range []int{h.ListenFD, h.Container.PidFD} {
		if fd >= 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return os.NewSyscallError("fcntl F_SETFD", err)
			}
		}
	}
	fd, err := unix.MemfdCreate("crier-shim-handoff", 0)
	if err != nil {
		return os.NewSyscallError("memfd_create", err)
	}
	if _, err := unix.Pwrite(fd, h.marshal(), 0); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("pwrite", err)
	}
	args := []string{"crier-shim", "--serve", strconv.Itoa(fd), "--root", h.Rec.Root, "--id", h.Rec.ID}
	err = execServing("/proc/self/exe", args)
	unix.Close(fd)
	return fmt.Errorf("exec /proc/self/exe: %w", err)
}
