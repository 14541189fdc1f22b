package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readLines reads lines from in until an error, and returns them with it.
func readLines(in io.Reader) ([]string, error) {
	d := NewDecoder(in)
	var lines []string
	for {
		line, err := d.Line()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

func TestDecoderLines(t *testing.T) {
	long := strings.Repeat("x", MaxLine-1) // with its newline, exactly MaxLine
	tests := []struct {
		name  string
		in    string
		want  []string
		final error
	}{
		{"empty", "", nil, io.EOF},
		{"one", "{\"op\":\"state\"}\n", []string{`{"op":"state"}`}, io.EOF},
		{"several", "a\nb\n\nc\n", []string{"a", "b", "", "c"}, io.EOF},
		{"crlf kept", "a\r\n", []string{"a\r"}, io.EOF},
		{"binary", "\x00\xff\n\x01\n", []string{"\x00\xff", "\x01"}, io.EOF},
		{"longest", long + "\n" + "next\n", []string{long, "next"}, io.EOF},
		{"over long", long + "x\nnext\n", nil, ErrLineTooLong},
		{"over long without newline", strings.Repeat("y", 3*MaxLine), nil, ErrLineTooLong},
		{"line after lines too long", "ok\n" + strings.Repeat("z", MaxLine+1) + "\n", []string{"ok"}, ErrLineTooLong},
		{"half line", "{\"op\":\"st", nil, io.ErrUnexpectedEOF},
		{"half line after lines", "a\nb\n{\"op\"", []string{"a", "b"}, io.ErrUnexpectedEOF},
		{"longest half line", long + "x", nil, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		readers := map[string]func(io.Reader) io.Reader{
			"whole":   func(r io.Reader) io.Reader { return r },
			"bytes":   iotest.OneByteReader,
			"halves":  iotest.HalfReader,
			"dataerr": iotest.DataErrReader,
		}
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				lines, err := readLines(wrap(strings.NewReader(tc.in)))
				if !reflect.DeepEqual(lines, tc.want) {
					t.Errorf("lines = %.80q, want %.80q", lines, tc.want)
				}
				if !errors.Is(err, tc.final) {
					t.Errorf("final error = %v, want %v", err, tc.final)
				}
			})
		}
	}
}

func TestDecoderLineIsCopied(t *testing.T) {
	d := NewDecoder(strings.NewReader("first\nsecond\n"))
	a, err := d.Line()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Line(); err != nil {
		t.Fatal(err)
	}
	if string(a) != "first" {
		t.Errorf("first line changed to %q by reading the next", a)
	}
}

func TestDecoderReadError(t *testing.T) {
	boom := errors.New("boom")
	d := NewDecoder(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)))
	if line, err := d.Line(); err != nil || string(line) != "a" {
		t.Fatalf("Line() = %q, %v", line, err)
	}
	if _, err := d.Line(); !errors.Is(err, boom) {
		t.Errorf("Line() error = %v, want %v", err, boom)
	}
}

func TestDecoderDecode(t *testing.T) {
	d := NewDecoder(strings.NewReader("{\"ok\":true,\"protocol\":1}\nnot json\n{\"ok\":false,\"error\":\"x\",\"code\":\"overflow\"}\n"))
	var r Reply
	if err := d.Decode(&r); err != nil || !r.OK || r.Protocol != 1 {
		t.Fatalf("Decode = %+v, %v", r, err)
	}
	if err := d.Decode(&r); err == nil || !strings.Contains(err.Error(), "malformed line") {
		t.Errorf("Decode(not json) = %v, want a malformed line error", err)
	}
	r = Reply{}
	if err := d.Decode(&r); err != nil || !errors.Is(r.Err(), ErrOverflow) {
		t.Errorf("Decode = %+v, %v", r, err)
	}
	if err := d.Decode(&r); err != io.EOF {
		t.Errorf("Decode at the end = %v, want io.EOF", err)
	}
}

// FuzzDecodeRequest checks that no input makes DecodeRequest (or the Decoder
// in front of it) panic, that everything it rejects is a bad request, and
// that what it accepts survives a round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"hello"}`,
		`{"op":"state"}`,
		`{"op":"start"}`,
		`{"op":"subscribe","history":false}`,
		`{"op":"subscribe","history":true}`,
		`{"op":"kill","signal":9,"all":true}`,
		`{"op":"kill","signal":65}`,
		`{"op":"delete","force":true}`,
		`{"op":"state","signal":-3,"all":true,"force":false,"x":null}`,
		`{"OP":"Kill","SIGNAL":15}`,
		`{"op":"bogus"}`,
		`{}`,
		`null`,
		`[]`,
		"{\"op\":\"state\"}\n{\"op\":\"start\"}\n",
		"{\"op\":\"st",
		"\x00\xff garbage",
		`{"op":"kill","signal":1e2}`,
		`{"op":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRequestLine(t, data)
		d := NewDecoder(bytes.NewReader(data))
		for {
			line, err := d.Line()
			if err != nil {
				break
			}
			if len(line) >= MaxLine {
				t.Fatalf("Decoder returned a %d-byte line", len(line))
			}
			checkRequestLine(t, line)
		}
	})
}

func checkRequestLine(t *testing.T, line []byte) {
	req, err := DecodeRequest(line)
	if err != nil {
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("DecodeRequest(%q): %v is not a bad request", line, err)
		}
		if ErrorReply(err).Code != CodeBadRequest {
			t.Fatalf("ErrorReply(%v) has code %q", err, ErrorReply(err).Code)
		}
		return
	}
	switch req.Op {
	case OpHello, OpSubscribe, OpStart, OpState, OpDelete:
	case OpKill:
		if req.Signal < 1 || req.Signal > 64 {
			t.Fatalf("DecodeRequest(%q) accepted kill with signal %d", line, req.Signal)
		}
	default:
		t.Fatalf("DecodeRequest(%q) accepted op %q", line, req.Op)
	}
	out, err := Marshal(req)
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", req, err)
	}
	if bytes.IndexByte(out, '\n') != len(out)-1 {
		t.Fatalf("Marshal(%+v) = %q, not one line", req, out)
	}
	again, err := DecodeRequest(out[:len(out)-1])
	if err != nil {
		t.Fatalf("DecodeRequest(%q), re-marshalled from %q: %v", out, line, err)
	}
	if !reflect.DeepEqual(again, req) {
		t.Fatalf("%q decoded to %+v, re-marshalled to %q, decoded to %+v", line, req, out, again)
	}
}

// stallReader gives data in reads of at most step bytes, and then, like a
// client that sent a line and waits for its answer, sends on asked and
// blocks until released (then EOF).
type stallReader struct {
	data     []byte
	step     int
	asked    chan struct{}
	released chan struct{}
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.asked <- struct{}{}
		<-r.released
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestDecoderTooLongWithoutWaiting: a line that passes MaxLine, unfinished,
// is refused at the read that took it past, without asking for more; its
// sender may be waiting for that answer. (The decoder waited for a full
// buffer or a newline first: a line less than its 512 bytes over MaxLine
// was answered only at the shim's 30 s idle limit.)
func TestDecoderTooLongWithoutWaiting(t *testing.T) {
	for _, over := range []int{1, 54, 300, 511, 512, 513} {
		for _, step := range []int{512, 100, 7} {
			r := &stallReader{
				data:     []byte("{" + strings.Repeat("a", MaxLine+over-1)),
				step:     step,
				asked:    make(chan struct{}, 1),
				released: make(chan struct{}),
			}
			d := NewDecoder(r)
			done := make(chan error, 1)
			go func() {
				_, err := d.Line()
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrLineTooLong) {
					t.Errorf("%d bytes over MaxLine, reads of %d: %v, want %v", over, step, err, ErrLineTooLong)
				}
			case <-r.asked:
				t.Errorf("%d bytes over MaxLine, reads of %d: the decoder waits for more input", over, step)
				close(r.released)
				<-done
			}
		}
	}
}
