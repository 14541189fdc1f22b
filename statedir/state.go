package statedir

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/internal/flatjson"
	"github.com/crier-runtime/crier/protocol"
)

// State is what the shim persists about its container: its OCI state, and
// what a delete needs once the shim is dead. A delete uses nothing else:
// it never reads the bundle again, whose config may have changed since
// create, or never have been the one created from.
type State struct {
	protocol.State
	// PidStart is the init process's start time, so that a reader can tell
	// it from a later process with the same pid.
	PidStart  uint64 `json:"pidStart,omitempty"`
	ShimPid   int    `json:"shimPid"`
	ShimStart uint64 `json:"shimStart"`
	// Supervised: a supervisor that reaps parents the container, not the
	// shim (docs/supervisors.md).
	Supervised bool           `json:"supervised,omitempty"`
	Cgroup     *cgroup.Cgroup `json:"cgroup,omitempty"`
	// CgroupsPath is the config's linux.cgroupsPath, recorded until
	// Cgroup is: a shim that dies mid-create may have made the cgroups
	// already.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	// Poststop are the config's poststop hooks, for a delete without the
	// shim.
	Poststop []specs.Hook `json:"poststop,omitempty"`
	// Log and EventBuffer are create's --log and --event-buffer ("" for
	// every type, "none", or a comma-separated list), for a shim that
	// comes back after this one died.
	Log         string `json:"log,omitempty"`
	EventBuffer string `json:"eventBuffer,omitempty"`
}

// WriteState replaces the state file atomically (WriteFileAt).
func (d *Dir) WriteState(st *State) error {
	if err := d.open(); err != nil {
		return err
	}
	return WriteFileAt(d.fd, d.Path(), StateFile, st.AppendJSON(nil), 0o600)
}

// AppendJSON appends st as json.Marshal would, without encoding/json: its
// per-type caches would stay resident in every idle shim.
func (st *State) AppendJSON(b []byte) []byte {
	o := flatjson.Begin(b)
	st.State.WriteMembers(&o)
	if st.PidStart != 0 {
		o.Uint("pidStart", st.PidStart)
	}
	o.Int("shimPid", int64(st.ShimPid))
	o.Uint("shimStart", st.ShimStart)
	if st.Supervised {
		o.Bool("supervised", true)
	}
	if cg := st.Cgroup; cg != nil {
		o.Key("cgroup")
		o.Append(func(b []byte) []byte { return appendCgroup(b, cg) })
	}
	if st.CgroupsPath != "" {
		o.String("cgroupsPath", st.CgroupsPath)
	}
	if len(st.Poststop) > 0 {
		o.Key("poststop")
		o.Append(func(b []byte) []byte { return appendHooks(b, st.Poststop) })
	}
	if st.Log != "" {
		o.String("log", st.Log)
	}
	if st.EventBuffer != "" {
		o.String("eventBuffer", st.EventBuffer)
	}
	return o.End()
}

func appendCgroup(b []byte, cg *cgroup.Cgroup) []byte {
	c := flatjson.Begin(b)
	c.Key("paths")
	c.Append(func(b []byte) []byte { return flatjson.AppendStringMap(b, cg.Paths) })
	if len(cg.Created) > 0 {
		c.Key("created")
		c.Append(func(b []byte) []byte { return flatjson.AppendStrings(b, cg.Created) })
	}
	if cg.SharedParent {
		c.Bool("sharedParent", true)
	}
	return c.End()
}

func appendHooks(b []byte, hooks []specs.Hook) []byte {
	b = append(b, '[')
	for i, h := range hooks {
		if i > 0 {
			b = append(b, ',')
		}
		o := flatjson.Begin(b)
		o.String("path", h.Path)
		if len(h.Args) > 0 {
			o.Key("args")
			o.Append(func(b []byte) []byte { return flatjson.AppendStrings(b, h.Args) })
		}
		if len(h.Env) > 0 {
			o.Key("env")
			o.Append(func(b []byte) []byte { return flatjson.AppendStrings(b, h.Env) })
		}
		if h.Timeout != nil {
			o.Int("timeout", int64(*h.Timeout))
		}
		b = o.End()
	}
	return append(b, ']')
}
