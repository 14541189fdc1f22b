package main

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/seccomp"
)

func (a *app) featuresCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this build supports, as runtime-spec features.md describes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeJSON(os.Stdout, runtimeFeatures())
		},
	}
}

// runtimeFeatures describes this build. It is decided at build time: it
// says what crier recognizes, not what the host has (a cgroup v1 host
// still gets "v2": true).
func runtimeFeatures() *features.Features {
	yes, no := true, false
	apparmor, selinux := container.LabelSupport()
	mpolModes, mpolFlags := container.KnownMemoryPolicy()
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks: []string{
			container.HookPrestart, container.HookCreateRuntime, container.HookCreateContainer,
			container.HookStartContainer, container.HookPoststart, container.HookPoststop,
		},
		MountOptions: container.KnownMountOptions(),
		Linux: &features.Linux{
			Namespaces: []string{
				string(specs.CgroupNamespace), string(specs.IPCNamespace), string(specs.MountNamespace),
				string(specs.NetworkNamespace), string(specs.PIDNamespace), string(specs.TimeNamespace),
				string(specs.UserNamespace), string(specs.UTSNamespace),
			},
			Capabilities: container.KnownCapabilities(),
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no},
			Seccomp: &features.Seccomp{
				Enabled:        &yes,
				Actions:        seccomp.Actions(),
				Operators:      seccomp.Operators(),
				Archs:          seccomp.Archs(),
				KnownFlags:     seccomp.Flags(),
				SupportedFlags: seccomp.Flags(),
			},
			Apparmor:        &features.Apparmor{Enabled: &apparmor},
			Selinux:         &features.Selinux{Enabled: &selinux},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &yes}},
			MemoryPolicy:    &features.MemoryPolicy{Modes: mpolModes, Flags: mpolFlags},
		},
	}
}
