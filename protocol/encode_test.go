package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The hand-written encoders must write exactly what json.Marshal writes.

func TestMarshalMatchesJSON(t *testing.T) {
	zero, killed := 0, 137
	state := &State{OCIVersion: "1.3.0", ID: "c<1>", Pid: 42, Status: StatusRunning, Bundle: "/b", Rootfs: "/b/rootfs",
		Created: "2026-01-02T03:04:05.000000006Z", Annotations: map[string]string{"z": "1", "a": "\u2028&"}, Owner: "root"}
	values := []any{
		Event{},
		Event{Type: EventCreated, ID: "c1", Timestamp: "2026-01-02T03:04:05.000000006Z", Seq: 1, Pid: 42},
		Event{Type: EventStopped, ID: "c1", Timestamp: "t", Seq: 3, Pid: 42, ExitStatus: &zero},
		&Event{Type: EventStopped, ID: "c\"1", Timestamp: "t", Seq: 1<<64 - 1, Pid: -1, ExitStatus: &killed, Signal: "SIGKILL"},
		Event{Type: EventStopped, ID: "c1", Timestamp: "t", Seq: 3, Pid: 42, ExitUnknown: true},
		Event{Type: EventStopped, ID: "c1", Timestamp: "t", Seq: 4, Pid: 42, ExitStatus: &killed, Signal: "SIGKILL", OOMKilled: true},
		Event{Type: EventOOM, ID: "c1", Timestamp: "t", Seq: 3, Count: 2, Limit: "ancestor", Cgroup: "/sys/fs/cgroup/kubepods/pod\"1"},
		Event{Type: EventExecStopped, ID: "c1", Timestamp: "t", Seq: 5, Pid: 7, ExitStatus: &killed, Signal: "SIGKILL", OOMKilled: true, ExecID: "e1"},
		State{ID: "c1", Status: StatusStopped, ExitStatus: &killed, Signal: "SIGKILL", OOMKilled: true, ExitedAt: "t"},
		Reply{},
		Reply{OK: true, Protocol: Version},
		Reply{OK: false, Error: "line one\nline two <b>", Code: CodeInternal},
		&Reply{OK: true, State: state},
		Reply{OK: true, State: &State{}},
		Reply{OK: true, State: &State{Annotations: map[string]string{}}},
		*state,
		state,
		// Not written by hand: encoding/json still does them.
		Request{Op: OpKill, Signal: 9, All: true},
		(*Event)(nil),
		(*Reply)(nil),
		(*State)(nil),
		map[string]int{"x": 1},
	}
	for _, v := range values {
		checkMarshal(t, v)
	}
}

func checkMarshal(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%#v): %v", v, err)
	}
	if string(got) != string(want)+"\n" {
		t.Errorf("Marshal(%#v)\n got %s want %s", v, got, want)
	}
}

func FuzzMarshal(f *testing.F) {
	f.Add("created", "c1", "2026-01-02T03:04:05.000000006Z", uint64(1), 42, true, 0, "", "", "a", "b")
	f.Add("stopped", "<&>", "\u2028", uint64(7), -3, true, 137, "SIGKILL", "error\n", "\xff", "")
	f.Fuzz(func(t *testing.T, typ, id, ts string, seq uint64, pid int, hasExit bool, exit int, sig, msg, k, v string) {
		ev := Event{Type: typ, ID: id, Timestamp: ts, Seq: seq, Pid: pid, Signal: sig}
		if hasExit {
			ev.ExitStatus = &exit
		}
		checkMarshal(t, ev)
		checkMarshal(t, Reply{OK: hasExit, Error: msg, Code: sig, Protocol: pid})
		st := &State{OCIVersion: typ, ID: id, Pid: pid, Status: Status(sig), Bundle: msg, Rootfs: k, Created: ts, Owner: v}
		if hasExit {
			st.Annotations = map[string]string{k: v, v: k, id: msg}
		}
		checkMarshal(t, Reply{OK: true, State: st})
	})
}

// FuzzDecodeRequestMatchesJSON checks that DecodeRequest, which reads the
// simple lines itself, decides every line exactly as it does with
// encoding/json alone: the same request, or the same error.
func FuzzDecodeRequestMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"op":"kill","signal":9,"all":true}`,
		`{"op":"subscribe","history":false,"history":null}`,
		`{"OP":"Kill","SIGNAL":15,"All":false,"fOrCe":true}`,
		`{"op":"kill","signal":-0}`,
		`{"op":"kill","signal":1e1}`,
		`{"op":"kill","signal":9.0}`,
		`{"op":"kill","signal":9223372036854775808}`,
		`{"op":"state","x":[1,{"y":null}],"z":-1.5}`,
		`{"op":"st\u0061te"}`,
		`{"op":null,"op":"hello"}`,
		`{"op":"hello","all":1}`,
		" {\"op\":\"hello\"}\r",
		`{"op":"hello"} x`,
		"{\"\xc5\xbfignal\":9,\"op\":\"kill\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, gotErr := DecodeRequest(line)
		want, wantErr := decodeRequestJSON(line)
		if wantErr == nil {
			want, wantErr = checkRequest(want)
		}
		if !reflect.DeepEqual(got, want) || errString(gotErr) != errString(wantErr) {
			t.Fatalf("DecodeRequest(%q) = %+v, %v; with encoding/json %+v, %v", line, got, gotErr, want, wantErr)
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// AppendIndented is `crier state`'s output: json.MarshalIndent's, and a
// newline.
func TestAppendIndentedMatchesMarshalIndent(t *testing.T) {
	killed := 137
	for _, st := range []*State{
		{},
		{OCIVersion: "1.3.0", ID: "c1", Pid: 42, Status: StatusRunning, Bundle: "/b", Rootfs: "/b/rootfs", Created: "t", Owner: "root"},
		{ID: "c<1>", Status: StatusStopped, Bundle: `/b "q" {x}:[y],`, Annotations: map[string]string{"z": "1", "a": "\u2028&", "e": ""},
			ExitStatus: &killed, Signal: "SIGKILL", OOMKilled: true, ExitUnknown: true, ExitedAt: "t"},
		{ID: "c1", Annotations: map[string]string{}},
	} {
		want, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendIndented(nil); string(got) != string(want)+"\n" {
			t.Errorf("AppendIndented(%+v)\n got %s\nwant %s", st, got, want)
		}
	}
}
