package prefork

import "golang.org/x/sys/unix"

// The speculative init. In C, before its Go runtime starts, the entry
// forks the container's init stage (speculate_linux_amd64.s), before
// anything of the container is known: into a new pid and a mount
// namespace, the two that must be made by the clone itself, exec'd from
// a sealed copy of the crier-shim next to this binary, with its sync
// socket as descriptor 3. Its Go runtime then starts on the other CPU
// while C's does, and it waits for its config as any init does. C
// adopts it (container.Speculative) when the container is one it fits:
// no supervisor, no user, time or joined namespaces, no passed
// descriptors, no terminal, that crier-shim; the init unshares the rest
// of its namespaces (uts, ipc, network) on its one thread. Otherwise C
// kills and reaps it, and forks an init as before. C also keeps the two
// detached mounts the copy is sealed in, so that init's exec does not
// drop their last descriptors (which waits for an RCU grace period):
// the shim closes them while init builds the rootfs
// (container.Speculative.Mounts).
//
//	W ──fork──▶ M ──fork──▶ C ─┬─ Go runtime: the CLI, then the shim, which
//	                           │  adopts I or discards it
//	                           └──clone(NEWPID|NEWNS)──▶ I ──execveat──▶
//	                              sealed crier-shim init: Go runtime,
//	                              then waits on descriptor 3
//
// It is not made when C's parent, once M has exited, is create's caller's
// parent (a supervisor, whose child init must be), nor on a cgroup v2 host
// (init is born in its cgroup there), nor when the binary was linked with
// -X .../prefork.speculateOff=1.

// TakeSpeculative hands the speculative init over to the caller, who
// adopts it or kills and reaps it (container.Speculative): its pid, C's
// end of its sync socket, the sealed binary it runs and the two detached
// mounts that binary is sealed in (an empty tmpfs and the overlay). ok
// is false when there is none, or it was taken already.
func TakeSpeculative() (pid, sync, exe int, mounts [2]int, ok bool) {
	if state.forked != 1 || state.specPid <= 0 {
		return 0, -1, -1, [2]int{-1, -1}, false
	}
	pid, sync, exe = int(state.specPid), int(state.specSync), int(state.specExe)
	mounts = [2]int{int(state.specMounts[0]), int(state.specMounts[1])}
	state.specPid = 0
	return pid, sync, exe, mounts, true
}

// DiscardSpeculative kills and reaps the speculative init if nobody took
// it: C is about to report or exit without a container. (One taken is
// the taker's to adopt or discard: container.Speculative.)
func DiscardSpeculative() {
	pid, sync, exe, mounts, ok := TakeSpeculative()
	if !ok {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(pid, nil, 0, nil); err != unix.EINTR {
			break
		}
	}
	unix.Close(sync)
	unix.Close(exe)
	unix.Close(mounts[0])
	unix.Close(mounts[1])
}
