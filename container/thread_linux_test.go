package container

import "runtime"

// As in crier-shim, the main goroutine keeps the main thread, so the
// throwaway threads of inNamespaces and the tests' own locked goroutines
// are never the main one. (package cgroup's tests do the same for
// ForkInto.)
func init() { runtime.LockOSThread() }
