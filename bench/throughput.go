package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// parallel runs fn on every id with the given number of workers, each with
// its own scratch files, and returns the wall time and the first error.
func (b *B) parallel(workers int, ids []string, fn func(s *scratch, id string) error) (time.Duration, error) {
	ch := make(chan string)
	var wg sync.WaitGroup
	var first atomic.Value
	scratches := make([]*scratch, workers)
	for i := range scratches {
		scratches[i] = b.newScratch()
	}
	t0 := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(s *scratch) {
			defer wg.Done()
			for id := range ch {
				if err := fn(s, id); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}(scratches[i])
	}
	for _, id := range ids {
		ch <- id
	}
	close(ch)
	wg.Wait()
	d := time.Since(t0)
	for _, s := range scratches {
		s.close()
	}
	err, _ := first.Load().(error)
	return d, err
}

// launch is create + start of a `sleep 1000` container.
func (b *B) launch(rt *runtime, bundle string) func(s *scratch, id string) error {
	return func(s *scratch, id string) error {
		if r := b.create(s, rt, bundle, id, nil); r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		if r := b.start(s, rt, id); r.err != nil {
			b.deleteC(s, rt, id, true)
			return r.err
		}
		return nil
	}
}

func (b *B) remove(rt *runtime) func(s *scratch, id string) error {
	return func(s *scratch, id string) error { return b.deleteC(s, rt, id, true).err }
}

// throughput: containers per second for create+start of `sleep 1000` with
// two workers, then for `delete --force`.
func (b *B) throughput(sec *section) {
	const n, workers = 100, 2
	reps := 5
	if b.quick {
		reps = 1
	}
	bundle, err := b.makeBundle("sleep", "/bin/sleep", "1000")
	if err != nil {
		b.rep.fail("throughput: %v", err)
		return
	}
	up := map[*runtime][]float64{}
	down := map[*runtime][]float64{}
	for rep := 0; rep < reps; rep++ {
		for k := range b.cliRts {
			rt := b.cliRts[(rep+k)%len(b.cliRts)]
			ids := make([]string, n)
			for i := range ids {
				ids[i] = b.newID("t")
			}
			d, err := b.parallel(workers, ids, b.launch(rt, bundle))
			if err != nil {
				b.rep.fail("throughput %s: %v", rt.name, err)
			} else {
				up[rt] = append(up[rt], float64(n)/d.Seconds())
			}
			d, err = b.parallel(workers, ids, b.remove(rt))
			if err != nil {
				b.rep.fail("throughput %s delete: %v", rt.name, err)
			} else {
				down[rt] = append(down[rt], float64(n)/d.Seconds())
			}
			if b.stopping.Load() {
				return
			}
		}
	}
	t := sec.table("runtime", "create+start /s", "each run", "÷ crun", "delete --force /s", "each run", "÷ crun")
	list := func(xs []float64) string {
		var s []string
		for _, x := range xs {
			s = append(s, num(x))
		}
		return strings.Join(s, ", ")
	}
	for _, rt := range b.cliRts {
		u, d := summarize(up[rt]), summarize(down[rt])
		t.add(rt.name, "**"+num(u.p50)+"**", list(up[rt]), ratio(u, summarize(up[b.crun])),
			"**"+num(d.p50)+"**", list(down[rt]), ratio(d, summarize(down[b.crun])))
		b.rep.key["tput."+rt.name] = u.p50
	}
	sec.para("%d containers of `sleep 1000` per run, %d workers each running `create` then `start`; then the same %d removed with `delete --force` by %d workers. %d runs per runtime, the runtimes in a rotating order; the figure is the median run. runc 1.1's `delete --force` of a running container sleeps 100 ms after its SIGKILL, hence its figure. runc is Debian's 1.1.5, runc 1.5.3 the newest release.", n, workers, n, workers, reps)
}

// fanout: 1000 Go subscribers on one container, the time from its exit to
// each of them knowing, and the shim's memory with them attached.
func (b *B) fanout(sec *section) {
	const subs = 1000
	rounds := 5
	if b.quick {
		rounds = 2
	}
	s := b.newScratch()
	defer s.close()
	var first, median, last, connect []float64
	var rss0, uss0, rss1, uss1 []float64
	for r := 0; r < rounds; r++ {
		id := b.newID("f")
		stamp, err := b.stampedCreate(s, b.crier, id, 50*time.Millisecond)
		if err != nil {
			b.rep.fail("fan-out: %v", err)
			return
		}
		res, err := b.fanoutOnce(s, id, stamp, subs)
		if err != nil {
			b.deleteC(s, b.crier, id, true)
			b.rep.fail("fan-out: %v", err)
			return
		}
		first = append(first, res.lat[0])
		median = append(median, res.lat[len(res.lat)/2])
		last = append(last, res.lat[len(res.lat)-1])
		connect = append(connect, res.connect)
		rss0 = append(rss0, float64(res.before.rss))
		uss0 = append(uss0, float64(res.before.uss))
		rss1 = append(rss1, float64(res.with.rss))
		uss1 = append(uss1, float64(res.with.uss))
	}
	t := sec.table("1000 subscribers on one container", "median of rounds", "range")
	row := func(name string, xs []float64) {
		d := summarize(xs)
		t.add(name, "**"+num(d.p50)+"**", num(d.min)+"–"+num(d.max))
	}
	row("exit → first subscriber's stopped event (ms)", first)
	row("exit → median subscriber (ms)", median)
	row("exit → **last** subscriber (ms)", last)
	row("connecting + subscribing all 1000, one after another (ms)", connect)
	row("shim RSS, no subscriber (kB)", rss0)
	row("shim RSS, 1000 subscribers attached (kB)", rss1)
	row("shim USS, no subscriber (kB)", uss0)
	row("shim USS, 1000 subscribers attached (kB)", uss1)
	per := make([]float64, len(uss0))
	for i := range per {
		per[i] = (uss1[i] - uss0[i]) / subs
	}
	row("USS per subscriber (kB)", per)
	b.rep.key["fanout.last"] = summarize(last).p50
	sec.para("%d rounds. The subscribers are %d `protocol` clients (Dial+Subscribe, then a goroutine blocked in Next each) in the benchmark process, all subscribed before `start`; the helper exits 50 ms after start. Latencies are from its CLOCK_MONOTONIC stamp to each Next returning the stopped event. The measuring process has 1000 goroutines to wake on 2 cores, so the last subscriber's figure includes that.", rounds, subs)
}

type fanoutResult struct {
	lat          []float64 // sorted, ms
	connect      float64   // ms
	before, with mem
}

func (b *B) fanoutOnce(s *scratch, id, stamp string, subs int) (*fanoutResult, error) {
	res := &fanoutResult{}
	shim := b.shimPid(id)
	time.Sleep(200 * time.Millisecond)
	res.before = smaps(shim)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clients := make([]*protocol.Client, 0, subs)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	t0 := time.Now()
	for i := 0; i < subs; i++ {
		c, err := protocol.Dial(ctx, b.sockPath(id))
		if err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		clients = append(clients, c)
		if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	res.connect = float64(time.Since(t0)) / 1e6
	time.Sleep(200 * time.Millisecond)
	res.with = smaps(shim)
	times := make([]int64, subs)
	errs := make(chan error, subs)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := waitStopped(ctx, c)
			if err != nil {
				errs <- err
				return
			}
			times[i] = t
		}()
	}
	if r := b.start(s, b.crier, id); r.err != nil {
		cancel()
		wg.Wait()
		return nil, r.err
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("a subscriber: %w", err)
	default:
	}
	for _, c := range clients {
		c.Close()
	}
	clients = nil
	if r := b.deleteC(s, b.crier, id, false); r.err != nil {
		return nil, r.err
	}
	exit, err := readStamp(stamp)
	if err != nil {
		return nil, err
	}
	for _, t := range times {
		res.lat = append(res.lat, float64(t-exit)/1e6)
	}
	sort.Float64s(res.lat)
	return res, nil
}
