package shim

import (
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// record is what the shim keeps about its container and itself, written
// out once: the handoff to the serving image carries it as it is
// (handoff.go), and the state file is a view of it with the phase and the
// container (state). The loop goroutine owns it.
type record struct {
	Root    string
	ID      string
	Bundle  string // absolute
	LogPath string
	// Buffer says which event types are replayed to new subscribers;
	// nil keeps every type.
	Buffer    map[string]bool
	CreatedAt time.Time
	ShimStart uint64 // the shim's start time, to tell it from a reused pid
	Owner     string
	PidStart  uint64 // the init's start time
	// Subreaper: the container has no pid namespace of its own, so the
	// shim collects its orphans' exits.
	Subreaper bool
	// SharedPidNS: the container has no pid namespace of its own (the
	// host's, or one it joined), so its processes outlive the init, and
	// a SIGKILL goes to all of them, as runc's (container.OwnPidNamespace).
	SharedPidNS bool
	// Supervised: a supervisor parents the container and reaps it; the
	// shim reads the exit from the pidfd (supervisedExit).
	Supervised bool
	// Adopted: this shim came back after its predecessor died
	// (recover.go); the container is not its child, so it reads the
	// exit from the pidfd, as when Supervised.
	Adopted bool
	Seq     uint64    // the last event's number
	LastAt  time.Time // the last event's time
	History []protocol.Event
}

// state is the state file's content: the record, with the status of phase
// and what a delete needs when the shim is dead (the cgroups, the poststop
// hooks), taken from the config as the shim read it at create. c is nil
// until the container is created.
func (rec *record) state(p phase, c *container.Container, spec *specs.Spec) *State {
	st := &State{
		State: protocol.State{
			OCIVersion:  specs.Version,
			ID:          rec.ID,
			Status:      p.status(),
			Bundle:      rec.Bundle,
			Rootfs:      container.RootfsPath(rec.Bundle, spec),
			Created:     protocol.FormatTime(rec.CreatedAt),
			Annotations: spec.Annotations,
			Owner:       rec.Owner,
		},
		ShimPid:     os.Getpid(),
		ShimStart:   rec.ShimStart,
		Supervised:  rec.Supervised,
		Log:         rec.LogPath,
		EventBuffer: FormatBuffer(rec.Buffer),
	}
	if h := spec.Hooks; h != nil {
		st.Poststop = h.Poststop
	}
	if c != nil {
		st.Cgroup = c.Cgroup
		if st.Status != protocol.StatusStopped {
			st.Pid = c.Pid
			st.PidStart = rec.PidStart
		}
	} else if l := spec.Linux; l != nil {
		st.CgroupsPath = l.CgroupsPath
	}
	return st
}

// FormatBuffer is the --event-buffer value that buffer stands for: "" for
// every type (nil), "none" for none, else the types, comma-separated.
func FormatBuffer(buffer map[string]bool) string {
	if buffer == nil {
		return ""
	}
	var types []string
	for _, t := range protocol.EventTypes() {
		if buffer[t] {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return "none"
	}
	return strings.Join(types, ",")
}

// ParseBuffer is FormatBuffer's inverse, for --event-buffer's value too
// (which the CLI has checked): "" and "all" are every type.
func ParseBuffer(s string) map[string]bool {
	switch s {
	case "", "all":
		return nil
	case "none":
		return map[string]bool{}
	}
	set := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		set[strings.TrimSpace(t)] = true
	}
	return set
}
