package prefork

import (
	"testing"

	"github.com/crier-runtime/crier/internal/relay"
)

// relay_linux_amd64.s has these sizes as constants of its own.
func TestRelayAssemblyLimits(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"relayPath (PATH_END+2)", len(relayPath), 4096},
		{"MAX_ARGS", relay.MaxArgs, 32768},
		{"MAX_CWD", relay.MaxCwd, 4096},
		{"MAX_PAYLOAD", relay.MaxPayload, 65536},
		{"relayFrame", len(relayFrame), 65536},
		{"the header", relay.HeaderSize, 16},
		{"the magic", len(relay.Magic), 8},
		{"the accepted reply", len(relay.Accepted), 8},
		{"the declined reply", len(relay.Declined), 8},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, the assembly's %d", c.name, c.got, c.want)
		}
	}
}
