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
//	                   └─ reaps M, reads C's report from a pipe and exits
//	                      with its code: at once when the container is
//	                      created (C lives on), else once C has exited (a
//	                      pidfd), so that nothing of a failed create is
//	                      seen alive after it returned; it never starts a
//	                      Go runtime (for a run, only when C asks it to)
//
// The entry acts only when the first argument that is not a flag (or a
// value of one of the global flags that take one) is "create" or "run";
// every other command goes straight to the runtime. C reports on the pipe:
// Created, from the shim once the container is created, or Exit, from
// main for any other outcome (an error, --help, a command line that was
// not create after all). If C dies before it reports, W says so on stderr
// and exits 1.
//
// For `crier run` the pipe is a socket pair of packets, used both ways, and
// W waits in assembly too (runwait_linux_amd64.s), holding the signals run
// forwards. C parses the command line as run's CLI would, and either runs
// the run alone or asks W for its CLI:
//
//	M ──▶ W   C's pid, once M has forked it (W reaps M, then reads it)
//	C ──▶ W   'G' (NeedCLI): W goes on into its Go runtime as run's CLI;
//	          then, as before session 9:
//	W ──▶ C   the go-ahead (GoAhead), with what the shim is to be given:
//	          W has checked the command line, catches the signals it
//	          forwards and listens on its console socket
//	C ──▶ W   Created, with the container's pid, or Exit
//
//	or, for a run C runs alone (RunAlone; cmd/runtime/run_alone.go):
//	C ──▶ W   'C' created, with the container's pid (W takes a pidfd of
//	          it), or 'X' with create's exit code
//	C ──▶ W   'S' started (RunStarted): W forwards the held signals, and
//	          those to come, to the container through a signalfd
//	C ──▶ W   'X' with run's exit code, once C has deleted the container
//	          (W exits with it once C has exited), or 'L' with 0 for a
//	          detached run (W exits at once; C serves on) (RunDone)
//
// In the CLI's case C creates nothing and prints nothing before the
// go-ahead; if W exits without one, having said what was wrong, C exits
// too. Once it has the go-ahead, C reports as a forked create's does and
// prints its own errors, and W waits for C to exit before it exits with
// C's code. If C dies before it says anything, W's CLI says so, exits 1
// and removes what C left of the container (only if the state names C as
// its shim: the ID may be another's); if C dies after 'C', W says so and
// exits 1.
//
// In C of a create or a run the entry also starts the container's init
// stage ahead, before anything of the container is known (speculate.go):
// C adopts it when the container fits it, and kills it otherwise. While a
// CPU is idle, C keeps that init off its own CPU (spread), so that the two
// runtimes start side by side, and C's package init slows its runtime's
// monitor thread until the container is created (sysmon.go).
//
// For state, start, kill, delete, pause, resume and event the entry first tries
// the relay (relay_linux_amd64.s, internal/relay): it hands the command
// line to the container's shim and exits with what the shim says, without
// starting a Go runtime at all; when the shim declines, or cannot be
// reached, the command goes on into the runtime as any other.
//
// The entry also gives every crier process but W one P to start with:
// unless the caller set GOMAXPROCS, it puts "GOMAXPROCS=1" in front of the
// environment the runtime reads, and this package's init takes it out
// again, so nothing crier runs inherits it. With two Ps the runtime starts
// a second thread for the first goroutines it readies, which a short
// command pays for in page faults: about 1.5 ms of `crier state`'s 10 on
// the machines of issue 14. And it populates the data and bss segments
// with one madvise(MADV_POPULATE_WRITE) just before the runtime starts:
// the runtime writes some 45 of their pages as it starts, and there a
// write fault costs some ten times what populating a page does.
package prefork
