package container

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The lists behind `crier features` (runtime-spec features.md): what this
// build recognizes, fixed at build time. Each call returns a new slice.
// features_linux_test.go checks every list against the code that parses
// the config, so that they cannot drift apart.

// KnownCapabilities returns the capability names that process.capabilities
// accepts, in capability-number order.
func KnownCapabilities() []string {
	table := capabilityNames()
	return slices.Clone(table[:])
}

// KnownMountOptions returns the mount option words that crier acts on
// itself, sorted: mount(2) flags, propagation changes, idmap and ridmap.
// Other words go to the filesystem as data, except the ones refused (the
// recursive "r" forms of the flags).
func KnownMountOptions() []string {
	opts := make([]string, 0, len(mountFlagOptions)+len(mountPropagationOptions)+len(idmapMountOptions))
	for o := range mountFlagOptions {
		opts = append(opts, o)
	}
	for o := range mountPropagationOptions {
		opts = append(opts, o)
	}
	for o := range idmapMountOptions {
		opts = append(opts, o)
	}
	slices.Sort(opts)
	return opts
}

// SeccompActions returns the linux.seccomp actions crier implements.
// SCMP_ACT_NOTIFY is not one: there is no notify listener.
func SeccompActions() []string {
	return []string{
		string(specs.ActAllow), string(specs.ActErrno), string(specs.ActKill),
		string(specs.ActKillProcess), string(specs.ActKillThread), string(specs.ActLog),
		string(specs.ActTrace), string(specs.ActTrap),
	}
}

// SeccompOperators returns the argument comparison operators crier
// implements: all of the spec's.
func SeccompOperators() []string {
	return []string{
		string(specs.OpEqualTo), string(specs.OpGreaterEqual), string(specs.OpGreaterThan),
		string(specs.OpLessEqual), string(specs.OpLessThan), string(specs.OpMaskedEqual),
		string(specs.OpNotEqual),
	}
}

// SeccompArchs returns the architectures linux.seccomp accepts: every one
// the spec names. Only the x86 ones (x86_64, x86, x32) have anything to
// filter on an x86_64 kernel; the others are accepted and ignored.
func SeccompArchs() []string {
	return []string{
		string(specs.ArchAARCH64), string(specs.ArchARM), string(specs.ArchLOONGARCH64),
		string(specs.ArchM68K), string(specs.ArchMIPS), string(specs.ArchMIPS64),
		string(specs.ArchMIPS64N32), string(specs.ArchMIPSEL), string(specs.ArchMIPSEL64),
		string(specs.ArchMIPSEL64N32), string(specs.ArchPARISC), string(specs.ArchPARISC64),
		string(specs.ArchPPC), string(specs.ArchPPC64), string(specs.ArchPPC64LE),
		string(specs.ArchRISCV64), string(specs.ArchS390), string(specs.ArchS390X),
		string(specs.ArchSH), string(specs.ArchSHEB), string(specs.ArchX32),
		string(specs.ArchX86), string(specs.ArchX86_64),
	}
}

// SeccompFlags returns the linux.seccomp flags crier accepts. TSYNC and
// WAIT_KILLABLE_RECV are accepted and have nothing to do: the filter goes
// on the thread that execs, and there is no notify listener.
func SeccompFlags() []string {
	return []string{
		string(specs.LinuxSeccompFlagLog),
		string(specs.LinuxSeccompFlagSpecAllow),
		"SECCOMP_FILTER_FLAG_TSYNC",
		string(specs.LinuxSeccompFlagWaitKillableRecv),
	}
}

// LabelSupport says which LSMs this build applies labels for: both, where
// the host runs them (features.md: support compiled in, not the host's
// state). Where one is off its labels are ignored.
func LabelSupport() (apparmor, selinux bool) { return true, true }
