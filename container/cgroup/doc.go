// Package cgroup puts a container in its cgroups, applies the config's
// linux.resources to them and removes them: on cgroup v1, on cgroup v2
// and on hybrid hosts (v1 controllers with a v2 hierarchy beside them).
//
// Its API follows a container's life:
//
//   - New, at create, computes the container's directory in every mounted
//     hierarchy from linux.cgroupsPath (by default /<id>, as runc and
//     crun), changing nothing on disk;
//   - Resources is the config's resources with the device rules every
//     container gets, and those for its linux.devices, appended;
//   - Prepare checks that the host has the controllers those need and
//     creates the directories; ForkInto then forks init straight into
//     them, or, on a host with v1 controllers (Staged), init is forked
//     first and, once Prepare has made them, moves its main thread into
//     the v1 ones itself (SelfDirs, MoveSelf), Adopt moving it into the
//     rest (a hybrid host's v2 one), or into all where init cannot; and
//     Limit writes the limits while init starts up (init does nothing
//     before it has its config, sent once they are all in place);
//   - Pids lists the container's processes, for kill --all and delete;
//   - Destroy removes the directories, possibly from another process than
//     the one that made them (the CLI, when the shim is dead).
//
// A Cgroup's fields are what Destroy needs, so they are exported and
// travel in the state file and the shim's handoff.
//
// What the package owns besides the controllers' files:
//
//   - the v2 device rules: v2 has no devices controller, so the rules are
//     compiled into an eBPF program, with the v1 controller's semantics,
//     and attached to the container's cgroup (devices_bpf_linux.go);
//   - the parents a cgroupsPath names that did not exist: Prepare
//     records them and Destroy removes them if empty (and the shared
//     /crier parents of containers an older crier made, by default, in
//     /crier/<id>); a create that races with such a removal retries its
//     mkdir;
//   - the real-time budget of the parents crier creates, which v1 RT
//     group scheduling starts at zero (rt_linux.go).
//
// On a v2 host init is born in its cgroup rather than moved there, and
// `crier exec`'s process always is. Moving a process (writing its pid to
// cgroup.procs) takes the kernel's global threadgroup write lock, which
// after a quiet spell waits for an RCU grace period: milliseconds, the
// largest single cost of a create. clone3 with CLONE_INTO_CGROUP places
// the child in its v2 cgroup at birth, and a thread that writes 0 to a v1
// hierarchy's "tasks" file moves itself alone, without that lock, so that
// the child it forks starts there. On a host with v1 controllers, though,
// making the directories (one per hierarchy, and the cpuset's values)
// takes milliseconds too, and so does init's Go runtime to start: create
// forks init first and makes them while it starts up. Init then moves its
// main thread into them itself (MoveSelf): moving it by pid (Adopt), as
// runc and crun do, took the lock, and its wait, 5-25 ms whenever no
// cgroup move had happened for a while, was far longer than the start it
// was meant to overlap (docs/performance-notes.md).
package cgroup
