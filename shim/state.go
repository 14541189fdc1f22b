package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/internal/flatjson"
	"github.com/crier-runtime/crier/protocol"
)

// StateFile is the name of the state file in a container's state directory.
const StateFile = "state.json"

// State is what the shim persists about its container.
type State struct {
	protocol.State
	// PidStart is the init process's start time, so that a reader can tell
	// it from a later process with the same pid.
	PidStart  uint64         `json:"pidStart,omitempty"`
	ShimPid   int            `json:"shimPid"`
	ShimStart uint64         `json:"shimStart"`
	Cgroup    *cgroup.Cgroup `json:"cgroup,omitempty"`
}

// ReadState reads the state file in dir.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return &st, nil
}

// writeState replaces the state file atomically: readers see the old or the
// new state, never a torn one.
func writeState(dir string, st *State) error {
	return writeFileAtomic(filepath.Join(dir, StateFile), st.appendJSON(nil), 0o600)
}

// appendJSON appends st as json.Marshal would, without encoding/json: its
// per-type caches would stay resident in every idle shim.
func (st *State) appendJSON(b []byte) []byte {
	o := flatjson.Begin(b)
	st.State.WriteMembers(&o)
	if st.PidStart != 0 {
		o.Uint("pidStart", st.PidStart)
	}
	o.Int("shimPid", int64(st.ShimPid))
	o.Uint("shimStart", st.ShimStart)
	if cg := st.Cgroup; cg != nil {
		o.Key("cgroup")
		o.Append(func(b []byte) []byte {
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
		})
	}
	return o.End()
}

// writeFileAtomic replaces path with b through a temporary file and a
// rename. It is on the path of every event, so it makes the system calls
// itself: os.WriteFile and os.Rename add a poller registration attempt and
// an lstat each.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return &os.PathError{Op: "open", Path: tmp, Err: err}
	}
	for len(b) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, b)
		if n > 0 {
			b = b[n:]
		}
		if err == unix.EINTR {
			err = nil
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Rename(tmp, path)
	}
	if err != nil {
		unix.Unlink(tmp)
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// Dir returns the state directory of container id under root.
func Dir(root, id string) string { return filepath.Join(root, id) }

// SocketPath returns the shim socket of container id under root.
func SocketPath(root, id string) string {
	return filepath.Join(root, id, protocol.SocketName)
}

// removeStateDir removes a state directory: the two files the shim keeps
// there and the directory, in three system calls, or, if anything else is
// in it, whatever it holds.
func removeStateDir(dir string) error {
	unix.Unlink(filepath.Join(dir, StateFile))
	unix.Unlink(filepath.Join(dir, protocol.SocketName))
	if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
		return nil
	}
	return os.RemoveAll(dir)
}
