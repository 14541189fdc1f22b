// Command fuzzlive drives a live crier shim with generated and mutated
// requests (`make fuzz-live`, docs/reliability.md, "The socket under a
// fuzzer").
//
// It creates and starts a real busybox container with bin/crier (as root),
// then opens connection after connection to its shim's socket, -conns at
// once, each one a scenario: valid requests pipelined, mutated ones, random
// bytes, lines over protocol.MaxLine, lines cut short then SHUT_WR or
// close, requests with descriptors (SCM_RIGHTS) of every kind attached to
// every op, subscriptions that talk back, requests sent a byte at a time,
// connections dropped with replies unread. Requests that would change the
// container (pause, resume, delete --force, kill with a signal that acts)
// are spoiled before they are sent, with the shim's own decoder as the
// oracle; their spoiled and damaged forms are sent. The oracle also says
// what each line must get back, and every reply is checked.
//
// Meanwhile a subscriber connected from the start must receive every event
// of the container, seq after seq with no gap, among them those of a
// driver that runs `crier exec`, `crier pause` and `crier resume` every
// so often; a sampler reads the shim's memory (smaps_rollup) and
// descriptors. At the end the shim must be the same process, back to the
// descriptors it had before, under the memory bound; the container
// running; and `crier delete --force` must remove it, with the subscriber
// seeing stopped and deleted.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	crcontainer "github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

var (
	flagN      = flag.Int64("n", 1_000_000, "requests to send")
	flagConns  = flag.Int("conns", 48, "connections at once")
	flagBin    = flag.String("bin", "bin", "directory with crier and crier-shim")
	flagSeed   = flag.Uint64("seed", 0, "random seed (0: from the clock); printed, to replay a run")
	flagMaxRSS = flag.Int64("max-rss", 32, "fail if the shim's resident memory (peak, VmHWM) exceeds this many MiB")
	flagMaxFDs = flag.Int("max-fds", 2048, "fail if the shim ever holds more descriptors than this")
	flagIdle   = flag.Bool("idle", true, "also hold two connections silent past the shim's 30 s idle limit")
	flagEvery  = flag.Duration("drive", 500*time.Millisecond, "how often the driver runs crier exec (and every 4th time pause and resume)")
)

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fuzzlive: must run as root (it creates a real container)")
		os.Exit(2)
	}
	ok, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzzlive:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run() (bool, error) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("fuzzlive: seed %d, %d requests, %d connections at once\n", seed, *flagN, *flagConns)
	c, err := newContainer(*flagBin)
	if err != nil {
		return false, err
	}
	defer c.cleanup()
	go func() {
		// Interrupted: take the container and the helper away too.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		c.cleanup()
		os.Exit(1)
	}()
	if err := c.createAndStart(); err != nil {
		return false, err
	}
	shimPid, shimStart, err := c.shim()
	if err != nil {
		return false, err
	}
	sub, err := subscribe(c.sock)
	if err != nil {
		return false, err
	}
	// Wait for created and started before the baseline.
	if !sub.waitFor(func(evs []protocol.Event) bool { return len(evs) >= 2 }, 10*time.Second) {
		return false, fmt.Errorf("subscriber: no created and started within 10s")
	}
	pool, err := newFdPool(c.dir, c.helperPidfd)
	if err != nil {
		return false, err
	}
	base, err := sample(shimPid)
	if err != nil {
		return false, err
	}
	fmt.Printf("fuzzlive: shim pid %d: %d descriptors, rss %s, uss %s before\n", shimPid, base.fds, kib(base.rss), kib(base.uss))

	st := &stats{scenario: map[string]int64{}}
	smp := startSampler(shimPid, shimStart)
	drv := startDriver(c)
	var idles sync.WaitGroup
	if *flagIdle {
		for range 2 {
			idles.Add(1)
			go func() { defer idles.Done(); idle(c.sock, st, 40*time.Second) }()
		}
	}

	begin := time.Now()
	var quota atomic.Int64
	quota.Store(*flagN)
	var wg sync.WaitGroup
	for i := range *flagConns {
		w := &worker{g: gen{r: rand.New(rand.NewPCG(seed, uint64(i)))}, sock: c.sock, st: st, pool: pool, quota: &quota}
		wg.Add(1)
		go func() { defer wg.Done(); w.run() }()
	}
	done := make(chan struct{})
	go progress(st, smp, &quota, begin, done)
	wg.Wait()
	close(done)
	elapsed := time.Since(begin)
	idles.Wait()
	drv.stop()
	fmt.Printf("fuzzlive: %d requests on %d connections in %v: %.0f requests/s\n",
		st.requests.Load(), st.conns.Load(), elapsed.Round(time.Millisecond), float64(st.requests.Load())/elapsed.Seconds())

	ok := finish(c, st, smp, drv, sub, base, shimPid, shimStart)
	return ok, nil
}

// finish checks what the run left: the shim, its descriptors and memory,
// the subscriber's events, the container; then deletes the container.
func finish(c *container, st *stats, smp *sampler, drv *driver, sub *subscriber, base procSample, shimPid int, shimStart uint64) bool {
	// The helper's adoption ends with its exit: its exec-stopped, and
	// the shim's pidfd of it closed.
	adopted := sub.execEvents(protocol.EventExecStarted, c.helperPid)
	c.stopHelper()
	if adopted > 1 {
		st.fail("the helper (pid %d) was adopted %d times; want once, the others refused", c.helperPid, adopted)
	}
	if adopted > 0 && !sub.waitFor(func([]protocol.Event) bool { return sub.execEvents(protocol.EventExecStopped, c.helperPid) > 0 }, 10*time.Second) {
		st.fail("the adopted helper (pid %d) exited, and no exec-stopped for it within 10s", c.helperPid)
	}
	// Connections close as their clients did; the shim's goroutines
	// notice at once. Wait for its descriptors to come back down.
	var after procSample
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := sample(shimPid)
		if err != nil {
			st.fail("shim: %v", err)
			break
		}
		after = s
		if s.fds <= base.fds || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Quiet for a second, the shim trims its heap (shim/trim.go).
	time.Sleep(3 * time.Second)
	if s, err := sample(shimPid); err == nil {
		after = s
	}
	smp.stop()
	if after.fds > base.fds {
		st.fail("shim holds %d descriptors after the run, %d before: %v", after.fds, base.fds, fdDiff(shimPid))
	}
	if start, err := crcontainer.StartTime(shimPid); err != nil || start != shimStart {
		st.fail("shim pid %d: start time %d (%v), was %d: it died", shimPid, start, err, shimStart)
	}
	if smp.died != "" {
		st.fail("sampler: %s", smp.died)
	}
	hwm := smp.max.hwm
	if hwm > *flagMaxRSS<<20 {
		st.fail("shim's peak resident memory %s is over the bound of %d MiB", kib(hwm), *flagMaxRSS)
	}
	if smp.max.fds > *flagMaxFDs {
		st.fail("shim held %d descriptors at once, over the bound of %d", smp.max.fds, *flagMaxFDs)
	}
	state := c.state()
	if state != "running" {
		st.fail("container is %q after the run, want running", state)
	}
	drv.check(st, sub)
	if err := c.delete(); err != nil {
		st.fail("delete --force: %v", err)
	}
	sub.checkEnd(st)
	if err := c.gone(shimPid, shimStart); err != nil {
		st.fail("after delete: %v", err)
	}

	fmt.Printf("fuzzlive: scenarios %v\n", st.scenario)
	fmt.Printf("fuzzlive: %d replies checked; %d requests with descriptors (%d descriptors), %d execs, %d lines over MaxLine, %d partial lines, %d subscriptions, %d idle connections\n",
		st.replies.Load(), st.withFiles.Load(), st.files.Load(), st.execs.Load(), st.tooLong.Load(), st.partial.Load(), st.subs.Load(), st.idle.Load())
	fmt.Printf("fuzzlive: subscriber: %d events, seq 1 to %d with no gap; driver: %d execs, %d pause/resume\n",
		len(sub.events()), sub.lastSeq(), drv.execs, drv.pauses)
	fmt.Printf("fuzzlive: shim memory: peak rss (VmHWM) %s; sampled max rss %s, pss %s, uss %s, anon %s; max %d descriptors, %d threads\n",
		kib(hwm), kib(smp.max.rss), kib(smp.max.pss), kib(smp.max.uss), kib(smp.max.anon), smp.max.fds, smp.max.threads)
	fmt.Printf("fuzzlive: shim before: rss %s, uss %s, %d descriptors; after (settled): rss %s, uss %s, %d descriptors; %d samples\n",
		kib(base.rss), kib(base.uss), base.fds, kib(after.rss), kib(after.uss), after.fds, smp.n)
	if st.nfail > 0 {
		fmt.Printf("fuzzlive: FAIL: %d failures; the first:\n", st.nfail)
		for _, f := range st.failures {
			fmt.Println("  " + f)
		}
		return false
	}
	fmt.Println("fuzzlive: PASS")
	return true
}

// progress prints the figures every 10 s, and ends the run early once it
// has more failures than are worth reading (a stuck shim fails every
// request after the 20 s reply timeout).
func progress(st *stats, smp *sampler, quota *atomic.Int64, begin time.Time, done chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			n := st.requests.Load()
			cur := smp.current()
			fmt.Printf("fuzzlive: %8d requests, %6.0f/s; shim rss %s uss %s, %d fds; %d failures\n",
				n, float64(n)/time.Since(begin).Seconds(), kib(cur.rss), kib(cur.uss), cur.fds, st.nfailures())
			if st.nfailures() > 100 {
				fmt.Println("fuzzlive: over 100 failures; stopping")
				quota.Store(0)
			}
		}
	}
}

func (s *stats) nfailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nfail
}

func kib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// cli runs bin/crier with the run's root. Its output goes to a file, not
// a pipe: the container inherits create's stdout and would hold a pipe
// open for its life.
func (c *container) cli(ctx context.Context, args ...string) ([]byte, error) {
	out, err := os.CreateTemp(c.dir, "cli-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, c.crier, append([]string{"--root", c.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	if err != nil {
		return b, fmt.Errorf("crier %v: %w: %s", args, err, bytes.TrimSpace(b))
	}
	return b, nil
}
