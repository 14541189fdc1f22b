// Package flatjson writes and reads the few small, flat JSON objects that
// crier's serving shim exchanges, without reflection.
//
// encoding/json caches an encoder and a field table for every type it has
// met, for the life of the process; a shim lives as long as its container,
// and those caches alone would be a sizeable part of its memory. What this
// package writes is byte for byte what encoding/json.Marshal writes for the
// same values (its tests check that), so readers cannot tell the
// difference. Reading covers only the simple case: Scan reports anything
// else as not handled, and the caller then falls back to encoding/json,
// which gives the exact result, or the exact error, for the rest.
package flatjson
