package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func boolPtr(b bool) *bool { return &b }

func TestDecodeRequest(t *testing.T) {
	good := []struct {
		line string
		want Request
	}{
		{`{"op":"hello"}`, Request{Op: OpHello}},
		{`{"op":"state"}`, Request{Op: OpState}},
		{`{"op":"start"}`, Request{Op: OpStart}},
		{`{"op":"subscribe"}`, Request{Op: OpSubscribe}},
		{`{"op":"subscribe","history":true}`, Request{Op: OpSubscribe, History: boolPtr(true)}},
		{`{"op":"subscribe","history":false}`, Request{Op: OpSubscribe, History: boolPtr(false)}},
		{`{"op":"subscribe","history":null}`, Request{Op: OpSubscribe}},
		{`{"op":"kill","signal":9}`, Request{Op: OpKill, Signal: 9}},
		{`{"op":"kill","signal":1,"all":true}`, Request{Op: OpKill, Signal: 1, All: true}},
		{`{"op":"kill","signal":64}`, Request{Op: OpKill, Signal: 64}},
		{`{"op":"delete"}`, Request{Op: OpDelete}},
		{`{"op":"delete","force":true}`, Request{Op: OpDelete, Force: true}},
		{`{"op":"pause"}`, Request{Op: OpPause}},
		{`{"op":"resume"}`, Request{Op: OpResume}},
		{`{"op":"exec","files":4,"wait":true,"ignorePaused":true}`, Request{Op: OpExec, Files: 4, Wait: true, IgnorePaused: true}},
		// Unknown fields are ignored, so newer clients can talk to older shims.
		{`{"op":"state","future":{"x":[1,2]}}`, Request{Op: OpState}},
		// Surrounding whitespace, including the CR of a CRLF line ending.
		{" \t{\"op\":\"state\"}\r", Request{Op: OpState}},
	}
	for _, tc := range good {
		t.Run(tc.line, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tc.line))
			if err != nil {
				t.Fatalf("DecodeRequest(%q): %v", tc.line, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeRequest(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}

	bad := []struct {
		line    string
		mention string // a substring of the error message
	}{
		{``, "malformed"},
		{`   `, "malformed"},
		{`garbage`, "malformed"},
		{"\x00\xff\xfe", "malformed"},
		{`{"op":"state"`, "malformed"},
		{`{"op":"state"}{"op":"start"}`, "malformed"},
		{`["state"]`, "malformed"},
		{`"state"`, "malformed"},
		{`{"op":7}`, "malformed"},
		{`{"op":"kill","signal":"KILL"}`, "malformed"},
		{`{"op":"kill","signal":9.5}`, "malformed"},
		{`{"op":"kill","signal":99999999999999999999}`, "malformed"},
		{`{"op":"subscribe","history":"yes"}`, "malformed"},
		{`{"op":"delete","force":1}`, "malformed"},
		{`{"op":"exec","files":1,"ignorePaused":"yes"}`, "malformed"},
		{`{"op":"PAUSE"}`, `unknown op "PAUSE"`},
		{`null`, "no op"},
		{`{}`, "no op"},
		{`{"op":""}`, "no op"},
		{`{"op":"bogus"}`, `unknown op "bogus"`},
		{`{"op":"START"}`, `unknown op "START"`},
		{`{"op":"kill"}`, "invalid signal 0"},
		{`{"op":"kill","signal":0}`, "invalid signal 0"},
		{`{"op":"kill","signal":-9}`, "invalid signal -9"},
		{`{"op":"kill","signal":65}`, "invalid signal 65"},
	}
	for _, tc := range bad {
		t.Run(tc.line, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tc.line))
			if err == nil {
				t.Fatalf("DecodeRequest(%q) = %+v, want an error", tc.line, got)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("DecodeRequest(%q): %v does not wrap ErrBadRequest", tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("DecodeRequest(%q): %q does not mention %q", tc.line, err, tc.mention)
			}
			if !reflect.DeepEqual(got, Request{}) {
				t.Errorf("DecodeRequest(%q) returned %+v with its error, want the zero Request", tc.line, got)
			}
			if r := ErrorReply(err); r.Code != CodeBadRequest || r.OK {
				t.Errorf("ErrorReply(%v) = %+v, want a %s reply", err, r, CodeBadRequest)
			}
		})
	}
}

func TestErrorReplyRoundTrip(t *testing.T) {
	tests := []struct {
		err      error
		code     string
		sentinel error // nil: none of the sentinels
	}{
		{Errorf(ErrInvalidState, "container c1 is running, not created"), CodeInvalidState, ErrInvalidState},
		{fmt.Errorf("container %q %w", "c2", ErrNotExist), CodeNotFound, ErrNotExist},
		{Errorf(ErrBadRequest, "unknown op %q", "x"), CodeBadRequest, ErrBadRequest},
		{Errorf(ErrOverflow, "more than 64 events unread"), CodeOverflow, ErrOverflow},
		{Errorf(ErrPermission, "uid 1000 may not use this container"), CodePermission, ErrPermission},
		{Errorf(ErrBusy, "the shim is at its limit of 1024 connections"), CodeBusy, ErrBusy},
		{ErrInvalidState, CodeInvalidState, ErrInvalidState},
		// Wrapped more than once still finds the kind.
		{fmt.Errorf("start: %w", Errorf(ErrInvalidState, "deep")), CodeInvalidState, ErrInvalidState},
		// Errorf's %w keeps the cause as well as the kind.
		{Errorf(ErrBadRequest, "read: %w", unix.ETIMEDOUT), CodeBadRequest, ErrBadRequest},
		{errors.New("start: exec failed"), CodeInternal, nil},
		{fmt.Errorf("kill: %w", unix.ESRCH), CodeInternal, nil},
		// Not on the wire: ErrExist has no code of its own.
		{fmt.Errorf("container %q %w", "c3", ErrExist), CodeInternal, nil},
	}
	sentinels := []error{ErrInvalidState, ErrNotExist, ErrBadRequest, ErrOverflow, ErrPermission, ErrBusy}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			r := ErrorReply(tc.err)
			if r.OK || r.Code != tc.code || r.Error != tc.err.Error() {
				t.Fatalf("ErrorReply(%v) = %+v, want ok false, code %q, error %q", tc.err, r, tc.code, tc.err.Error())
			}
			// Across the wire and back.
			line, err := Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back Reply
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Fatalf("reply %s decoded to %+v, want %+v", line, back, r)
			}
			got := back.Err()
			if got == nil {
				t.Fatalf("Err() of %s = nil", line)
			}
			var re *RemoteError
			if !errors.As(got, &re) {
				t.Fatalf("Err() = %T, want *RemoteError", got)
			}
			if re.Code != tc.code || re.Message != tc.err.Error() || got.Error() != tc.err.Error() {
				t.Errorf("RemoteError = %+v (%q), want code %q, message %q", re, got, tc.code, tc.err)
			}
			for _, s := range sentinels {
				if want := s == tc.sentinel; errors.Is(got, s) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", got, s, !want, want)
				}
			}
		})
	}
}

func TestReplyErr(t *testing.T) {
	if err := (&Reply{OK: true}).Err(); err != nil {
		t.Errorf("OK reply: Err() = %v", err)
	}
	// A code from a newer shim is a RemoteError that is none of the sentinels.
	err := (&Reply{Error: "nope", Code: "some_future_code"}).Err()
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != "some_future_code" || err.Error() != "nope" {
		t.Errorf("unknown code: Err() = %#v", err)
	}
	for _, s := range []error{ErrInvalidState, ErrNotExist, ErrBadRequest, ErrOverflow, ErrPermission, ErrBusy} {
		if errors.Is(err, s) {
			t.Errorf("unknown code matches %v", s)
		}
	}
}

func TestMarshalOneLine(t *testing.T) {
	status := 0
	for _, v := range []any{
		Request{Op: OpKill, Signal: 9, All: true},
		Reply{OK: false, Error: "line one\nline two", Code: CodeInternal},
		Event{Type: EventStopped, ID: "a\nb", Seq: 3, ExitStatus: &status},
	} {
		line, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(line), "\n") != 1 || line[len(line)-1] != '\n' {
			t.Errorf("Marshal(%+v) = %q, want one line ending in a newline", v, line)
		}
	}
}

func TestEventJSON(t *testing.T) {
	zero, killed := 0, 137
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Type: EventCreated, ID: "c1", Timestamp: "2026-01-02T03:04:05.000000006Z", Seq: 1, Pid: 42},
			`{"type":"created","id":"c1","timestamp":"2026-01-02T03:04:05.000000006Z","seq":1,"pid":42}`},
		// exitStatus 0 is present, not omitted.
		{Event{Type: EventStopped, ID: "c1", Timestamp: "t", Seq: 3, Pid: 42, ExitStatus: &zero},
			`{"type":"stopped","id":"c1","timestamp":"t","seq":3,"pid":42,"exitStatus":0}`},
		{Event{Type: EventStopped, ID: "c1", Timestamp: "t", Seq: 3, Pid: 42, ExitStatus: &killed, Signal: "SIGKILL"},
			`{"type":"stopped","id":"c1","timestamp":"t","seq":3,"pid":42,"exitStatus":137,"signal":"SIGKILL"}`},
		{Event{Type: EventDeleted, ID: "c1", Timestamp: "t", Seq: 4},
			`{"type":"deleted","id":"c1","timestamp":"t","seq":4}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("json.Marshal(%+v)\n got %s\nwant %s", tc.ev, b, tc.want)
		}
	}
}

func TestFormatTime(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -8*3600)
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 100, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 120000000, east),
		time.Date(2026, 12, 31, 23, 59, 59, 500, west),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.Local),
		time.Now(),
	}
	const width = len("2006-01-02T15:04:05.000000000Z")
	for _, tm := range times {
		s := FormatTime(tm)
		if len(s) != width {
			t.Errorf("FormatTime(%v) = %q: %d bytes, want %d", tm, s, len(s), width)
		}
		if !strings.HasSuffix(s, "Z") {
			t.Errorf("FormatTime(%v) = %q, not UTC", tm, s)
		}
		back, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("FormatTime(%v) = %q: not RFC 3339: %v", tm, s, err)
			continue
		}
		if !back.Equal(tm) {
			t.Errorf("FormatTime(%v) = %q, which is %v", tm, s, back)
		}
	}
	if got, want := FormatTime(time.Date(2026, 1, 2, 3, 4, 5, 1000, east)), "2026-01-01T21:34:05.000001000Z"; got != want {
		t.Errorf("FormatTime = %q, want %q", got, want)
	}

	// Fixed width: the strings sort as the times do.
	sorted := append([]time.Time(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Before(sorted[j]) })
	strs := make([]string, len(sorted))
	for i, tm := range sorted {
		strs[i] = FormatTime(tm)
	}
	if !sort.StringsAreSorted(strs) {
		t.Errorf("formatted times do not sort as the times: %q", strs)
	}
}

func TestParseSignal(t *testing.T) {
	good := []struct {
		in   string
		want unix.Signal
	}{
		{"KILL", unix.SIGKILL},
		{"kill", unix.SIGKILL},
		{"sigkill", unix.SIGKILL},
		{"SIGKILL", unix.SIGKILL},
		{"SigKill", unix.SIGKILL},
		{"9", unix.SIGKILL},
		{"TERM", unix.SIGTERM},
		{"15", unix.SIGTERM},
		{"hup", unix.SIGHUP},
		{"1", unix.SIGHUP},
		{"SIGUSR1", unix.SIGUSR1},
		{"usr2", unix.SIGUSR2},
		{"WINCH", unix.SIGWINCH},
		{"SIGRTMIN+2", unix.Signal(36)},
		{"RTMIN", unix.Signal(34)},
		{"sigrtmax", unix.Signal(64)},
		{"rtmin+0", unix.Signal(34)},
		{"sigrtmin+30", unix.Signal(64)},
		{"SIGRTMAX-0", unix.Signal(64)},
		{"RTMAX-30", unix.Signal(34)},
		{"34", unix.Signal(34)},
		{"64", unix.Signal(64)},
	}
	for _, tc := range good {
		got, err := ParseSignal(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []string{
		"", "SIG", "0", "-9", "65", "1000", "99999999999999999999999",
		"FOO", "SIGFOO", "SIGSIGKILL", "KILL9", " 9", "9 ", " KILL",
		"SIGRTMIN+31", "SIGRTMIN+-1", "SIGRTMIN+x", "SIGRTMAX-31", "SIGRTMAX+1",
	}
	for _, in := range bad {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %d, want an error", in, got)
		}
	}
}

func TestSignalName(t *testing.T) {
	tests := []struct {
		sig  unix.Signal
		want string
	}{
		{unix.SIGHUP, "SIGHUP"},
		{unix.SIGINT, "SIGINT"},
		{unix.SIGKILL, "SIGKILL"},
		{unix.SIGSEGV, "SIGSEGV"},
		{unix.SIGTERM, "SIGTERM"},
		{unix.SIGSYS, "SIGSYS"},
		{unix.Signal(34), "SIGRTMIN+0"},
		{unix.Signal(36), "SIGRTMIN+2"},
		{unix.Signal(64), "SIGRTMIN+30"},
		{unix.Signal(65), "signal 65"},
	}
	for _, tc := range tests {
		if got := SignalName(tc.sig); got != tc.want {
			t.Errorf("SignalName(%d) = %q, want %q", tc.sig, got, tc.want)
		}
	}
	// Every named signal parses back to itself.
	for sig := unix.Signal(1); sig <= 64; sig++ {
		name := SignalName(sig)
		if strings.HasPrefix(name, "signal ") {
			continue // 32 and 33, which have no name
		}
		if got, err := ParseSignal(name); err != nil || got != sig {
			t.Errorf("ParseSignal(SignalName(%d) = %q) = %d, %v", sig, name, got, err)
		}
	}
}

// TestCodesTable: every kind in the table goes to its code and back, and
// Errorf's message is the text alone, with the kind only for errors.Is.
func TestCodesTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range codes() {
		if seen[c.code] || c.code == CodeInternal {
			t.Errorf("code %q twice in the table, or internal", c.code)
		}
		seen[c.code] = true
		if got := kindOf(c.code); got != c.kind {
			t.Errorf("kindOf(%q) = %v, want %v", c.code, got, c.kind)
		}
		err := Errorf(c.kind, "container %s: %w", "c1", unix.EPERM)
		if got := codeOf(err); got != c.code {
			t.Errorf("codeOf(Errorf(%v)) = %q, want %q", c.kind, got, c.code)
		}
		if err.Error() != "container c1: operation not permitted" || !errors.Is(err, c.kind) || !errors.Is(err, unix.EPERM) {
			t.Errorf("Errorf(%v) = %q, want the text alone, wrapping the kind and the cause", c.kind, err)
		}
	}
	if kindOf(CodeInternal) != nil || kindOf("some_future_code") != nil {
		t.Error("internal or an unknown code stands for a kind")
	}
}
