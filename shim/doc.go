// Package shim is the per-container server behind crier: one crier-shim
// process per container, started detached by `crier create`.
//
// The shim creates the container and is its process's parent, so it learns
// the real exit status from the kernel. Under a reaping supervisor (conmon,
// containerd-shim-runc-v2: docs/supervisors.md) the supervisor is the
// parent instead, and the shim reads the status the kernel kept for its
// pidfd once the supervisor has reaped (supervisedExit). It keeps the container's lifecycle
// events in a buffer and serves them, along with start, state, kill and
// delete, on a Unix socket in the container's state directory (the protocol
// package describes the wire format).
//
// # One loop
//
// Serve runs one goroutine, the loop, which alone owns the container's
// phase, the event buffer, the subscriber set and reaping. Everything else
// (connection readers, subscriber writers, the goroutines that run create,
// start, the hooks and the teardown) only sends the loop messages. Work
// that blocks for long runs in its own goroutine and reports back, so the
// loop never waits on a client or a hook.
//
// # The state table
//
// The phase (phase.go) is finer than the OCI status (creating -> created
// -> running -> stopped, then deleted): a start in flight, an exit held
// back during it, and a forced delete waiting for the exit are phases of
// their own. One table, transitions, says which request each phase allows
// and what every request and event moves it to; loop.go does the work of a
// move and never decides whether it is allowed. A refused request gets a
// refusal error, which names the phase and the request and wraps
// protocol.ErrInvalidState.
//
// # The seam
//
// The loop reaches the kernel only through ops (ops.go): create, start,
// signal, wait for the init's exit, reap orphans, the poststart hooks, the
// teardown. newServer and Resume set them from the container; the unit
// tests set fakes and drive the loop without root.
//
// # Re-exec
//
// Once the container is created the shim execs itself afresh to serve
// from a small heap (reexec.go). What it keeps about its container is one
// value, the record (record.go): the handoff to the serving image carries
// it (handoff.go), and the state file is a view of it.
//
// # State file
//
// Each transition is written atomically to ROOT/ID/state.json, so that the
// CLI can answer state, kill, list and delete --force even when the shim is
// dead; ReadState reads it. A delete removes the container with
// teardown.Run, as the CLI does when the shim is dead.
package shim
