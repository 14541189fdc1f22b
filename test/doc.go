// Package test holds crier's integration tests. They drive the built
// binaries (make build, then go test ./test -crier-bin DIR) on real busybox
// containers, as root, and check after each test that nothing was left
// behind: no process, shim, mount, cgroup, state directory or socket.
package test
