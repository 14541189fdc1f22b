package shim

import (
	"encoding/binary"
	"errors"
	"golang.org/x/sys/unix"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
)

// The handoff travels between two images of the same binary, so its format
// is private: a magic string, then the fields in a fixed order, integers as
// varints, strings and collections length-prefixed. Decoding it with
// encoding/json would leave that package's per-type caches (for the whole
// runtime-spec type tree) resident in the serving image for its life.
//
// A nil map, slice or pointer is written as 0 and a present one as its
// length (or 1) plus one, because nil and empty mean different things here:
// a nil Buffer keeps every event type, an empty one none.

const handoffMagic = "crier-handoff-4\n"

var errHandoffShort = errors.New("truncated or corrupt")

type handoffWriter struct{ b []byte }

func (w *handoffWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *handoffWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *handoffWriter) bool(v bool) {
	if v {
		w.uint(1)
	} else {
		w.uint(0)
	}
}

func (w *handoffWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// present writes whether a nil-able value is there, with its length.
func (w *handoffWriter) present(isNil bool, n int) {
	if isNil {
		w.uint(0)
	} else {
		w.uint(uint64(n) + 1)
	}
}

func (w *handoffWriter) strs(s []string) {
	w.present(s == nil, len(s))
	for _, v := range s {
		w.str(v)
	}
}

func (w *handoffWriter) ints(v []int) {
	w.present(v == nil, len(v))
	for _, x := range v {
		w.int(int64(x))
	}
}

func (w *handoffWriter) uints(v []uint64) {
	w.present(v == nil, len(v))
	for _, n := range v {
		w.uint(n)
	}
}

func (w *handoffWriter) strMap(m map[string]string) {
	w.present(m == nil, len(m))
	for k, v := range m {
		w.str(k)
		w.str(v)
	}
}

func (w *handoffWriter) time(t time.Time) {
	w.int(t.Unix())
	w.int(int64(t.Nanosecond()))
}

func (w *handoffWriter) intPtr(p *int) {
	w.present(p == nil, 0)
	if p != nil {
		w.int(int64(*p))
	}
}

type handoffReader struct {
	b   []byte
	err error
}

func (r *handoffReader) uint() uint64 { return handoffVarint(r, binary.Uvarint) }

func (r *handoffReader) int() int64 { return handoffVarint(r, binary.Varint) }

// handoffVarint reads one varint with read, or marks r short.
func handoffVarint[T uint64 | int64](r *handoffReader, read func([]byte) (T, int)) T {
	v, n := read(r.b)
	if n <= 0 {
		r.err = errHandoffShort
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *handoffReader) bool() bool { return r.uint() != 0 }

func (r *handoffReader) str() string {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.err = errHandoffShort
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// present reads what handoffWriter.present wrote: whether the value is
// there, and its length. A length that could not fit in what is left (every
// element takes at least a byte) is corrupt.
func (r *handoffReader) present() (bool, int) {
	n := r.uint()
	if n == 0 {
		return false, 0
	}
	if n-1 > uint64(len(r.b)) {
		r.err = errHandoffShort
		r.b = nil
		return false, 0
	}
	return true, int(n - 1)
}

// readList reads a list the writer wrote as present and then each item,
// each with item.
func readList[T any](r *handoffReader, item func() T) []T {
	ok, n := r.present()
	if !ok {
		return nil
	}
	v := make([]T, 0, n)
	for range n {
		v = append(v, item())
	}
	return v
}

func (r *handoffReader) strs() []string { return readList(r, r.str) }

func (r *handoffReader) strMap() map[string]string {
	ok, n := r.present()
	if !ok {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := r.str()
		m[k] = r.str()
	}
	return m
}

func (r *handoffReader) ints() []int {
	return readList(r, func() int { return int(r.int()) })
}

func (r *handoffReader) uints() []uint64 { return readList(r, r.uint) }

func (r *handoffReader) time() time.Time {
	sec := r.int()
	return time.Unix(sec, r.int()).UTC()
}

func (r *handoffReader) intPtr() *int {
	if ok, _ := r.present(); !ok {
		return nil
	}
	v := int(r.int())
	return &v
}

func (h *handoff) marshal() []byte {
	w := &handoffWriter{b: []byte(handoffMagic)}
	w.record(&h.Rec)
	w.int(int64(h.ListenFD))
	w.present(h.Container == nil, 0)
	if c := h.Container; c != nil {
		w.str(c.ID)
		w.str(c.Bundle)
		w.str(c.Rootfs)
		w.spec(c.Spec)
		w.int(int64(c.Pid))
		w.int(int64(c.PidFD))
		w.int(int64(c.SyncFD))
		w.ints(c.Held)
		w.present(c.Cgroup == nil, 0)
		if cg := c.Cgroup; cg != nil {
			w.strMap(cg.Paths)
			w.strs(cg.Created)
			w.bool(cg.SharedParent)
		}
	}
	w.uint(uint64(h.Phase))
	w.present(h.Exit == nil, 0)
	if e := h.Exit; e != nil {
		w.int(int64(e.Status))
		w.int(int64(e.Signal))
		w.bool(e.Unknown)
		w.bool(e.OOMKilled)
		w.time(e.At)
	}
	w.bool(h.Paused)
	w.uint(h.ExecSeq)
	w.present(h.Subs == nil, len(h.Subs))
	for _, sub := range h.Subs {
		w.int(int64(sub.FD))
		w.uint(sub.Queued)
		w.present(sub.Watch == nil, 0)
		if rw := sub.Watch; rw != nil {
			w.str(rw.ID)
			w.strs(rw.Types)
			w.bool(rw.Monitor)
			w.str(rw.LogPath)
			w.str(rw.LogFormat)
			w.int(int64(rw.Timeout))
			w.time(rw.Deadline)
		}
	}
	w.present(h.OOM == nil, 0)
	if o := h.OOM; o != nil {
		w.int(int64(o.FD))
		w.bool(o.V1)
		w.str(o.Dir)
		w.uint(o.Kills)
		w.uint(o.Below)
		w.uint(o.Unkilled)
		w.strs(o.LevelDirs)
		w.uints(o.LevelHits)
		w.present(o.LevelFDs == nil, len(o.LevelFDs))
		for _, fd := range o.LevelFDs {
			w.int(int64(fd))
		}
	}
	w.bool(h.OOMOff)
	return w.b
}

// record writes the shim's record, the handoff's first part.
func (w *handoffWriter) record(rec *record) {
	w.str(rec.Root)
	w.str(rec.ID)
	w.str(rec.Bundle)
	w.str(rec.LogPath)
	w.present(rec.Buffer == nil, len(rec.Buffer))
	for k, v := range rec.Buffer {
		w.str(k)
		w.bool(v)
	}
	w.time(rec.CreatedAt)
	w.uint(rec.ShimStart)
	w.str(rec.Owner)
	w.uint(rec.PidStart)
	w.bool(rec.Subreaper)
	w.bool(rec.SharedPidNS)
	w.bool(rec.Supervised)
	w.bool(rec.Adopted)
	w.uint(rec.Seq)
	w.time(rec.LastAt)
	w.present(rec.History == nil, len(rec.History))
	for _, ev := range rec.History {
		w.str(ev.Type)
		w.str(ev.ID)
		w.str(ev.Timestamp)
		w.uint(ev.Seq)
		w.int(int64(ev.Pid))
		w.intPtr(ev.ExitStatus)
		w.bool(ev.ExitUnknown)
		w.str(ev.Signal)
		w.str(ev.ExecID)
		w.uint(ev.From)
		w.uint(ev.To)
		w.bool(ev.OOMKilled)
		w.uint(ev.Count)
		w.str(ev.Limit)
		w.str(ev.Cgroup)
	}
}

// spec writes what servingSpec keeps of a config.
func (w *handoffWriter) spec(s *specs.Spec) {
	w.present(s == nil, 0)
	if s == nil {
		return
	}
	w.str(s.Version)
	w.present(s.Root == nil, 0)
	if s.Root != nil {
		w.str(s.Root.Path)
		w.bool(s.Root.Readonly)
	}
	w.strMap(s.Annotations)
	w.bool(s.Process != nil)
	w.present(s.Hooks == nil, 0)
	if s.Hooks != nil {
		w.hooks(s.Hooks.Poststart)
		w.hooks(s.Hooks.Poststop)
	}
	var sc specs.LinuxSeccomp
	if s.Linux != nil && s.Linux.Seccomp != nil {
		sc = *s.Linux.Seccomp
	}
	w.str(sc.ListenerPath)
	w.str(sc.ListenerMetadata)
}

func (w *handoffWriter) hooks(hs []specs.Hook) {
	w.present(hs == nil, len(hs))
	for _, h := range hs {
		w.str(h.Path)
		w.strs(h.Args)
		w.strs(h.Env)
		w.intPtr(h.Timeout)
	}
}

func unmarshalHandoff(b []byte) (*handoff, error) {
	if len(b) < len(handoffMagic) || string(b[:len(handoffMagic)]) != handoffMagic {
		return nil, errors.New("not a crier handoff")
	}
	r := &handoffReader{b: b[len(handoffMagic):]}
	h := &handoff{Rec: r.record()}
	h.ListenFD = int(r.int())
	if ok, _ := r.present(); ok {
		c := &container.Handoff{ID: r.str(), Bundle: r.str(), Rootfs: r.str(), Spec: r.spec()}
		c.Pid = int(r.int())
		c.PidFD = int(r.int())
		c.SyncFD = int(r.int())
		c.Held = r.ints()
		if ok, _ := r.present(); ok {
			c.Cgroup = &cgroup.Cgroup{Paths: r.strMap(), Created: r.strs(), SharedParent: r.bool()}
		}
		h.Container = c
	}
	h.Phase = phase(r.uint())
	if ok, _ := r.present(); ok {
		h.Exit = &exitStatus{Status: int(r.int()), Signal: unix.Signal(r.int()), Unknown: r.bool(), OOMKilled: r.bool(), At: r.time()}
	}
	h.Paused = r.bool()
	h.ExecSeq = r.uint()
	if ok, n := r.present(); ok {
		h.Subs = make([]handedSub, 0, n)
		for range n {
			hs := handedSub{FD: int(r.int()), Queued: r.uint()}
			if ok, _ := r.present(); ok {
				hs.Watch = &relayWatch{Watcher: verb.Watcher{ID: r.str(), Types: r.strs(), Monitor: r.bool()}, LogPath: r.str(), LogFormat: r.str(),
					Timeout: time.Duration(r.int()), Deadline: r.time()}
			}
			h.Subs = append(h.Subs, hs)
		}
	}
	if ok, _ := r.present(); ok {
		o := &cgroup.OOMWatchState{FD: int(r.int()), V1: r.bool(), Dir: r.str(), Kills: r.uint(), Below: r.uint(), Unkilled: r.uint(), LevelDirs: r.strs()}
		o.LevelHits = r.uints()
		if ok, n := r.present(); ok {
			o.LevelFDs = make([]int, 0, n)
			for range n {
				o.LevelFDs = append(o.LevelFDs, int(r.int()))
			}
		}
		h.OOM = o
	}
	h.OOMOff = r.bool()
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return h, nil
}

// record reads what handoffWriter.record wrote.
func (r *handoffReader) record() record {
	rec := record{Root: r.str(), ID: r.str(), Bundle: r.str(), LogPath: r.str()}
	if ok, n := r.present(); ok {
		rec.Buffer = make(map[string]bool, n)
		for range n {
			k := r.str()
			rec.Buffer[k] = r.bool()
		}
	}
	rec.CreatedAt = r.time()
	rec.ShimStart = r.uint()
	rec.Owner = r.str()
	rec.PidStart = r.uint()
	rec.Subreaper = r.bool()
	rec.SharedPidNS = r.bool()
	rec.Supervised = r.bool()
	rec.Adopted = r.bool()
	rec.Seq = r.uint()
	rec.LastAt = r.time()
	if ok, n := r.present(); ok {
		rec.History = make([]protocol.Event, n)
		for i := range rec.History {
			ev := &rec.History[i]
			ev.Type, ev.ID, ev.Timestamp = r.str(), r.str(), r.str()
			ev.Seq = r.uint()
			ev.Pid = int(r.int())
			ev.ExitStatus = r.intPtr()
			ev.ExitUnknown = r.bool()
			ev.Signal = r.str()
			ev.ExecID = r.str()
			ev.From, ev.To = r.uint(), r.uint()
			ev.OOMKilled = r.bool()
			ev.Count = r.uint()
			ev.Limit, ev.Cgroup = r.str(), r.str()
		}
	}
	return rec
}

func (r *handoffReader) spec() *specs.Spec {
	if ok, _ := r.present(); !ok {
		return nil
	}
	s := &specs.Spec{Version: r.str()}
	if ok, _ := r.present(); ok {
		s.Root = &specs.Root{Path: r.str(), Readonly: r.bool()}
	}
	s.Annotations = r.strMap()
	if r.bool() {
		s.Process = &specs.Process{}
	}
	if ok, _ := r.present(); ok {
		s.Hooks = &specs.Hooks{Poststart: r.hooks(), Poststop: r.hooks()}
	}
	if path, meta := r.str(), r.str(); path != "" {
		s.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{ListenerPath: path, ListenerMetadata: meta}}
	}
	return s
}

func (r *handoffReader) hooks() []specs.Hook {
	ok, n := r.present()
	if !ok {
		return nil
	}
	hs := make([]specs.Hook, n)
	for i := range hs {
		hs[i] = specs.Hook{Path: r.str(), Args: r.strs(), Env: r.strs(), Timeout: r.intPtr()}
	}
	return hs
}
