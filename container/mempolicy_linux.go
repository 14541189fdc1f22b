package container

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// linux.memoryPolicy is the NUMA memory policy of the container's
// processes: set_mempolicy(2) on the thread that execs each of them (the
// init's and every exec'd process's), which execve and fork keep. The
// errors say "invalid memory policy ..." as runc's do: runc's
// memorypolicy.bats matches those words.

// Modes and mode flags of set_mempolicy(2), from linux/mempolicy.h.
const (
	mpolDefault             = 0
	mpolPreferred           = 1
	mpolBind                = 2
	mpolInterleave          = 3
	mpolLocal               = 4
	mpolPreferredMany       = 5
	mpolWeightedInterleave  = 6
	mpolFNumaBalancing      = 1 << 13
	mpolFRelativeNodes      = 1 << 14
	mpolFStaticNodes        = 1 << 15
	mpolMaxNodes            = 1 << 10 // MAX_NUMNODES at CONFIG_NODES_SHIFT's maximum, 10
	mpolNodesPerWord        = 64
	mpolMaxNodeListElements = 4096
)

var memoryPolicyModes = map[specs.MemoryPolicyModeType]int{
	specs.MpolDefault:            mpolDefault,
	specs.MpolPreferred:          mpolPreferred,
	specs.MpolBind:               mpolBind,
	specs.MpolInterleave:         mpolInterleave,
	specs.MpolLocal:              mpolLocal,
	specs.MpolPreferredMany:      mpolPreferredMany,
	specs.MpolWeightedInterleave: mpolWeightedInterleave,
}

var memoryPolicyFlags = map[specs.MemoryPolicyFlagType]int{
	specs.MpolFNumaBalancing: mpolFNumaBalancing,
	specs.MpolFRelativeNodes: mpolFRelativeNodes,
	specs.MpolFStaticNodes:   mpolFStaticNodes,
}

// KnownMemoryPolicy returns the modes and flags linux.memoryPolicy
// accepts, for `crier features`, sorted.
func KnownMemoryPolicy() (modes, flags []string) {
	for m := range memoryPolicyModes {
		modes = append(modes, string(m))
	}
	for f := range memoryPolicyFlags {
		flags = append(flags, string(f))
	}
	slices.Sort(modes)
	slices.Sort(flags)
	return modes, flags
}

// memPolicy is a linux.memoryPolicy ready for set_mempolicy(2).
type memPolicy struct {
	mode  int // with its flags
	nodes []uint64
}

// parseMemoryPolicy checks a linux.memoryPolicy the way the kernel and
// runc do and builds set_mempolicy's arguments.
func parseMemoryPolicy(mp *specs.LinuxMemoryPolicy) (*memPolicy, error) {
	mode, ok := memoryPolicyModes[mp.Mode]
	if !ok {
		return nil, fmt.Errorf("invalid memory policy mode %q", mp.Mode)
	}
	for _, f := range mp.Flags {
		v, ok := memoryPolicyFlags[f]
		if !ok {
			return nil, fmt.Errorf("invalid memory policy flag %q", f)
		}
		mode |= v
	}
	nodes, count, err := parseNodeList(mp.Nodes)
	if err != nil {
		return nil, err
	}
	switch mode &^ (mpolFNumaBalancing | mpolFRelativeNodes | mpolFStaticNodes) {
	case mpolDefault, mpolLocal:
		if count != 0 {
			return nil, fmt.Errorf("invalid memory policy: %s mode requires 0 nodes but got %d", mp.Mode, count)
		}
	case mpolBind, mpolInterleave, mpolWeightedInterleave, mpolPreferredMany:
		if count == 0 {
			return nil, fmt.Errorf("invalid memory policy: %s mode requires at least 1 node", mp.Mode)
		}
	}
	if mode&mpolFRelativeNodes != 0 && mode&mpolFStaticNodes != 0 {
		return nil, fmt.Errorf("invalid memory policy flags: %s and %s exclude each other", specs.MpolFRelativeNodes, specs.MpolFStaticNodes)
	}
	return &memPolicy{mode: mode, nodes: nodes}, nil
}

// parseNodeList parses a node list ("0", "0-3", "0,2-4") into a bitmask
// and counts its nodes.
func parseNodeList(s string) ([]uint64, int, error) {
	if s == "" {
		return nil, 0, nil
	}
	var mask []uint64
	count := 0
	parts := strings.Split(s, ",")
	if len(parts) > mpolMaxNodeListElements {
		return nil, 0, fmt.Errorf("invalid memory policy nodes %q: more than %d elements", s, mpolMaxNodeListElements)
	}
	for _, part := range parts {
		lo, hi, err := parseNodeRange(part)
		if err != nil {
			return nil, 0, fmt.Errorf("invalid memory policy node %q in %q: %w", part, s, err)
		}
		for n := lo; n <= hi; n++ {
			for len(mask) <= n/mpolNodesPerWord {
				mask = append(mask, 0)
			}
			w, b := n/mpolNodesPerWord, uint(n%mpolNodesPerWord)
			if mask[w]&(1<<b) == 0 {
				count++
			}
			mask[w] |= 1 << b
		}
	}
	return mask, count, nil
}

// parseNodeRange parses "N" or "N-M", each below mpolMaxNodes.
func parseNodeRange(part string) (int, int, error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
	lo, err := parseNode(a)
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = parseNode(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("range ends before it starts")
		}
	}
	return lo, hi, nil
}

func parseNode(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a node number")
	}
	if n >= mpolMaxNodes {
		return 0, fmt.Errorf("node %d above the kernel's maximum of %d", n, mpolMaxNodes-1)
	}
	return int(n), nil
}

// applyMemoryPolicy sets the calling thread's memory policy, if the
// config has one (nothing to do, no system call, otherwise). The init
// stage calls it before it reports the container created, so that a
// policy the kernel refuses fails create; its locked thread is the one
// that execs the process, and the startContainer hooks it forks share
// the policy, as runc's do.
func applyMemoryPolicy(mp *specs.LinuxMemoryPolicy) error {
	if mp == nil {
		return nil
	}
	p, err := parseMemoryPolicy(mp)
	if err != nil {
		return fmt.Errorf("linux.memoryPolicy: %w", err)
	}
	var ptr unsafe.Pointer
	maxnode := uintptr(0)
	if len(p.nodes) > 0 {
		ptr = unsafe.Pointer(&p.nodes[0])
		// The kernel reads maxnode-1 bits.
		maxnode = uintptr(len(p.nodes)*mpolNodesPerWord) + 1
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SET_MEMPOLICY, uintptr(p.mode), uintptr(ptr), maxnode); e != 0 {
		return fmt.Errorf("linux.memoryPolicy: set_mempolicy %s nodes %q flags %v: %w", mp.Mode, mp.Nodes, mp.Flags, e)
	}
	return nil
}
