package container

import "slices"

// The lists behind `crier features` (runtime-spec features.md): what this
// build recognizes, fixed at build time. Each call returns a new slice.
// features_linux_test.go checks every list against the code that parses
// the config, so that they cannot drift apart. The seccomp lists are in
// package seccomp, next to the compiler they describe.

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

// LabelSupport says which LSMs this build applies labels for: both, where
// the host runs them (features.md: support compiled in, not the host's
// state). Where one is off its labels are ignored.
func LabelSupport() (apparmor, selinux bool) { return true, true }
