package shim

import (
	"slices"

	"github.com/crier-runtime/crier/protocol"
)

// The events a shim keeps for late subscribers. A container has at most
// one of each lifecycle event, and only the last pause and resume are
// kept, but it has as many exec events as it runs execs
// (a health check every few seconds, for days): those are kept only up to
// maxRepeated, the oldest dropped first, so that an idle shim's memory
// stays bounded. The lifecycle events are always kept: `crier event
// --event created` must find created however many execs came after it. A
// subscriber tells a dropped event by the gap in seq.
const maxRepeated = 64

// appendHistory appends ev to h, dropping the oldest repeated event when
// there are more than maxRepeated.
func appendHistory(h []protocol.Event, ev protocol.Event) []protocol.Event {
	if ev.Type == protocol.EventPaused {
		// Only the last pause and resume are kept: a container paused
		// and resumed many times keeps a lifecycle's history.
		h = slices.DeleteFunc(h, func(e protocol.Event) bool {
			return e.Type == protocol.EventPaused || e.Type == protocol.EventResumed
		})
	}
	h = append(h, ev)
	if lifecycle(ev.Type) {
		return h
	}
	n, oldest := 0, -1
	for i := range h {
		if !lifecycle(h[i].Type) {
			if oldest < 0 {
				oldest = i
			}
			n++
		}
	}
	if n <= maxRepeated {
		return h
	}
	return append(h[:oldest], h[oldest+1:]...)
}

// numLifecycle is how many lifecycle types there are (lifecycle).
const numLifecycle = 4

// lifecycle reports whether t is one of the container's own lifecycle
// events, which happen at most once each.
func lifecycle(t string) bool {
	switch t {
	case protocol.EventCreated, protocol.EventStarted, protocol.EventStopped, protocol.EventDeleted:
		return true
	}
	return false
}
