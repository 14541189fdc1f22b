// Package teardown removes what is left of a container once its init has
// exited: the processes still in its cgroup, the cgroup, and the state
// directory, running the poststop hooks on the way. The shim's delete and
// the CLI's delete of a container whose shim is dead both use Run, from
// what was recorded at create (the state file), never from the bundle,
// whose config may have changed since.
//
// The package is linked into the shim's serving image: it must not use
// encoding/json or reflection beyond what container.RunHooks already does.
package teardown
