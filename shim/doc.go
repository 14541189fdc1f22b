// Package shim is the per-container server behind crier: one crier-shim
// process per container, started detached by `crier create`.
//
// The shim creates the container and is its process's parent, so it learns
// the real exit status from the kernel. It keeps the container's lifecycle
// events in a buffer and serves them, along with start, state, kill and
// delete, on a Unix socket in the container's state directory (the protocol
// package describes the wire format).
//
// # One loop
//
// Serve runs one goroutine, the loop, which alone owns the container's
// state machine (creating -> created -> running -> stopped -> deleted), the
// event buffer, the subscriber set and reaping. Everything else (connection
// readers, subscriber writers, the goroutines that run create, start and the
// hooks) only sends the loop messages. Work that blocks for long runs in its
// own goroutine and reports back, so the loop never waits on a client or a
// hook.
//
// # State file
//
// Each transition is written atomically to ROOT/ID/state.json, so that the
// CLI can answer state, kill, list and delete --force even when the shim is
// dead; ReadState reads it.
package shim
