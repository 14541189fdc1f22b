// Command bench is crier's side-by-side benchmark (`make bench`, issue 4).
//
// It runs crier, runc and crun on one busybox bundle, interleaved run by
// run (and runc 1.5.3, the newest release, beside Debian's runc 1.1.5 in
// the lifecycle and throughput sections), and puts conmon and containerd-shim-runc-v2 beside crier's shim for
// memory and exit notification. Its clients section has podman and
// containerd (ctr) drive crier and runc, as their users do (issue 10). It
// prints its tables and writes them to docs/performance.md with the
// machine, the versions and the date.
//
// For issue 14, where crier fell behind crun on a machine where starting
// a process is slow: the lifecycle section counts the processes and execs
// of every step with the kernel's process events connector
// (procevents.go, procsteps.go) and their page faults with taskstats
// (taskstats.go), and every section ends with the machine's exec floor
// measured around it (floor.go).
//
// The program runs in three roles, chosen by the hidden -phase flag:
//
//   - outer (the default): installs what is missing, builds the exit-stamp
//     helper, makes the bundle, then runs the inner role in a private mount
//     namespace (`unshare -m`) and, whatever happens there, sweeps away every
//     process, cgroup and file the run left behind;
//   - inner: unmounts /sys/fs/cgroup/unified (crun 1.8.1 refuses this
//     machine's hybrid layout) and measures;
//   - sub-go, poll, pidfd: the subscribers whose CPU time the "cost of
//     waiting a minute" measurement takes from their rusage.
//
// Timing lives here only, never in the tests.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	flagQuick    = flag.Bool("quick", false, "a short run for development: fewer samples, a 10 s wait, 100 containers instead of 500")
	flagWait     = flag.Duration("wait", 0, "how long the CPU cost of waiting is measured over (default 1m; 10s with -quick)")
	flagOut      = flag.String("out", "", "markdown report to write (default docs/performance.md; with -quick, none unless given)")
	flagBin      = flag.String("bin", "", "directory holding crier and crier-shim (default REPO/bin)")
	flagOnly     = flag.String("only", "", "comma-separated sections to run: "+strings.Join(sectionNames, ",")+" (default all)")
	flagRunc15   = flag.String("runc-1.5.3", "", "runc 1.5.3 binary, the fourth runtime of the lifecycle and throughput (default: make runc-suite's, else installed with go install)")
	flagExitN    = flag.Int("exit-n", 0, "samples of each crier subscriber kind in the exit section (default 300; 15 with -quick)")
	flagClientsN = flag.Int("clients-n", 20, "runs of each client with each runtime in the clients section (5 at most with -quick)")

	// Internal: the role and the arguments of the helper roles.
	flagPhase    = flag.String("phase", "", "internal: inner, sub-go, poll or pidfd")
	flagWork     = flag.String("work", "", "internal: the work directory")
	flagRepo     = flag.String("repo", "", "internal: the repository root")
	flagSock     = flag.String("sock", "", "internal (sub-go): the shim socket")
	flagRuntime  = flag.String("runtime", "", "internal (poll): the runtime binary")
	flagRoot     = flag.String("root", "", "internal (poll): the runtime's --root")
	flagID       = flag.String("id", "", "internal (poll): the container ID")
	flagInterval = flag.Duration("interval", 0, "internal (poll): the pause between two state calls")
	flagPid      = flag.Int("pid", 0, "internal (pidfd): the process to wait for")
)

var sectionNames = []string{"lifecycle", "exit", "wait", "oom", "memory", "throughput", "fanout", "scale", "clients"}

func main() {
	flag.Parse()
	var err error
	switch *flagPhase {
	case "":
		err = outer()
	case "inner":
		err = inner()
	case "sub-go":
		err = subGo(*flagSock)
	case "poll":
		err = subPoll(*flagRuntime, *flagRoot, *flagID, *flagInterval)
	case "pidfd":
		err = subPidfd(*flagPid)
	default:
		err = fmt.Errorf("unknown -phase %q", *flagPhase)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// outer prepares the machine and the bundle, runs the inner role in a
// private mount namespace, and sweeps up after it.
func outer() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: containers need it")
	}
	repo, err := findRepo()
	if err != nil {
		return err
	}
	bin := *flagBin
	if bin == "" {
		bin = filepath.Join(repo, "bin")
	}
	for _, f := range []string{"crier", "crier-shim"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			return fmt.Errorf("%s: run `make build` first (make bench does)", filepath.Join(bin, f))
		}
	}
	if err := ensurePackages(); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "crier-bench.")
	if err != nil {
		return err
	}
	// Containers' processes run as root but look up their rootfs by path.
	os.Chmod(work, 0o755)
	prefix := idPrefix()
	// From here on, whatever happens, sweep: no process, cgroup, mount or
	// file of this run may outlive it.
	defer func() {
		sweep(work, prefix)
		os.RemoveAll(work)
	}()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// crier runs from a copy in the work directory, as runc and crun run
	// from /usr/bin: on the machines this was written on, any program
	// exec'd from under the checkout's /work started 0.1-0.3 ms slower
	// per call than the same bytes elsewhere on the same filesystem.
	if bin, err = installCopies(bin, filepath.Join(work, "bin"), "crier", "crier-shim"); err != nil {
		return err
	}
	// runc 1.5.3 likewise, from a directory of its own so that it is
	// still called runc.
	runc15 := ""
	if r, err := ensureRunc15(); err != nil {
		fmt.Printf("bench: no runc 1.5.3, its columns stay empty: %v\n", err)
	} else if dir, err := installCopies(filepath.Dir(r), filepath.Join(work, "runc-1.5.3"), filepath.Base(r)); err != nil {
		return err
	} else {
		runc15 = filepath.Join(dir, filepath.Base(r))
	}
	start := time.Now()
	fmt.Printf("bench: work directory %s, container IDs %s-*\n", work, prefix)
	if err := prepare(repo, work); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"--mount", "--propagation", "private", "--", self,
		"-phase", "inner", "-work", work, "-repo", repo, "-bin", bin, "-id", prefix,
		"-runc-1.5.3", runc15, "-wait", flagWait.String(), "-out", *flagOut, "-only", *flagOnly, "-clients-n", strconv.Itoa(*flagClientsN), "-exit-n", strconv.Itoa(*flagExitN)}
	if *flagQuick {
		args = append(args, "-quick")
	}
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unshare -m: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			// The inner role cleans up on a signal; the sweep is the backstop.
			cmd.Process.Signal(s)
			continue
		case err = <-done:
		}
		break
	}
	fmt.Printf("bench: finished in %s\n", time.Since(start).Round(time.Second))
	if err != nil {
		return fmt.Errorf("the measuring process failed: %w", err)
	}
	return nil
}

// findRepo returns the root of the crier module, from the working
// directory upwards.
func findRepo() (string, error) {
	if *flagRepo != "" {
		return *flagRepo, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/crier-runtime/crier\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the crier repository")
		}
		dir = parent
	}
}

// idPrefix names this run's containers, cgroups and containerd namespace,
// so that the sweep finds all of them and nothing else.
func idPrefix() string { return fmt.Sprintf("crb%x", os.Getpid()&0xfffff) }

// installCopies copies the named executables from dir into to and flushes
// them to disk (a freshly written binary execs slower while its pages are
// dirty). It returns to. Each file is written with one write, as `make
// build` and `make install` write them (the Makefile's write_big), so that
// the page cache holds it in 2 MB folios that every exec maps a block at a
// time.
func installCopies(dir, to string, names ...string) (string, error) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return "", err
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o755); err != nil {
			return "", err
		}
	}
	syscall.Sync()
	return to, nil
}
