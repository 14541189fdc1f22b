// Command crier-shim is the per-container server that `crier create`
// starts detached. It is not meant to be run by hand; see package shim.
//
// "crier-shim --detach ..." (always the first argument) forks before the
// Go runtime starts, and the starter's child exits at once: see
// container.Reparented and docs/supervisors.md.
//
// Descriptors on entry: 0-2 are the container's stdio, 3 to 3+N-1 are the
// N descriptors to pass through to the container (--preserve-fds), and
// 3+N is where the outcome of create is reported.
//
// "crier-shim --recover --root R --id ID" takes a container over from its
// dead shim (shim.Recover) and reports on descriptor 3.
//
// (No crier process needs Go to size GOMAXPROCS from, and keep watching,
// its cgroup CPU limit: they are short-lived or idle.)
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	// The init stage's and the create image's heaps are short-lived: on
	// huge pages, they save create a page fault for each 4 kB (the
	// serving image does without, see shim.execServing).
	_ "github.com/crier-runtime/crier/internal/hugeheap"
	"github.com/crier-runtime/crier/internal/pagecache"
	"github.com/crier-runtime/crier/shim"
)

// The main goroutine keeps to the main thread until it execs: execve from
// another thread would leave the thread-group leader a zombie for a moment,
// and anyone checking whether the shim is alive would see it dead. The
// serving image never execs, and locking the main thread would start the
// runtime's template thread, which then stays for the shim's life.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "--serve" {
		// The image that exec'd this one turned transparent huge pages
		// off, so that internal/hugeheap left this heap small
		// (shim.execServing); nothing this image starts inherits that.
		unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0)
		return
	}
	runtime.LockOSThread()
}

func main() {
	// The container's init stage is this binary too ("crier-shim init"):
	// it is smaller than the CLI and starts faster, and it needs nothing
	// the shim does not already link.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		err := container.Init()
		if err == nil {
			os.Exit(0) // stage one of a two-stage init has handed over
		}
		if errors.Is(err, container.ErrNotInit) {
			fmt.Fprintln(os.Stderr, "crier-shim:", err)
		}
		os.Exit(1)
	}
	// One shim per container, idle nearly all its life: one P is plenty
	// and means fewer threads and per-P caches to keep resident. The
	// create image, which re-executes itself to serve, gets a second P:
	// it decodes the config, and makes the network namespace, while it
	// claims the ID and makes the cgroups (container.StartLoadSpec).
	if len(os.Args) > 1 && os.Args[1] == "--serve" {
		runtime.GOMAXPROCS(1)
	} else {
		runtime.GOMAXPROCS(2)
	}
	// Nobody profiles a shim's heap; the sampling tables would be resident.
	runtime.MemProfileRate = 0
	if err := run(os.Args[1:]); err != nil {
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) >= 2 && args[0] == "--serve" {
		fd, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		if i := slices.Index(args, "--heal"); i > 0 && i+1 < len(args) {
			// Off the loop: it may wait for the disk.
			go pagecache.Heal(args[i+1])
		}
		return shim.Resume(fd)
	}
	if len(args) == 5 && args[0] == "--recover" && args[1] == "--root" && args[3] == "--id" {
		// A shim that comes back for a dead one (shim.Recover); it
		// reports on fd 3, as after create.
		unix.CloseRange(4, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
		return shim.Recover(args[2], args[4], os.NewFile(3, "report"))
	}
	fs := flag.NewFlagSet("crier-shim", flag.ContinueOnError)
	var (
		cfg      shim.Config
		preserve int
		buffer   string
		logPath  string
		sup      supervision
	)
	fs.StringVar(&cfg.Root, "root", "", "state root")
	fs.StringVar(&cfg.ID, "id", "", "container ID")
	fs.StringVar(&cfg.Bundle, "bundle", "", "absolute bundle path")
	fs.StringVar(&cfg.PidFile, "pid-file", "", "absolute pid file path")
	fs.StringVar(&cfg.ConsoleSocket, "console-socket", "", "absolute console socket path")
	fs.StringVar(&buffer, "event-buffer", "", "event types to buffer (comma-separated, all, none)")
	fs.StringVar(&logPath, "log", "", "log file")
	fs.BoolVar(&cfg.Debug, "debug", false, "log debug messages")
	fs.BoolVar(&cfg.NoPivot, "no-pivot", false, "enter the rootfs with MS_MOVE and chroot, not pivot_root")
	fs.IntVar(&preserve, "preserve-fds", 0, "descriptors after stdio to pass to the container")
	fs.BoolVar(&sup.detach, "detach", false, "first argument only: detached at birth (container.Reparented)")
	fs.StringVar(&sup.mode, "supervisor", "off", "supervisor mode: auto, on or off")
	fs.IntVar(&sup.callerParent, "caller-parent", 0, "the parent of the process that ran crier create (auto)")
	fs.StringVar(&cfg.HealPath, "heal", "", "the CLI binary, which the serving image heals (internal/pagecache)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// This binary, whatever its path; init is exec'd from a sealed copy of
	// it, never from the file itself (container/sealedexe_linux.go).
	cfg.InitPath = "/proc/self/exe"
	// The report pipe and the preserved descriptors go only where they
	// are passed explicitly (init's ForkExec): a hook that inherited the
	// report pipe and outlived the shim would keep `crier create` waiting.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	report := os.NewFile(uintptr(3+preserve), "report")
	cfg.Report = report
	cfg.Stdio = [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := 0; i < preserve; i++ {
		cfg.ExtraFiles = append(cfg.ExtraFiles, os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i)))
	}
	cfg.Buffer = shim.ParseBuffer(buffer)
	cfg.Log = log.New(io.Discard, "", 0)
	cfg.LogPath = logPath
	cfg.Reexec = true
	if logPath != "" {
		if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			cfg.Log = log.New(f, "crier-shim["+cfg.ID+"]: ", log.LstdFlags|log.Lmicroseconds)
		}
	}
	cfg.Supervised = sup.decide(cfg.Log, cfg.Debug)
	return shim.Serve(cfg)
}

// supervision is what the CLI said about a supervisor above it.
type supervision struct {
	detach       bool
	mode         string // auto, on or off (the CLI has checked it)
	callerParent int
}

// decide says whether the container is to be the supervisor's child
// (docs/supervisors.md). In auto, the shim has been detached at birth and
// so reparented to the nearest subreaper above `crier create`, or to init:
// a supervisor is there when that is create's own parent. Init adopts
// every orphan, whether or not it waits for them, so a caller that is its
// pid namespace's init is not taken for one (`--supervisor on` is).
func (s supervision) decide(l *log.Logger, debug bool) bool {
	ppid, detached := 0, false
	began := time.Now()
	if s.detach {
		var err error
		// Also for on: the init's parent is then the reaper from birth.
		if ppid, detached, err = container.Reparented(); err != nil {
			l.Printf("warning: supervisor detection: %v", err)
		}
	}
	on := shim.SupervisedBy(s.mode, detached, ppid, s.callerParent)
	if debug {
		l.Printf("supervisor %s: detached %v (reparented after %v), parent %d, create's parent %d: supervised %v", s.mode, detached, time.Since(began), ppid, s.callerParent, on)
	}
	return on
}
