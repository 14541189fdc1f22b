// Package testfill builds values with every field set, for tests that
// compare hand-written JSON encoding with encoding/json: a field added
// later that the hand-written code misses then shows.
package testfill
