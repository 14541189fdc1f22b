package seccomp

import specs "github.com/opencontainers/runtime-spec/specs-go"

// The lists behind the seccomp part of `crier features` (runtime-spec
// features.md): what Compile accepts, fixed at build time. Each call
// returns a new slice. features_linux_test.go checks every list against
// the compiler, so that they cannot drift apart.

// Actions returns the linux.seccomp actions Compile implements: all of
// the spec's (SCMP_ACT_NOTIFY with a listenerPath, not as the default).
func Actions() []string {
	return []string{
		string(specs.ActAllow), string(specs.ActErrno), string(specs.ActKill),
		string(specs.ActKillProcess), string(specs.ActKillThread), string(specs.ActLog),
		string(specs.ActNotify), string(specs.ActTrace), string(specs.ActTrap),
	}
}

// Operators returns the argument comparison operators Compile
// implements: all of the spec's.
func Operators() []string {
	return []string{
		string(specs.OpEqualTo), string(specs.OpGreaterEqual), string(specs.OpGreaterThan),
		string(specs.OpLessEqual), string(specs.OpLessThan), string(specs.OpMaskedEqual),
		string(specs.OpNotEqual),
	}
}

// Archs returns the architectures linux.seccomp accepts: every one the
// spec names. Only the x86 ones (x86_64, x86, x32) have anything to
// filter on an x86_64 kernel; the others are accepted and ignored.
func Archs() []string {
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

// Flags returns the linux.seccomp flags Compile accepts. TSYNC is
// accepted and has nothing to do: the filter goes on the thread that
// execs. WAIT_KILLABLE_RECV applies to a profile that notifies and is
// ignored by one that does not (the kernel refuses it without a
// listener).
func Flags() []string {
	return []string{
		string(specs.LinuxSeccompFlagLog),
		string(specs.LinuxSeccompFlagSpecAllow),
		"SECCOMP_FILTER_FLAG_TSYNC",
		string(specs.LinuxSeccompFlagWaitKillableRecv),
	}
}
