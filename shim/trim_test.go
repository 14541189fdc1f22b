package shim

import (
	"testing"
	"time"
)

func TestTrimAfterQuietClients(t *testing.T) {
	s := &server{msgs: make(chan any, 1), quit: make(chan struct{})}
	defer close(s.quit)
	waitDue := func() {
		t.Helper()
		select {
		case m := <-s.msgs:
			if _, ok := m.(trimDue); !ok {
				t.Fatalf("loop got %T, want trimDue", m)
			}
		case <-time.After(10 * trimAfter):
			t.Fatal("no trimDue after the clients went quiet")
		}
	}
	for range trimClients - 1 {
		s.trimSoon()
	}
	waitDue()
	if s.trim() {
		t.Errorf("trimmed after %d requests, want at least %d", trimClients-1, trimClients)
	}
	s.trimSoon()
	waitDue()
	if !s.trim() {
		t.Errorf("did not trim after %d requests", trimClients)
	}
	if s.trim() {
		t.Error("trimmed again with no requests since")
	}
}
