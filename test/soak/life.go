package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// The kill points. A lifecycle has one of them, or none.
const (
	killNone        = "none"
	killCLICreate   = "cli-create"   // SIGKILL to crier create, at a random moment of it
	killCLIStart    = "cli-start"    // ... to crier start
	killCLIDelete   = "cli-delete"   // ... to crier delete
	killCLIEvent    = "cli-event"    // ... to a crier event --monitor
	killShimCreate  = "shim-create"  // SIGKILL to the shim while it creates
	killShimRunning = "shim-running" // ... while the container runs
	killShimDelete  = "shim-delete"  // ... while it deletes
	killContainer   = "container"    // SIGKILL to the container's process
)

// killPoints is what a lifecycle draws from: no kill twice as often as
// each kill.
var killPoints = []string{killNone, killNone, killCLICreate, killCLIStart, killCLIDelete, killCLIEvent,
	killShimCreate, killShimRunning, killShimDelete, killContainer}

// life is one container's lifecycle.
type life struct {
	s    *soak
	i    int
	rng  *rand.Rand
	id   string
	dir  string
	kill string // the kill point
	// createLine is create's command line as /proc/PID/cmdline has it:
	// the fork that becomes the shim runs it too (internal/prefork).
	createLine []byte
	how        string // what followed a kill of the shim while running
	sleep      bool   // the container sleeps until killed, rather than exiting
	exit       int    // the status it exits with when it does not sleep
	// want is what the container's stopped event must say.
	want    expectation
	subs    []*subscriber
	primary *subscriber // the Go client that waits for stopped
	// checked: the stopped event that a `crier event` got after the shim
	// came back, and its verdict.
	checked string
	mu      sync.Mutex
	// problems are what went wrong: any makes the soak fail.
	problems []string
}

func (s *soak) newLife(i int, rng *rand.Rand) *life {
	l := &life{s: s, i: i, rng: rng, id: fmt.Sprintf("soak%d-%d", os.Getpid(), i)}
	l.kill = killPoints[rng.IntN(len(killPoints))]
	switch l.kill {
	case killShimRunning, killContainer, killCLIEvent:
		l.sleep = true
	case killNone:
		l.sleep = rng.IntN(2) == 0
	}
	l.exit = rng.IntN(126)
	return l
}

func (l *life) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *life) print() {
	verdict := "ok"
	if len(l.problems) > 0 {
		verdict = "PROBLEMS:\n    " + strings.Join(l.problems, "\n    ")
	}
	kill := l.kill
	if l.how != "" {
		kill += "/" + l.how
	}
	if l.checked != "" {
		kill += " (crier event after: " + l.checked + ")"
	}
	fmt.Printf("life %d %s %s want %v: %s\n", l.i, l.id, kill, l.want, verdict)
}

// jitter returns a random moment within a typical run of op.
func (l *life) jitter(op string) time.Duration {
	max := l.s.timing.of(op) * 6 / 5
	return time.Duration(l.rng.Int64N(int64(max) + 1))
}

// run runs the lifecycle, then drives the container to deletion whatever
// happened, and checks what its subscribers saw.
func (l *life) run() {
	var err error
	if l.dir, err = l.s.lifeDir(l.i); err != nil {
		l.problem("%v", err)
		return
	}
	args := []string{"sh", "-c", "exit " + strconv.Itoa(l.exit)}
	if l.sleep {
		args = []string{"sleep", "1000"}
	}
	if err := l.s.writeBundle(l.dir, l.id, args); err != nil {
		l.problem("bundle: %v", err)
		return
	}
	if l.lifecycle() {
		l.deleteForce()
	}
	l.checkSubscribers()
	if len(l.problems) == 0 {
		os.RemoveAll(l.dir)
	}
}

// lifecycle goes as far as the kill point lets it; it reports whether the
// container may still need delete --force.
func (l *life) lifecycle() bool {
	if !l.create() {
		return true
	}
	l.subscribe()
	if !l.start() {
		return true
	}
	if !l.stop() {
		return true
	}
	return l.delete()
}

// create creates the container, or kills crier create or its shim at a
// random moment of it; it reports whether the lifecycle goes on.
func (l *life) create() bool {
	p, err := l.s.start(l.dir, "create", "--bundle", l.dir, l.id)
	if err != nil {
		l.problem("create: %v", err)
		return false
	}
	l.createLine = cmdline(p.cmd.Args)
	switch l.kill {
	case killCLICreate:
		time.Sleep(l.jitter("create"))
		p.kill()
	case killShimCreate:
		time.Sleep(l.jitter("create"))
		l.killShimOf(p)
	}
	r := p.wait()
	l.s.stats.addRun(r)
	if l.kill == killCLICreate || l.kill == killShimCreate {
		return false
	}
	if r.code != 0 {
		l.problem("%v", r)
		return false
	}
	l.s.timing.note("create", r.elapsed)
	return true
}

// killShimOf kills the shim of a create in progress (create's child, or
// the fork of create that is the shim, internal/prefork), or the one it
// left if create has returned.
func (l *life) killShimOf(p *proc) {
	pid := forkOf(p.cmd.Process.Pid)
	if pid == 0 {
		pid = childOf(p.cmd.Process.Pid)
	}
	var start uint64
	if pid == 0 {
		st, err := shim.ReadState(shim.Dir(l.s.root, l.id))
		if err != nil {
			return // create failed, or has not published yet: nothing to kill
		}
		pid, start = st.ShimPid, st.ShimStart
	}
	// A child's pid is not reused until its parent, create, reaps it.
	if _, err := killProcess(pid, start); err != nil {
		l.problem("kill shim: %v", err)
	}
}

// subscribe connects the primary subscriber and, at random, others, some
// of which leave at a random moment.
func (l *life) subscribe() {
	var err error
	if l.primary, err = l.subscribeGo(); err != nil {
		l.problem("subscribe: %v", err)
	}
	for range l.rng.IntN(3) {
		sub, err := l.subscribeGo()
		if err != nil {
			l.problem("subscribe: %v", err)
			continue
		}
		if l.rng.IntN(3) == 0 {
			sub.unsubscribeLater(time.Duration(l.rng.Int64N(int64(200 * time.Millisecond))))
		}
	}
	if l.kill != killCLIEvent && l.rng.IntN(4) != 0 {
		return
	}
	sub, err := l.subscribeCLI()
	if err != nil {
		l.problem("%v", err)
		return
	}
	if l.kill == killCLIEvent {
		sub.unsubscribeLater(l.jitter("start"))
	}
}

// start starts the container, or kills crier start at a random moment and
// starts it again: of the two, one starts it and the other fails with one
// line. It reports whether the lifecycle goes on.
func (l *life) start() bool {
	if l.kill == killCLIStart {
		p, err := l.s.start(l.dir, "start", l.id)
		if err != nil {
			l.problem("start: %v", err)
			return false
		}
		time.Sleep(l.jitter("start"))
		p.kill()
		l.s.stats.addRun(p.wait())
		if _, err := l.s.run(l.dir, "start", l.id); err != nil {
			l.problem("start: %v", err)
		}
		// Failed or not, a start reached the shim: the container
		// runs, and its exit is the shim's to see.
		return true
	}
	r, err := l.s.run(l.dir, "start", l.id)
	if err != nil || r.code != 0 {
		l.problem("start: %v%v", err, r)
		return false
	}
	l.s.timing.note("start", r.elapsed)
	return true
}

// stop ends the container's process as the kill point says, and waits for
// its stopped event; it reports whether the lifecycle goes on.
func (l *life) stop() bool {
	switch {
	case !l.sleep:
		l.want = exitOf(l.exit)
	case l.kill == killShimRunning:
		return l.killShimRunning()
	case l.kill == killContainer:
		st, err := shim.ReadState(shim.Dir(l.s.root, l.id))
		if err != nil {
			l.problem("state file: %v", err)
			return false
		}
		if ok, err := killProcess(st.Pid, st.PidStart); err != nil || !ok {
			l.problem("kill the container's process %d: %v (killed %v)", st.Pid, err, ok)
			return false
		}
		l.want = killed()
	default:
		r, err := l.s.run(l.dir, "kill", l.id, "KILL")
		if err != nil || r.code != 0 {
			l.problem("kill: %v%v", err, r)
			return false
		}
		l.want = killed()
	}
	return l.waitStopped()
}

// waitStopped waits for the primary subscriber to see stopped.
func (l *life) waitStopped() bool {
	if l.primary == nil {
		return false
	}
	select {
	case <-l.primary.stopped:
		l.s.stats.addExit(l.want, l.primary.stop)
		if err := l.want.check(l.primary.stop); err != nil {
			l.problem("the container's stopped: %v", err)
		}
		return true
	case <-l.primary.done:
		l.s.stats.addExit(l.want, nil)
		l.problem("the subscriber's stream ended before stopped: %v %s", l.primary.end, typesOf(l.primary.events))
	case <-time.After(eventTimeout):
		l.s.stats.addExit(l.want, nil)
		l.problem("no stopped within %v", eventTimeout)
	}
	return false
}

// killShimRunning kills the shim of the running container, then, at
// random, kills the container's process too (its exit then happens with no
// shim: unknown is allowed), or has crier kill it (which brings a shim
// back first: the exit is exact), or leaves it to delete --force. A crier
// event then brings the shim back if it is still gone, and must give the
// stopped event as expected.
func (l *life) killShimRunning() bool {
	st, err := shim.ReadState(shim.Dir(l.s.root, l.id))
	if err != nil {
		l.problem("state file: %v", err)
		return false
	}
	for _, sub := range l.subs {
		sub.cut.Store(true)
	}
	if ok, err := killProcess(st.ShimPid, st.ShimStart); err != nil || !ok {
		l.problem("kill shim %d: %v (killed %v)", st.ShimPid, err, ok)
		return false
	}
	switch l.rng.IntN(3) {
	case 0:
		l.how = "then-container"
		if ok, err := killProcess(st.Pid, st.PidStart); err != nil || !ok {
			l.problem("kill the container's process %d: %v (killed %v)", st.Pid, err, ok)
			return false
		}
		l.want = killed()
		l.want.kind = expectUnknownOK
	case 1:
		l.how = "then-crier-kill"
		r, err := l.s.run(l.dir, "kill", l.id, "KILL")
		if err != nil || r.code != 0 {
			l.problem("kill: %v%v", err, r)
			return false
		}
		l.want = killed()
	default:
		l.how = "then-delete"
		return false // delete --force brings the shim back and kills it
	}
	l.checkStopped()
	// A subscriber of the shim that came back, with the history.
	if sub, err := l.subscribeGo(); err != nil {
		l.problem("subscribe after the shim came back: %v", err)
	} else {
		l.primary = sub
	}
	return true
}

// checkStopped gets the stopped event with crier event, which brings the
// shim back if it is gone, and checks it.
func (l *life) checkStopped() {
	r, err := l.s.run(l.dir, "event", "--event", protocol.EventStopped, "--timeout", cliTimeout.String(), l.id)
	if err != nil || r.code != 0 {
		l.problem("event: %v%v", err, r)
		return
	}
	var ev protocol.Event
	if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil {
		l.problem("event printed %q: %v", r.stdout, err)
		return
	}
	l.checked = describeStop(&ev)
	if err := l.want.check(&ev); err != nil {
		l.problem("crier event after the shim came back: %v", err)
	}
	l.s.stats.addExit(l.want, &ev)
}

// delete deletes the stopped container, or kills crier delete or the shim
// at a random moment of it; it reports whether delete --force must follow.
func (l *life) delete() bool {
	var st *shim.State
	if l.kill == killShimDelete {
		var err error
		if st, err = shim.ReadState(shim.Dir(l.s.root, l.id)); err != nil {
			l.problem("state file: %v", err)
			return true
		}
	}
	p, err := l.s.start(l.dir, "delete", l.id)
	if err != nil {
		l.problem("delete: %v", err)
		return true
	}
	switch l.kill {
	case killCLIDelete:
		time.Sleep(l.jitter("delete"))
		p.kill()
	case killShimDelete:
		time.Sleep(l.jitter("delete"))
		for _, sub := range l.subs {
			sub.cut.Store(true)
		}
		if _, err := killProcess(st.ShimPid, st.ShimStart); err != nil {
			l.problem("kill shim: %v", err)
		}
	}
	r := p.wait()
	l.s.stats.addRun(r)
	if l.kill == killCLIDelete || l.kill == killShimDelete {
		return true
	}
	if r.code != 0 {
		l.problem("%v", r)
		return true
	}
	l.s.timing.note("delete", r.elapsed)
	return false
}

// deleteForce drives the container to deletion with delete --force, again
// until it is gone, within a bound. A failure on the way is fine if it says
// what is wrong in one line (addRun checks that).
func (l *life) deleteForce() {
	dir := shim.Dir(l.s.root, l.id)
	deadline := time.Now().Add(cliTimeout)
	for try := 0; ; try++ {
		r, err := l.s.run(l.dir, "delete", "--force", l.id)
		if err != nil {
			l.problem("delete --force: %v", err)
			return
		}
		_, serr := os.Lstat(dir)
		if r.code == 0 && os.IsNotExist(serr) && runningLine(l.createLine) == 0 {
			l.s.stats.addDeleteRetries(try)
			return
		}
		// A delete --force that succeeded and left the directory ran
		// before a create it raced (its CLI killed, its shim going on)
		// had published it: as runc's, a forced delete of what does not
		// exist succeeds. The next one deletes the container. Until
		// that create's fork has published or exited (a process still
		// runs its command line), the directory's absence says nothing:
		// the fork claims the ID some milliseconds after init's fork.
		if time.Now().After(deadline) {
			l.problem("still not deleted after %d tries in %v: %v", try+1, cliTimeout, r)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkSubscribers waits for every subscriber's stream to end (the
// container is deleted) and checks those that stayed connected.
func (l *life) checkSubscribers() {
	for _, sub := range l.subs {
		err := sub.wait()
		// Counted once its stream has ended: a subscriber may leave
		// up to then.
		l.s.stats.addSubscriber(sub)
		if err != nil {
			l.s.stats.count("subscribers hung", 1)
			l.problem("%v", err)
			continue
		}
		if !sub.stayed() {
			continue
		}
		exitErr, streamErr := sub.check(l.want)
		if exitErr != nil {
			l.s.stats.count("subscribers that stayed: stopped wrong or missing", 1)
			l.problem("%v", exitErr)
		} else if l.want.kind != expectNothing {
			l.s.stats.count("subscribers that stayed: stopped right", 1)
		}
		if streamErr != nil {
			l.s.stats.count("subscribers that stayed: stream bad", 1)
			l.problem("%v", streamErr)
		} else {
			l.s.stats.count("subscribers that stayed: stream whole (to deleted, EOF)", 1)
		}
	}
}
