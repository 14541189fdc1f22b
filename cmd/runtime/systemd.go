package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"
)

// systemdRunning is where systemd says it is the init system (what
// sd_booted(3) checks).
const systemdRunning = "/run/systemd/system"

// checkSystemdCgroup handles runc's global --systemd-cgroup. containerd
// and others pass it on every call when configured for systemd, so only
// the verbs that make cgroups look at it; state, kill, delete and the
// rest ignore it. crier manages cgroups itself through cgroupfs, so a
// create that asks for systemd's cgroup driver is refused with why,
// before anything is made.
func (a *app) checkSystemdCgroup(cmd *cobra.Command) error {
	if !a.systemdCgroup || (cmd.Name() != "create" && cmd.Name() != "run") {
		return nil
	}
	if _, err := os.Stat(systemdRunning); err != nil {
		return errors.New("--systemd-cgroup: systemd is not running on this host (no " + systemdRunning + ")")
	}
	return errors.New("--systemd-cgroup: crier has no systemd cgroup driver; it manages cgroups through cgroupfs (run without --systemd-cgroup)")
}
