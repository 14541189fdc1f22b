package prefork

// entry is the crier binary's ELF entry point (the Makefile links it with
// -E), in entry_linux_amd64.s. Go never calls it.
func entry()

// globalValueFlag is entry's and relayEntry's check of a global flag that
// takes a value (entry_linux_amd64.s). Go never calls it.
func globalValueFlag()

// waitReadable is entry's and speculate's wait on a pidfd
// (entry_linux_amd64.s). Go never calls it.
func waitReadable()

// exitAfter is W's exit once C has exited (entry_linux_amd64.s). Go never
// calls it.
func exitAfter()
