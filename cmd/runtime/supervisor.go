package main

import (
	"fmt"
	"os"
)

// supervisorEnv sets the supervisor mode for callers that cannot pass
// --supervisor; the flag wins over it.
const supervisorEnv = "CRIER_SUPERVISOR"

// supervisorMode returns the supervisor mode (docs/supervisors.md): auto
// (detect a reaping supervisor above create), on or off.
func (a *app) supervisorMode() (string, error) {
	mode, from := a.supervisor, "--supervisor"
	if mode == "" {
		mode, from = os.Getenv(supervisorEnv), supervisorEnv
	}
	switch mode {
	case "":
		return "auto", nil
	case "auto", "on", "off":
		return mode, nil
	}
	return "", fmt.Errorf("%s: unknown supervisor mode %q (want auto, on or off)", from, mode)
}

// supervisorArgs are the shim's arguments for the mode. In auto the shim
// detaches itself at birth and compares its new parent with create's
// parent, callerParent; without one (run, whose caller waits through the
// shim's events) auto is off.
func supervisorArgs(mode string, callerParent int) []string {
	if mode == "auto" && callerParent <= 0 {
		mode = "off"
	}
	switch mode {
	case "on":
		return []string{"--detach", "--supervisor", "on"}
	case "auto":
		return []string{"--detach", "--supervisor", "auto", "--caller-parent", fmt.Sprint(callerParent)}
	}
	return []string{"--supervisor", "off"}
}
