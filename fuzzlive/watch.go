package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	crcontainer "github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// procSample is one reading of the shim's memory and descriptors.
type procSample struct {
	rss, pss, uss, anon int64 // smaps_rollup; uss = Private_Clean + Private_Dirty
	hwm                 int64 // VmHWM: the peak rss, as the kernel tracked it
	fds, threads        int
}

func sample(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return s, err
	}
	fields := kbFields(b)
	s.rss, s.pss, s.anon = fields["Rss"], fields["Pss"], fields["Anonymous"]
	s.uss = fields["Private_Clean"] + fields["Private_Dirty"]
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	fields = kbFields(b)
	s.hwm = fields["VmHWM"]
	s.threads = int(fields["Threads"] / 1024)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	return s, nil
}

// kbFields reads "Name:   123 kB" lines as bytes (and plain numbers times
// 1024, which the caller divides back).
func kbFields(b []byte) map[string]int64 {
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[name] = n * 1024
		}
	}
	return m
}

// fdDiff names what the shim's descriptors point at, for a report.
func fdDiff(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	count := map[string]int{}
	for _, e := range ents {
		t, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if i := strings.IndexByte(t, '['); i > 0 {
			t = t[:i]
		}
		count[t]++
	}
	return fmt.Sprint(count)
}

// sampler reads the shim every 100 ms and keeps the maximum of each
// figure, and notices if the shim's pid stops being the shim.
type sampler struct {
	mu   sync.Mutex
	max  procSample
	last procSample
	n    int
	died string
	quit chan struct{}
	done chan struct{}
}

func startSampler(pid int, start uint64) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			cur, err := sample(pid)
			st, serr := crcontainer.StartTime(pid)
			s.mu.Lock()
			if err != nil || serr != nil || st != start {
				if s.died == "" {
					s.died = fmt.Sprintf("shim pid %d gone or replaced: %v %v", pid, err, serr)
				}
			} else {
				s.n++
				s.last = cur
				s.max.rss = max(s.max.rss, cur.rss)
				s.max.pss = max(s.max.pss, cur.pss)
				s.max.uss = max(s.max.uss, cur.uss)
				s.max.anon = max(s.max.anon, cur.anon)
				s.max.hwm = max(s.max.hwm, cur.hwm)
				s.max.fds = max(s.max.fds, cur.fds)
				s.max.threads = max(s.max.threads, cur.threads)
			}
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) current() procSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *sampler) stop() { close(s.quit); <-s.done }

// subscriber is the well-behaved client connected throughout: it reads
// every event and checks that seq goes up by one each time.
type subscriber struct {
	mu     sync.Mutex
	evs    []protocol.Event
	gap    string
	end    error // how the stream ended
	ended  chan struct{}
	change chan struct{}
}

func subscribe(sock string) (*subscriber, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := protocol.Dial(ctx, sock)
	if err != nil {
		return nil, err
	}
	if err := cl.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		cl.Close()
		return nil, err
	}
	s := &subscriber{ended: make(chan struct{}), change: make(chan struct{}, 1)}
	go func() {
		defer close(s.ended)
		defer cl.Close()
		for {
			ev, err := cl.Next(context.Background())
			s.mu.Lock()
			if err != nil {
				s.end = err
				s.mu.Unlock()
				return
			}
			if want := uint64(len(s.evs)) + 1; ev.Seq != want && s.gap == "" {
				s.gap = fmt.Sprintf("event %s has seq %d, want %d", ev.Type, ev.Seq, want)
			}
			s.evs = append(s.evs, ev)
			s.mu.Unlock()
			select {
			case s.change <- struct{}{}:
			default:
			}
		}
	}()
	return s, nil
}

func (s *subscriber) events() []protocol.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Event(nil), s.evs...)
}

func (s *subscriber) lastSeq() uint64 {
	evs := s.events()
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// waitFor waits until cond holds of the events, or timeout.
func (s *subscriber) waitFor(cond func([]protocol.Event) bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		if cond(s.events()) {
			return true
		}
		select {
		case <-s.change:
		case <-deadline:
			return cond(s.events())
		}
	}
}

// find returns the first event of type typ with execID.
func (s *subscriber) find(typ, execID string) *protocol.Event {
	for _, ev := range s.events() {
		if ev.Type == typ && ev.ExecID == execID {
			return &ev
		}
	}
	return nil
}

// execEvents counts the events of type typ about process pid.
func (s *subscriber) execEvents(typ string, pid int) int {
	n := 0
	for _, ev := range s.events() {
		if ev.Type == typ && ev.Pid == pid {
			n++
		}
	}
	return n
}

// checkEnd checks the stream after delete: stopped, deleted, EOF, and no
// gap anywhere.
func (s *subscriber) checkEnd(st *stats) {
	select {
	case <-s.ended:
	case <-time.After(10 * time.Second):
		st.fail("subscriber: the stream did not end within 10s of the delete")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gap != "" {
		st.fail("subscriber: %s", s.gap)
	}
	if s.end != nil && s.end.Error() != "EOF" {
		st.fail("subscriber: stream ended with %v, want EOF after deleted", s.end)
	}
	n := len(s.evs)
	if n < 2 || s.evs[n-2].Type != protocol.EventStopped || s.evs[n-1].Type != protocol.EventDeleted {
		var last []string
		for _, ev := range s.evs[max(0, n-4):] {
			last = append(last, ev.Type)
		}
		st.fail("subscriber: the stream ends %v, want stopped, deleted", last)
	}
}

// driver is a well-behaved client of the CLI: crier exec, and every
// fourth time crier pause and resume, whose events the subscriber must
// see.
type driver struct {
	c      *container
	execs  int
	pauses int
	errs   []string
	quit   chan struct{}
	done   chan struct{}
}

func startDriver(c *container) *driver {
	d := &driver{c: c, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		t := time.NewTicker(*flagEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-d.quit:
				return
			case <-t.C:
			}
			d.round(i)
		}
	}()
	return d
}

func (d *driver) round(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := "probe." + strconv.Itoa(i)
	if _, err := d.c.cli(ctx, "exec", "--exec-id", id, d.c.id, "true"); err != nil {
		d.errs = append(d.errs, err.Error())
	} else {
		d.execs++
	}
	if i%4 != 3 {
		return
	}
	if _, err := d.c.cli(ctx, "pause", d.c.id); err != nil {
		d.errs = append(d.errs, err.Error())
		return
	}
	if _, err := d.c.cli(ctx, "resume", d.c.id); err != nil {
		d.errs = append(d.errs, err.Error())
		return
	}
	d.pauses++
}

func (d *driver) stop() { close(d.quit); <-d.done }

// check says whether the subscriber saw every event the driver caused:
// each probe's exec-started and exec-stopped with status 0, and a paused
// and a resumed per round.
func (d *driver) check(st *stats, sub *subscriber) {
	for _, e := range d.errs {
		st.fail("driver: %s", e)
	}
	if d.execs == 0 {
		st.fail("driver: no exec ran")
	}
	evs := sub.events()
	started, stopped, paused, resumed := map[string]bool{}, map[string]bool{}, 0, 0
	for _, ev := range evs {
		switch ev.Type {
		case protocol.EventExecStarted:
			started[ev.ExecID] = true
		case protocol.EventExecStopped:
			if strings.HasPrefix(ev.ExecID, "probe.") && (ev.ExitStatus == nil || *ev.ExitStatus != 0) {
				st.fail("subscriber: %s exec-stopped with %v, want status 0", ev.ExecID, ev.ExitStatus)
			}
			stopped[ev.ExecID] = true
		case protocol.EventPaused:
			paused++
		case protocol.EventResumed:
			resumed++
		}
	}
	n := 0
	for id := range started {
		if strings.HasPrefix(id, "probe.") {
			n++
			if !stopped[id] {
				st.fail("subscriber: %s has exec-started and no exec-stopped", id)
			}
		}
	}
	if n != d.execs {
		st.fail("subscriber: %d probes started, the driver ran %d", n, d.execs)
	}
	if paused != d.pauses || resumed != d.pauses {
		st.fail("subscriber: %d paused and %d resumed events, the driver paused and resumed %d times", paused, resumed, d.pauses)
	}
}
