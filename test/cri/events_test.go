//go:build cri

package cri

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// eventStream is `crier event --all --monitor` on the crier handler's
// state root, read as it comes: what a CRI implementation could follow
// instead of polling every container's state (the kubelet's Evented PLEG;
// containerd 1.6 has no GetContainerEvents).
type eventStream struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []crierEvent
	stderr strings.Builder
}

// crierEvent is one line of crier's stream (docs/protocol.md).
type crierEvent struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Timestamp  string `json:"timestamp"`
	Seq        int    `json:"seq"`
	Pid        int    `json:"pid"`
	ExitStatus *int   `json:"exitStatus"`
}

// startEvents starts the stream before the test makes any container:
// containers that appear later are followed from their created event.
func startEvents(t *testing.T, h handler) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &eventStream{cancel: cancel, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, suite.crier, "--root", h.stateRoot(), "event", "--all", "--monitor")
	// Ended as a user ends a monitor, so that it gives its ticket back
	// (statedir.AwaitAll); killed only if that fails.
	s.cmd.Cancel = func() error { return s.cmd.Process.Signal(syscall.SIGTERM) }
	s.cmd.WaitDelay = 10 * time.Second
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev crierEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = crierEvent{Type: "unparsable: " + sc.Text()}
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
		s.cmd.Wait()
	}()
	t.Cleanup(func() { s.cancel(); <-s.done })
	return s
}

// of returns the events of container id so far.
func (s *eventStream) of(id string) []crierEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []crierEvent
	for _, ev := range s.events {
		if ev.ID == id {
			evs = append(evs, ev)
		}
	}
	return evs
}

// check waits for the deleted event of every container in exits (the
// pod's containers and its sandbox, all removed by now), then checks that
// each container's events were created, started, stopped with the exit
// status CRI reported, and deleted, in that order, with crier's own
// timestamps in order.
func (s *eventStream) check(t *testing.T, exits map[string]int) {
	deadline := time.Now().Add(*stepFlag)
	for id, status := range exits {
		var evs []crierEvent
		for {
			evs = s.of(id)
			if n := len(evs); n > 0 && evs[n-1].Type == "deleted" || time.Now().After(deadline) {
				break
			}
			select {
			case <-s.done:
				t.Fatalf("crier event --all ended: %s", s.stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
		var types []string
		var last time.Time
		for _, ev := range evs {
			if strings.HasPrefix(ev.Type, "exec-") {
				continue // the scenarios' execs: not the container's lifecycle
			}
			types = append(types, ev.Type)
			ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
			if err != nil || ts.Before(last) {
				t.Errorf("container %s: event %s at %q, after %v", id, ev.Type, ev.Timestamp, last)
			}
			last = ts
			if ev.Type == "stopped" && (ev.ExitStatus == nil || *ev.ExitStatus != status) {
				t.Errorf("container %s: stopped event %+v, want exitStatus %d (what CRI reported)", id, ev, status)
			}
		}
		if got := strings.Join(types, ","); got != "created,started,stopped,deleted" {
			t.Errorf("container %s: crier's events %s, want created,started,stopped,deleted", id, got)
		} else {
			t.Logf("container %s: created, started, stopped (%d), deleted", id, status)
		}
	}
}
