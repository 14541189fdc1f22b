// Package verb is what crier's container verbs do and say once the
// container's shim is reached, for the two places that run them: the CLI
// (cmd/runtime), and the shim itself, when crier's pre-runtime entry
// relays a command line to it (internal/relay, shim/relay.go). Either way
// a verb sends the same requests, prints the same words and exits with the
// same code, because both call this package.
//
// It must stay small and free of encoding/json and reflection: the
// shim's serving image links it.
package verb
