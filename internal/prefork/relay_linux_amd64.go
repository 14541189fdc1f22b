package prefork

import "github.com/crier-runtime/crier/internal/relay"

// relayEntry, relayRead and relayWrite are in relay_linux_amd64.s: entry
// calls relayEntry for the verbs the container's shim can run in the CLI's
// place (internal/relay). Go never calls them.
func relayEntry()
func relayRead()
func relayWrite()

// relayEntry's scratch space, which only the assembly uses (which keeps it
// linked); its pages are touched only by a relayed command.
var (
	relayPath    [4096]byte
	relayAddr    [110]byte
	relayMsg     [relay.HeaderSize + relay.MaxArgs + relay.MaxCwd + 1]byte
	relayFrame   [relay.MaxPayload]byte
	relayCred    [12]byte // struct ucred
	relayCredLen uint32
	relayTimeout [16]byte // struct timeval
	relayForever uint64   // no timeout: an event
)

// What relayEntry sends, compares and says.
var (
	relayDefaultRoot = relay.DefaultRoot + "\x00"
	relayMagic       = relay.Magic
	relayAccepted    = relay.Accepted
	relayDied        = "crier: the container's shim exited before it answered (unexpected EOF)\n"
	relaySlow        = "crier: the container's shim did not answer within a minute\n"
)
