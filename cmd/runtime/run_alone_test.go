package main

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/crier-runtime/crier/protocol"
)

// TestDeletedFirst: a foreground run's driver that finds the container
// gone takes the exit status from the delete its shim made by itself,
// and only then; any other failure, or a loop that ended without that
// delete, stays a failure.
func TestDeletedFirst(t *testing.T) {
	seventeen := 17
	stopped := protocol.Reply{OK: true, ExitStatus: &seventeen}
	refused := protocol.Reply{OK: false, Error: "refused"}
	for _, tc := range []struct {
		name       string
		err        error
		reply      *protocol.Reply // in r.deleted
		served     bool            // the loop has ended
		wantStatus int
		wantOK     bool
		wantKept   bool // the reply is still there for deleteStopped
	}{
		{name: "socket gone, deleted", err: fmt.Errorf("container %q: %w", "c", protocol.ErrNotExist), reply: &stopped, wantStatus: 17, wantOK: true},
		{name: "nobody listening, deleted", err: errShimDead, reply: &stopped, served: true, wantStatus: 17, wantOK: true},
		{name: "closed under the subscribe", err: fmt.Errorf("subscribe: %w", io.ErrUnexpectedEOF), reply: &stopped, wantStatus: 17, wantOK: true},
		{name: "reset", err: syscall.ECONNRESET, reply: &stopped, wantStatus: 17, wantOK: true},
		{name: "gone, the loop ended without its delete", err: protocol.ErrNotExist, served: true},
		{name: "gone, its delete failed", err: protocol.ErrNotExist, reply: &refused, wantKept: true},
		{name: "another failure", err: errors.New("permission denied"), reply: &stopped, wantKept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &aloneRun{deleted: make(chan protocol.Reply, 1), served: make(chan struct{})}
			if tc.reply != nil {
				r.deleted <- *tc.reply
			}
			if tc.served {
				close(r.served)
			}
			status, ok := r.deletedFirst(tc.err)
			if status != tc.wantStatus || ok != tc.wantOK {
				t.Errorf("deletedFirst(%v) = %d, %v; want %d, %v", tc.err, status, ok, tc.wantStatus, tc.wantOK)
			}
			if kept := len(r.deleted) == 1; kept != tc.wantKept {
				t.Errorf("reply kept: %v, want %v", kept, tc.wantKept)
			}
		})
	}
	var none *aloneRun // not a run C runs alone
	if _, ok := none.deletedFirst(protocol.ErrNotExist); ok {
		t.Error("deletedFirst of no run: ok")
	}
}
