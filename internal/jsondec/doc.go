// Package jsondec decodes JSON into Go values as encoding/json.Unmarshal
// does, without building encoding/json's per-type caches.
//
// encoding/json, the first time it decodes into a struct type, works out
// the type's fields and builds an encoder for each field's type, and so for
// every type the struct can reach, whether the document has those fields or
// not. For a runtime-spec config that is most of the cost of a decode in a
// process that decodes one config and exits: about 1.6 ms of CPU in
// create's fork and 1 ms in the init stage on the machines of issue 14, on
// create's path. This package looks only at the struct types the document
// actually reaches, and keeps what it learnt for the one call.
//
// It decodes exactly what it can decode exactly as encoding/json would, and
// leaves everything else to encoding/json (Unmarshal falls back to it with
// a fresh value): a syntax error (so the error is encoding/json's), a key
// that matches a field only case-insensitively, a key given twice in one
// object, a value of the wrong type for its field, a number out of its
// field's range, a string with invalid UTF-8 or an escaped surrogate,
// interfaces, arrays of fixed size, []byte from a string, map keys that are
// not strings, fields with the ",string" option, promoted fields reached
// through an embedded pointer, and types with an UnmarshalJSON or
// UnmarshalText method other than json.RawMessage's. What the fast path
// accepts, it accepts with encoding/json's result (FuzzAgreesWithJSON).
package jsondec
