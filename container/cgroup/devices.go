package cgroup

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultDeviceRules are allowed after the config's own cgroup device
// rules, so that a config that denies everything (as `crier spec` writes)
// still has the devices every container gets: the standard nodes, its
// terminals and mknod of anything (creating a node is not using it).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(n int64) *int64 { return &n }
	rule := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		rule("c", nil, nil, "m"),
		rule("b", nil, nil, "m"),
		rule("c", i(1), i(3), "rwm"),    // null
		rule("c", i(1), i(5), "rwm"),    // zero
		rule("c", i(1), i(7), "rwm"),    // full
		rule("c", i(1), i(8), "rwm"),    // random
		rule("c", i(1), i(9), "rwm"),    // urandom
		rule("c", i(5), i(0), "rwm"),    // tty
		rule("c", i(5), i(1), "rwm"),    // console
		rule("c", i(5), i(2), "rwm"),    // ptmx
		rule("c", i(136), nil, "rwm"),   // pts
		rule("c", i(10), i(200), "rwm"), // tun
	}
}

// Resources returns the resources to apply: the config's, with the
// default device rules appended. linux.devices get no rule of their own,
// as in runc: a node listed there is made in the container's /dev, and
// the config's rules decide whether it may be used (runc's dev.bats
// "device cgroup deny" denies /dev/kmsg that way).
func Resources(l *specs.Linux) *specs.LinuxResources {
	var r specs.LinuxResources
	if l.Resources != nil {
		r = *l.Resources
	}
	rules := append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	r.Devices = append(rules, defaultDeviceRules()...)
	return &r
}

// deviceAccess reads a rule's access as runc does: the set of r, w and m
// it names, in that order, any other letter ignored ("rwa" is "rw"). crier
// reads an empty access as all three.
func deviceAccess(access string) string {
	if access == "" {
		return "rwm"
	}
	var b []byte
	for _, c := range []byte("rwm") {
		if strings.IndexByte(access, c) >= 0 {
			b = append(b, c)
		}
	}
	return string(b)
}
