// Package container sets up Linux containers from OCI runtime-spec
// configurations.
//
// It has two halves that run in different processes:
//
//   - the parent side (Create, Container.Start, Destroy), which runs in the
//     caller (crier-shim) and forks the init stage into new namespaces and
//     straight into its cgroups (package cgroup), and runs the hooks that
//     belong in the runtime namespace;
//   - the init stage (Init), which runs as the first process inside the new
//     namespaces (the hidden "crier-shim init" command), builds the root
//     filesystem, waits for the parent's go-ahead and finally execs the
//     user's process.
//
// The two talk over a socketpair with one JSON message per line; see
// sync.go for the message sequence.
//
// Nothing here keeps package-level mutable state, and nothing here decides
// who reaps the container process: the caller of Create is its parent and
// owns waiting for it.
package container
