package cgroup

import specs "github.com/opencontainers/runtime-spec/specs-go"

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
// default device rules and one rule per linux.devices entry appended.
func Resources(l *specs.Linux) *specs.LinuxResources {
	var r specs.LinuxResources
	if l.Resources != nil {
		r = *l.Resources
	}
	rules := append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	rules = append(rules, defaultDeviceRules()...)
	for _, d := range l.Devices {
		typ := d.Type
		switch typ {
		case "p":
			continue // a fifo is not a device the cgroup controls
		case "u":
			typ = "c" // unbuffered is still a character device
		}
		major, minor := d.Major, d.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	r.Devices = rules
	return &r
}
