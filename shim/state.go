package shim

import (
	"context"
	"path/filepath"

	"github.com/crier-runtime/crier/statedir"
)

// The state directory belongs to package statedir; these names stay for
// the integration tests that read what the shim wrote.

// State is what the shim persists about its container.
type State = statedir.State

// ReadState reads the state file of the container whose directory is dir.
func ReadState(dir string) (*State, error) {
	return statedir.ReadState(filepath.Dir(dir), filepath.Base(dir))
}

// Dir returns the state directory of container id under root.
func Dir(root, id string) string { return statedir.DirPath(root, id) }

// SocketPath returns the shim socket of container id under root.
func SocketPath(root, id string) string { return statedir.SocketPath(root, id) }

// WaitExist blocks until path exists, or ctx ends (statedir.WaitExist).
func WaitExist(ctx context.Context, path string) error { return statedir.WaitExist(ctx, path) }
