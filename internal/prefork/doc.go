// Package prefork is the pre-runtime entry point of the crier binary, which
// saves `crier create` a whole Go program start.
//
// Without it, create runs three Go programs in a row before it returns:
// crier, the crier-shim it starts, and the init stage. Each costs its
// page faults and its runtime's start-up, which on the slower machines of
// this kind (where page-table updates are dear) is most of create's time.
// With it, the process that runs `crier create` forks before its Go
// runtime starts, while it has one thread and a few pages, and the fork
// becomes the shim itself: it parses the command line as the CLI does and
// serves the container from the same process (cmd/runtime, serveShim).
//
//	caller ──exec──▶ crier (W) ──fork──▶ M ──fork──▶ C ─▶ Go runtime: the CLI,
//	                   │                 │                then the shim
//	                   │                 └─ exits at once: C is an orphan
//	                   │                    from birth (supervisor detection,
//	                   │                    container.ReparentedFrom)
//	                   └─ reaps M, reads one byte from a pipe (C's exit code,
//	                      sent once the container is created or create has
//	                      failed) and exits with it, without ever starting
//	                      a Go runtime
//
// The entry acts only when the first argument that is not a flag (or a
// value of one of the global flags that take one) is "create"; every
// other command goes straight to the runtime. C reports on the pipe with
// Report: the shim once the container is created, main for any other
// outcome (an error, --help, a command line that was not create after
// all). If C dies before it reports, W says so on stderr and exits 1.
package prefork
