package prefork

// speculate is in speculate_linux_amd64.s; entry calls it in C. Go never
// calls it.
func speculate()

// spread is speculate's, for the init it forked.
func spread()

// speculateOff, when not empty (set with the linker's -X), turns the
// speculative init off: for measuring what it brings.
var speculateOff string

// speculate's scratch space and strings, which only the assembly uses.
var (
	specFDs    [8]int32 // dir, tmpfs ctx, tmpfs, overlay ctx, overlay, binary, socket pair
	specPath   [4096]byte
	specStatfs [120]byte
	specMask   uint64
	specCPU    uint32
	specCPUs   [16]uint64 // a CPU mask, 1024 CPUs
	specArgv   [3]uintptr
	specEnvp   [3]uintptr

	specCgroupDir = "/sys/fs/cgroup\x00"
	specLoadavg   = "/proc/loadavg\x00"
	specSelfExe   = "/proc/self/exe\x00"
	specShimName  = "crier-shim\x00"
	specTmpfs     = "tmpfs\x00"
	specOverlay   = "overlay\x00"
	specLowerdir  = "lowerdir+\x00"
	specXino      = "xino\x00"
	specOff       = "off\x00"
	specEmpty     = "\x00"
	specArg0      = "crier\x00"
	specArg1      = "init\x00"
	specEnvFD     = "_CRIER_INIT_FD=3\x00"
	specEnvProcs  = "GOMAXPROCS=1\x00"
)
