// Package pidfd waits for a process to exit through its pidfd
// (pidfd_open(2)), which polls readable once the process has exited,
// whether or not it is the caller's child. The CLI waits on a container's
// process it does not parent, the container package on the init stage it
// does, and the shim on the container's process without a thread of its
// own: one way of waiting, written once, with every error returned.
//
// It imports only os, time and x/sys/unix, so the shim's serving image
// can use it without gaining encoding/json or reflection.
package pidfd
