// Package cri drives crier the way Kubernetes does: through containerd's
// CRI plugin (containerd 1.6, containerd-shim-runc-v2 with crier as the
// runc options' BinaryName), with crictl scenarios and the CRI validation
// suite critest, each with a second runtime handler that runs runc, the
// reference, in the same containerd.
//
// Everything runs in a private sandbox that the tests start and tear down:
// containerd's root, state, sockets and configuration, a CNI bridge on a
// private subnet, a cgroup parent, an IPC namespace, and images made
// offline from the busybox rootfs. The test files build only with
// -tags cri (make test-cri, make critest). docs/kubernetes.md says what
// each test checks and why the sandbox is set up as it is.
package cri
