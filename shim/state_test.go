package shim

import (
	"testing"

	"github.com/crier-runtime/crier/internal/testfill"
)

func filled[T any](t *testing.T) *T { return testfill.Filled[T](t) }
