package main

import (
	"fmt"

	"github.com/crier-runtime/crier/protocol"
)

// expectation is what a container's stopped event must say.
type expectation struct {
	kind   expectKind
	status int
	signal string // "SIGKILL" for 137 from a kill, "" for an exit
}

type expectKind int

const (
	// expectNothing: the exit is not the soak's to know (a create or
	// start cut short, a container killed by delete --force).
	expectNothing expectKind = iota
	// expectExact: the exit happened while a shim was alive: stopped
	// gives exactly this status.
	expectExact
	// expectUnknownOK: the exit happened while no shim was alive (the
	// soak killed the shim, then the container): stopped says
	// exitUnknown, or gives this status exactly (the kernel kept it for
	// the pidfd until the reap), never another.
	expectUnknownOK
)

func exitOf(status int) expectation {
	return expectation{kind: expectExact, status: status}
}

func killed() expectation {
	return expectation{kind: expectExact, status: 137, signal: "SIGKILL"}
}

func (e expectation) String() string {
	switch e.kind {
	case expectExact:
		return fmt.Sprintf("exit %d%s", e.status, sigSuffix(e.signal))
	case expectUnknownOK:
		return fmt.Sprintf("exit %d%s or unknown", e.status, sigSuffix(e.signal))
	}
	return "any exit"
}

func sigSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// check checks the stopped event a subscriber saw (nil: none).
func (e expectation) check(ev *protocol.Event) error {
	if e.kind == expectNothing {
		return nil
	}
	if ev == nil {
		return fmt.Errorf("no stopped event, want %v", e)
	}
	if e.kind == expectUnknownOK && ev.ExitUnknown && ev.ExitStatus == nil && ev.Signal == "" {
		return nil
	}
	if ev.ExitUnknown || ev.ExitStatus == nil || *ev.ExitStatus != e.status || ev.Signal != e.signal {
		return fmt.Errorf("stopped says %s, want %v", describeStop(ev), e)
	}
	return nil
}

func describeStop(ev *protocol.Event) string {
	switch {
	case ev.ExitUnknown:
		return "exit unknown"
	case ev.ExitStatus == nil:
		return "no status"
	}
	return fmt.Sprintf("exit %d%s", *ev.ExitStatus, sigSuffix(ev.Signal))
}
