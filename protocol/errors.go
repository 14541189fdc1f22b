package protocol

import (
	"errors"
	"fmt"
)

// The kinds of failure crier tells apart, in the shim and in the CLI alike.
// An error of one of these kinds wraps it, so errors.Is finds the kind; a
// shim's reply carries the kind as its code (see codes), never as a prefix
// of the message, and a Client's error for the reply wraps the kind again,
// so errors.Is works across the socket too.
//
// ErrExist and ErrNotExist read as the end of a sentence about the
// container: fmt.Errorf("container %q %w", id, ErrNotExist) says
// `container "c1" does not exist`. The other kinds go through Errorf.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrInvalidState = errors.New("invalid state")
	ErrNotExist     = errors.New("does not exist")
	ErrExist        = errors.New("already exists")
	// ErrOverflow is no longer sent: shims before the catch-up of slow
	// subscribers (docs/protocol.md, section 6) ended them with it.
	ErrOverflow   = errors.New("subscriber overflow")
	ErrPermission = errors.New("permission denied")
	ErrBusy       = errors.New("busy")
	// ErrExecFailed is a start whose last step, the execve of the
	// container's program, failed; the message is the execve's error
	// alone, `exec PATH: REASON`, as runc's init writes it.
	ErrExecFailed = errors.New("exec failed")
)

// Error codes carried in Reply.Code. CodeInternal is every failure of no
// other kind; a client takes a code it does not know for that too.
const (
	CodeBadRequest   = "bad_request"
	CodeInvalidState = "invalid_state"
	CodeNotFound     = "not_found"
	CodeOverflow     = "overflow"
	CodePermission   = "permission_denied"
	CodeBusy         = "busy"
	CodeExecFailed   = "exec_failed"
	CodeInternal     = "internal"
)

// errorCode pairs a kind of error with its code on the wire.
type errorCode struct {
	kind error
	code string
}

// codes is the one table of kinds and wire codes, read both ways: by
// ErrorReply from kind to code and by RemoteError from code to kind. A
// function returning an array, so that nobody can change the table.
// ErrExist has no code: a shim serves one container, which exists before
// the shim listens, so no reply ever says that something already exists.
func codes() [7]errorCode {
	return [...]errorCode{
		{ErrBadRequest, CodeBadRequest},
		{ErrInvalidState, CodeInvalidState},
		{ErrNotExist, CodeNotFound},
		{ErrOverflow, CodeOverflow},
		{ErrPermission, CodePermission},
		{ErrBusy, CodeBusy},
		{ErrExecFailed, CodeExecFailed},
	}
}

// codeOf returns the wire code of err's kind, CodeInternal for none.
func codeOf(err error) string {
	for _, c := range codes() {
		if errors.Is(err, c.kind) {
			return c.code
		}
	}
	return CodeInternal
}

// kindOf returns the kind a wire code stands for, nil for CodeInternal
// and for codes this package does not know.
func kindOf(code string) error {
	for _, c := range codes() {
		if c.code == code {
			return c.kind
		}
	}
	return nil
}

// Errorf formats an error of the given kind (one of the Err variables)
// whose message is the formatted text alone: the kind is for programs,
// which get it from errors.Is or the reply's code, and the message is one
// line for people that says what is wrong without it. format may use %w.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// RemoteError is an error reply from the shim.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the kind the reply's code stands for, if any.
func (e *RemoteError) Unwrap() error { return kindOf(e.Code) }

// Err returns the reply's error, or nil when it is OK.
func (r *Reply) Err() error {
	if r.OK {
		return nil
	}
	return &RemoteError{Code: r.Code, Message: r.Error}
}

// ErrorReply builds the Reply for err: its message, and the code of the
// kind it wraps.
func ErrorReply(err error) Reply {
	return Reply{OK: false, Error: err.Error(), Code: codeOf(err)}
}
