// Package statedir owns crier's state directory: the layout of the state
// root (ROOT/ID/state.json and ROOT/ID/shim.sock), the checks that make it
// safe to trust, reading and atomically writing state.json, removing a
// container's directory, waiting for a container to appear, and the
// tickets by which a waiter gets the events of a container that came and
// went before it could subscribe (await.go).
//
// # Trust
//
// What is in the state directory decides what root runs and which files it
// writes: state.json names the cgroups that delete removes and the poststop
// hooks it runs. So a root, and every container directory in it, is used
// only when it is a directory owned by the caller's effective uid that no
// group or other user may write (OpenRoot, Root.OpenDir); anything else is
// refused with an error that names the path and why.
//
// Once checked, a directory is used only through its descriptor: every file
// in it is opened with openat and O_NOFOLLOW, temporaries are created with
// O_EXCL under unpredictable names and renamed into place with renameat,
// and the socket is reached as /proc/self/fd/N/shim.sock. A path swapped
// after the check is never followed.
//
// The package is linked into the shim's serving image, which must not use
// encoding/json (its caches would stay resident in every idle shim): the
// state file is written with internal/flatjson, and only ReadState, which
// the CLI alone calls, decodes it with encoding/json.
package statedir
