package shim

import (
	"context"
	"testing"

	"github.com/crier-runtime/crier/internal/testfill"
)

func filled[T any](t *testing.T) *T { return testfill.Filled[T](t) }

// TestStateNames: the names the integration tests use are statedir's.
func TestStateNames(t *testing.T) {
	root := t.TempDir()
	if Dir(root, "c1") != root+"/c1" || SocketPath(root, "c1") != root+"/c1/shim.sock" {
		t.Errorf("Dir %q, SocketPath %q", Dir(root, "c1"), SocketPath(root, "c1"))
	}
	if _, err := ReadState(Dir(root, "c1")); err == nil {
		t.Error("ReadState of a missing container worked")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitExist(ctx, Dir(root, "c1")); err == nil {
		t.Error("WaitExist of a missing container returned nil")
	}
}
