package protocol

import (
	"encoding/json"

	"github.com/crier-runtime/crier/internal/flatjson"
)

// The shim writes its replies and events, and reads requests, without
// encoding/json's reflection, whose per-type caches would stay resident in
// every idle shim (see package flatjson). The output is byte for byte
// json.Marshal's; the tests compare the two.

func (ev *Event) appendJSON(b []byte) []byte {
	o := flatjson.Begin(b)
	o.String("type", ev.Type)
	o.String("id", ev.ID)
	o.String("timestamp", ev.Timestamp)
	o.Uint("seq", ev.Seq)
	if ev.Pid != 0 {
		o.Int("pid", int64(ev.Pid))
	}
	if ev.ExitStatus != nil {
		o.Int("exitStatus", int64(*ev.ExitStatus))
	}
	if ev.ExitUnknown {
		o.Bool("exitUnknown", true)
	}
	if ev.Signal != "" {
		o.String("signal", ev.Signal)
	}
	if ev.OOMKilled {
		o.Bool("oomKilled", true)
	}
	if ev.ExecID != "" {
		o.String("execId", ev.ExecID)
	}
	if ev.Count != 0 {
		o.Uint("count", ev.Count)
	}
	if ev.Limit != "" {
		o.String("limit", ev.Limit)
	}
	if ev.Cgroup != "" {
		o.String("cgroup", ev.Cgroup)
	}
	if ev.From != 0 {
		o.Uint("from", ev.From)
	}
	if ev.To != 0 {
		o.Uint("to", ev.To)
	}
	return o.End()
}

func (r *Reply) appendJSON(b []byte) []byte {
	o := flatjson.Begin(b)
	o.Bool("ok", r.OK)
	if r.Error != "" {
		o.String("error", r.Error)
	}
	if r.Code != "" {
		o.String("code", r.Code)
	}
	if r.Protocol != 0 {
		o.Int("protocol", int64(r.Protocol))
	}
	if r.State != nil {
		o.Key("state")
		o.Append(r.State.appendJSON)
	}
	if r.Pid != 0 {
		o.Int("pid", int64(r.Pid))
	}
	if r.ExitStatus != nil {
		o.Int("exitStatus", int64(*r.ExitStatus))
	}
	if r.Signal != "" {
		o.String("signal", r.Signal)
	}
	return o.End()
}

func (st *State) appendJSON(b []byte) []byte {
	o := flatjson.Begin(b)
	st.WriteMembers(&o)
	return o.End()
}

// AppendIndented appends st as `crier state` prints it: what
// json.MarshalIndent(st, "", "  ") writes, and a newline. The shim prints
// it for a relayed `state` (shim/relay.go), where encoding/json is not
// linked, and the CLI with it, so that the two cannot differ.
func (st *State) AppendIndented(b []byte) []byte {
	b = flatjson.Indent(b, st.appendJSON(nil), "  ")
	return append(b, '\n')
}

// WriteMembers writes st's members to o, as json.Marshal would write them
// in a struct that embeds State; the shim's state file is one.
func (st *State) WriteMembers(o *flatjson.Object) {
	o.String("ociVersion", st.OCIVersion)
	o.String("id", st.ID)
	o.Int("pid", int64(st.Pid))
	o.String("status", string(st.Status))
	o.String("bundle", st.Bundle)
	o.String("rootfs", st.Rootfs)
	o.String("created", st.Created)
	if len(st.Annotations) > 0 {
		o.Key("annotations")
		m := st.Annotations
		o.Append(func(b []byte) []byte { return flatjson.AppendStringMap(b, m) })
	}
	o.String("owner", st.Owner)
	if st.ExitStatus != nil {
		o.Int("exitStatus", int64(*st.ExitStatus))
	}
	if st.ExitUnknown {
		o.Bool("exitUnknown", true)
	}
	if st.Signal != "" {
		o.String("signal", st.Signal)
	}
	if st.OOMKilled {
		o.Bool("oomKilled", true)
	}
	if st.ExitedAt != "" {
		o.String("exitedAt", st.ExitedAt)
	}
}

// appendJSON appends v as json.Marshal would, without reflection for the
// types the shim writes.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case Event:
		return v.appendJSON(b), nil
	case *Event:
		if v != nil {
			return v.appendJSON(b), nil
		}
	case Reply:
		return v.appendJSON(b), nil
	case *Reply:
		if v != nil {
			return v.appendJSON(b), nil
		}
	case State:
		return v.appendJSON(b), nil
	case *State:
		if v != nil {
			return v.appendJSON(b), nil
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// scanRequest decodes the common, simple request line; it reports false
// for anything else, which DecodeRequest leaves to encoding/json. Keys
// match the field names regardless of case, as they do for json.Unmarshal.
func scanRequest(line []byte) (Request, bool) {
	var req Request
	ok := flatjson.Scan(line, func(key []byte, v flatjson.Value) bool {
		switch {
		case foldEqual(key, "op"):
			switch v.Kind {
			case flatjson.String:
				req.Op = v.Str()
			case flatjson.Null:
			default:
				return false
			}
		case foldEqual(key, "history"):
			switch v.Kind {
			case flatjson.True, flatjson.False:
				h := v.Kind == flatjson.True
				req.History = &h
			case flatjson.Null:
				req.History = nil
			default:
				return false
			}
		case foldEqual(key, "signal"):
			switch v.Kind {
			case flatjson.Number:
				n, ok := v.Int()
				if !ok || int64(int(n)) != n {
					return false
				}
				req.Signal = int(n)
			case flatjson.Null:
			default:
				return false
			}
		case foldEqual(key, "all"):
			return scanBool(v, &req.All)
		case foldEqual(key, "force"):
			return scanBool(v, &req.Force)
		case foldEqual(key, "wait"):
			return scanBool(v, &req.Wait)
		case foldEqual(key, "since"):
			switch v.Kind {
			case flatjson.Number:
				n, ok := v.Int()
				if !ok || n < 0 {
					return false
				}
				since := uint64(n)
				req.Since = &since
			case flatjson.Null:
				req.Since = nil
			default:
				return false
			}
		case foldEqual(key, "execid"):
			switch v.Kind {
			case flatjson.String:
				req.ExecID = v.Str()
			case flatjson.Null:
			default:
				return false
			}
		case foldEqual(key, "cgroup"):
			switch v.Kind {
			case flatjson.String:
				req.Cgroup = v.Str()
			case flatjson.Null:
			default:
				return false
			}
		case foldEqual(key, "ignorepaused"):
			return scanBool(v, &req.IgnorePaused)
		case foldEqual(key, "files"):
			switch v.Kind {
			case flatjson.Number:
				n, ok := v.Int()
				if !ok || int64(int(n)) != n {
					return false
				}
				req.Files = int(n)
			case flatjson.Null:
			default:
				return false
			}
		}
		return true
	})
	return req, ok
}

func scanBool(v flatjson.Value, dst *bool) bool {
	switch v.Kind {
	case flatjson.True, flatjson.False:
		*dst = v.Kind == flatjson.True
	case flatjson.Null:
	default:
		return false
	}
	return true
}

// foldEqual reports whether the ASCII key equals the lower-case name,
// ignoring the case of ASCII letters.
func foldEqual(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// decodeRequestJSON is the encoding/json path of DecodeRequest.
func decodeRequestJSON(line []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, Errorf(ErrBadRequest, "malformed request: %v", err)
	}
	return req, nil
}
