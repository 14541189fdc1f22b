// Package statedirtest makes state directories for the unit tests of the
// packages that use statedir, the way the shim makes them at create: a new
// root that passes statedir's checks, and a container directory made under
// a temporary name and published.
package statedirtest

import (
	"testing"

	"github.com/crier-runtime/crier/statedir"
)

// New makes a state root in t's temporary directory with an empty
// directory for container id in it, and returns the root's path.
func New(t testing.TB, id string) string {
	t.Helper()
	root := t.TempDir()
	r, err := statedir.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.NewTemp(0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Publish(id); err != nil {
		t.Fatal(err)
	}
	return root
}
