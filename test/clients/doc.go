// Package clients drives a runtime through the systems people run
// containers with: podman (with conmon), containerd (ctr, with
// containerd-shim-runc-v2) and docker (dockerd, through its own
// containerd). Each client runs in a private sandbox that the tests start
// and tear down, offline, with images made locally from the busybox rootfs.
//
// The test files build only with -tags clients, so that the integration
// suite's `go test ./test/... -crier-bin DIR` leaves them out.
//
// The tests take the runtime with -runtime (default: this repository's
// bin/crier); run them against runc too (make test-clients-runc), so that a
// failure can be told apart from a harness fault. docs/supervisors.md says
// what each scenario checks and why the sandboxes are set up as they are.
package clients
