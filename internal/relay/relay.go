package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/verb"
	"github.com/crier-runtime/crier/protocol"
)

// The request's header: Magic, then the lengths of the arguments' bytes
// and of the working directory's, each a little-endian uint32. The
// arguments come first (each NUL-terminated), then the directory (not),
// then a newline: a shim of an older crier, which reads JSON lines, then
// answers at once with an error, which the entry takes as a decline.
const (
	Magic      = "\x00crelay\x01" // the NUL tells it from a JSON request
	HeaderSize = len(Magic) + 8
	// MaxArgs and MaxCwd bound what the shim reads; the entry sends no
	// more (it falls back to the CLI instead).
	MaxArgs = 32 << 10
	MaxCwd  = 4096
)

// The reply's first eight bytes.
const (
	Declined = "CRIER\x00\x01F"
	Accepted = "CRIER\x00\x01A"
)

// Frame kinds, each frame a kind byte, a 24-bit little-endian length and
// that many bytes.
const (
	Stdout     = 'O'
	Stderr     = 'E'
	Exit       = 'X'
	MaxPayload = 64 << 10
)

// DefaultRoot is the state root without --root, the CLI's default.
const DefaultRoot = "/run/crier"

// ParseHeader returns the lengths a request's header announces.
func ParseHeader(h []byte) (args, cwd int, err error) {
	if len(h) != HeaderSize || string(h[:len(Magic)]) != Magic {
		return 0, 0, errors.New("relay: not a relay header")
	}
	args = int(binary.LittleEndian.Uint32(h[len(Magic):]))
	cwd = int(binary.LittleEndian.Uint32(h[len(Magic)+4:]))
	if args > MaxArgs || cwd > MaxCwd {
		return 0, 0, fmt.Errorf("relay: %d bytes of arguments and %d of directory, over the limits", args, cwd)
	}
	return args, cwd, nil
}

// SplitArgs splits the arguments' bytes at their NULs.
func SplitArgs(b []byte) ([]string, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, errors.New("relay: arguments not NUL-terminated")
	}
	return strings.Split(string(b[:len(b)-1]), "\x00"), nil
}

// AppendFrame appends one frame; payloads over MaxPayload go as several.
func AppendFrame(b []byte, kind byte, payload []byte) []byte {
	for {
		n := min(len(payload), MaxPayload)
		b = append(b, kind, byte(n), byte(n>>8), byte(n>>16))
		b = append(b, payload[:n]...)
		payload = payload[n:]
		if len(payload) == 0 {
			return b
		}
	}
}

// Command is a command line the shim can run in the CLI's place.
type Command struct {
	Verb      string // state, start, kill, delete, pause, resume, event
	Root      string // absolute and clean
	ID        string
	LogPath   string // absolute, or empty
	LogFormat string // text or json
	// Force is delete's --force.
	Force bool
	// Signal and All are kill's.
	Signal string
	All    bool
	// Events (comma-separated, in the order given), Monitor and
	// NoHistory are event's.
	Events    string
	Monitor   bool
	NoHistory bool
	Timeout   time.Duration
}

// Parse reads args (the arguments after argv[0]) as the CLI's cobra
// command tree would, for the command lines the relay takes, with cwd for
// relative paths; it returns false for anything else, which the CLI then
// runs itself. cmd/runtime's tests hold it to cobra's reading.
func Parse(args []string, cwd string) (*Command, bool) {
	c := &Command{Root: DefaultRoot, LogFormat: "text"}
	var pos []string
	signalSet, eventFlags := false, false
	var events []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "" || a[0] != '-' || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		if hasValue && !strings.HasPrefix(name, "--") {
			return nil, false // -s=KILL: pflag's reading of it is its own
		}
		if local(name) && len(pos) == 0 {
			// Before the verb, cobra reads a flag the root does not
			// know as taking the next word, the verb.
			return nil, false
		}
		takes := func(dst *string) bool {
			if !hasValue {
				if i+1 >= len(args) {
					return false
				}
				i++
				value = args[i]
			}
			*dst = value
			return true
		}
		switch name {
		case "--root":
			if !takes(&c.Root) {
				return nil, false
			}
		case "--log":
			if !takes(&c.LogPath) {
				return nil, false
			}
		case "--log-format":
			if !takes(&c.LogFormat) {
				return nil, false
			}
		case "--signal", "-s":
			if !takes(&c.Signal) {
				return nil, false
			}
			signalSet = true
		case "--force", "-f":
			if hasValue {
				return nil, false
			}
			c.Force = true
		case "--all", "-a":
			if hasValue {
				return nil, false
			}
			c.All = true
		case "--event", "-e":
			var t string
			if !takes(&t) || !protocol.KnownEventType(t) {
				return nil, false
			}
			events = append(events, t)
		case "--monitor", "-m":
			if hasValue {
				return nil, false
			}
			c.Monitor, eventFlags = true, true
		case "--timeout":
			var v string
			if !takes(&v) {
				return nil, false
			}
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, false
			}
			c.Timeout, eventFlags = d, true
		case "--no-history":
			if hasValue {
				return nil, false
			}
			c.NoHistory, eventFlags = true, true
		default:
			return nil, false
		}
	}
	if len(pos) < 2 {
		return nil, false
	}
	c.Verb, c.ID = pos[0], pos[1]
	c.Events = strings.Join(events, ",")
	extra := pos[2:]
	if c.Verb != "event" && (eventFlags || len(events) > 0) {
		return nil, false
	}
	switch c.Verb {
	case "state", "start", "pause", "resume":
		if len(extra) != 0 || signalSet || c.Force || c.All {
			return nil, false
		}
	case "delete":
		if len(extra) != 0 || signalSet || c.All {
			return nil, false
		}
	case "event":
		// --all, --since and --historic are the CLI's.
		if len(extra) != 0 || signalSet || c.Force || c.All {
			return nil, false
		}
	case "kill":
		if c.Force || len(extra) > 1 || (len(extra) == 1 && signalSet) {
			return nil, false
		}
		switch {
		case len(extra) == 1:
			c.Signal = extra[0]
		case !signalSet:
			c.Signal = "TERM"
		}
		if _, err := verb.ParseKillSignal(c.Signal); err != nil {
			return nil, false
		}
	default:
		return nil, false
	}
	if container.ValidateID(c.ID) != nil || c.Root == "" || (c.LogFormat != "text" && c.LogFormat != "json") {
		return nil, false
	}
	if !filepath.IsAbs(cwd) {
		return nil, false
	}
	c.Root = abs(cwd, c.Root)
	if c.LogPath != "" {
		c.LogPath = abs(cwd, c.LogPath)
	}
	return c, true
}

// local reports whether name is one of the verbs' own flags, which cobra
// knows only after the verb.
func local(name string) bool {
	switch name {
	case "--signal", "-s", "--force", "-f", "--all", "-a", "--event", "-e", "--monitor", "-m", "--no-history", "--timeout":
		return true
	}
	return false
}

func abs(cwd, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(cwd, p)
}
