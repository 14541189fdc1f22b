// Command soak runs container lifecycles under fault injection (make soak,
// docs/reliability.md): N lifecycles of real busybox containers, a few at a
// time, each with a kill at a random point (the CLI during create, start,
// delete or event; the shim during create, while running or during delete;
// the container's process) and subscribers that come and go. Every
// container is then driven to deletion with the normal CLI. At the end it
// prints what was left behind and what was lost, as figures, and exits 1
// unless every figure that must be zero is.
//
// It needs root, the built binaries (-crier-bin) and the busybox rootfs
// that the runtime-tools module ships (fetched through the Go module proxy
// as the integration tests do).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	o := options{}
	flag.StringVar(&o.bin, "crier-bin", "bin", "directory with the built crier and crier-shim")
	flag.IntVar(&o.n, "n", envInt("SOAK_N", 1000), "number of lifecycles (SOAK_N)")
	flag.IntVar(&o.workers, "workers", 4, "lifecycles at a time")
	flag.Uint64Var(&o.seed, "seed", envUint("SOAK_SEED", 0), "random seed (SOAK_SEED; 0: from the clock)")
	flag.BoolVar(&o.verbose, "v", os.Getenv("SOAK_VERBOSE") != "", "print every lifecycle's outcome (SOAK_VERBOSE)")
	flag.Parse()
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "soak: needs root")
		os.Exit(2)
	}
	s, err := setup(&o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: setup:", err)
		os.Exit(2)
	}
	os.Exit(s.soak())
}

type options struct {
	bin        string
	n, workers int
	seed       uint64
	verbose    bool
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envUint(name string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

// run runs the lifecycles, checks what they left and prints the figures;
// it returns the exit code.
func (s *soak) soak() int {
	fmt.Printf("soak: %d lifecycles, %d at a time, seed %d (SOAK_SEED=%d to repeat the choices)\n",
		s.o.n, s.o.workers, s.o.seed, s.o.seed)
	fmt.Printf("soak: load average %s, exec floor %v (median fork+exec of /bin/true)\n", loadAvg(), execFloor())
	fdsBefore := listFDs(os.Getpid())
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > s.o.n {
					return
				}
				l := s.newLife(i, rand.New(rand.NewPCG(s.o.seed, uint64(i))))
				l.run()
				s.stats.addLife(l)
				if s.o.verbose || len(l.problems) > 0 {
					l.print()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	leaks := s.leaks(fdsBefore)
	s.print(elapsed, leaks)
	s.cleanupTmp(leaks)
	if s.stats.isBad() || leaks.any() {
		fmt.Println("soak: FAILED")
		passed := s.stats.passed(s.o.n)
		fmt.Printf("soak: %d passed, %d failed\n", passed, s.o.n-passed)
		return 1
	}
	fmt.Printf("soak: %d passed, 0 failed\n", s.o.n)
	return 0
}
