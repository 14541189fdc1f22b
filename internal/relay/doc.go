// Package relay is how a crier command line reaches the container's shim
// without a Go runtime starting for it.
//
// Starting a Go program costs some 250-300 page faults, which on the slow
// machines of issue 14 is most of a short command's time; the shim of the
// container is already running. So on amd64 crier's pre-runtime entry
// (internal/prefork) looks at the command line of state, start, kill,
// delete, pause, resume and event before anything else: it finds the state root
// and the container ID, connects to ROOT/ID/shim.sock (through an O_PATH
// descriptor of the directory, whatever its length), checks that the
// server is of its own user (SO_PEERCRED), and sends the command line and
// its working directory. The shim either declines, and the entry goes on
// into the Go runtime as if nothing had happened (nothing was done), or
// accepts, runs the verb as the CLI would (internal/verb), and sends back
// what to write on stdout and stderr and the exit code:
//
//	crier (entry) ──▶ shim   Header, then the arguments after argv[0], each
//	                         NUL-terminated, then the working directory
//	shim ──▶ crier (entry)   Declined, or Accepted and then frames:
//	                         'O' bytes for stdout, 'E' bytes for stderr,
//	                         and last 'X' with the exit code
//
// The entry then reads until the shim closes the connection, so that a
// relayed delete returns only once the shim has exited, and exits with the
// code. A connection that ends before Accepted is a decline; one that
// ends after it, before 'X', is a shim that died under the command, which
// the entry reports in one line, as the CLI does.
//
// The shim declines whatever it does not take exactly as the CLI would:
// any flag outside the small set Parse knows (--debug and -h among them),
// a root or ID that are not its own (a root reached through a symbolic
// link, say, or another container's directory linked under this ID),
// a malformed command line. The CLI then runs it and says what is wrong.
//
// CRIER_RELAY=0 in the environment turns the relay off: every command then
// runs in its own Go runtime, as on other architectures.
package relay
