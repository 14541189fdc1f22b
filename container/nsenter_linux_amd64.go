package container

// preRuntimeEntry is the binary's ELF entry point when crier-shim is linked
// with -E (see nsenter_linux_amd64.s and the Makefile). Go never calls it.
func preRuntimeEntry()
