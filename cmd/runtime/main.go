// Command crier is an OCI container runtime that pushes lifecycle events.
//
// Each verb lives in its own file; this one wires the global flags and
// builds the command tree.
//
// (No crier process needs Go to size GOMAXPROCS from, and keep watching,
// its cgroup CPU limit: they are short-lived or idle.)
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	// Every crier process's heap is short-lived (create's fork re-executes
	// into the serving crier-shim): on huge pages it saves a page fault
	// for each 4 kB, which is most of a Go start on the slower machines.
	_ "github.com/crier-runtime/crier/internal/hugeheap"
	"github.com/crier-runtime/crier/internal/prefork"
)

// version and commit are set at link time by the Makefile.
var (
	version = "0.1.0-dev"
	commit  = ""
)

func main() {
	if prefork.RunChild() {
		// The fork of a run: a shim that run's CLI feeds (run_forked.go).
		os.Exit(runChild())
	}
	a := &app{}
	root := a.command()
	if err := root.Execute(); err != nil {
		a.fail(err)
	}
	// The process the caller waits for exits with this, when this one
	// was forked off for create (internal/prefork).
	prefork.Exit(a.exitCode)
	// And a run's CLI that gave its fork no go-ahead waits for it to go.
	prefork.Release()
	os.Exit(a.exitCode)
}

// app holds the global flags and what every verb shares.
type app struct {
	root      string
	logPath   string
	logFormat string
	debug     bool
	shimPath  string
	exitCode  int
	// systemdCgroup is runc's --systemd-cgroup (systemd.go).
	systemdCgroup bool
	// supervisor is --supervisor (supervisor.go).
	supervisor string
	// stderr, when set, is where log lines go without --log: the forked
	// create's copy of stderr, once its own stdio is the container's.
	stderr *os.File
	// alone is set in C of a forked run, which runs the run by itself
	// when it can (run_alone.go).
	alone *aloneRun
}

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:           "crier",
		Short:         "an OCI container runtime that pushes lifecycle events",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// An unknown command is an error, not a help page.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.setup(); err != nil {
				return err
			}
			return a.checkSystemdCgroup(cmd)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// `crier foo -h`: cobra shows the root's help for a word that is no
	// command; runc fails, "No help topic for 'foo'", and scripts that
	// probe for a command rely on that.
	help := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if rest := cmd.Flags().Args(); !cmd.HasParent() && len(rest) > 0 {
			a.fail(fmt.Errorf("unknown command %q: No help topic for '%s'", rest[0], rest[0]))
			return
		}
		help(cmd, args)
	})
	root.SetVersionTemplate(versionText())
	f := root.PersistentFlags()
	f.StringVar(&a.root, "root", "/run/crier", "directory for the state of containers")
	f.StringVar(&a.logPath, "log", "", "log file (default: stderr)")
	f.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&a.debug, "debug", false, "log debug messages")
	f.StringVar(&a.shimPath, "shim", "", "crier-shim binary (default: next to crier, then $PATH)")
	f.StringVar(&a.supervisor, "supervisor", "", "auto, on or off: whether create makes the container the child of a reaping supervisor above it, as runc's is (default: $"+supervisorEnv+", else auto; docs/supervisors.md)")
	f.BoolVar(&a.systemdCgroup, "systemd-cgroup", false, "use systemd's cgroup driver, as runc's flag (refused by create and run: crier has none)")
	create := a.createCommand()
	root.AddCommand(create)
	var run *cobra.Command
	if prefork.RunWaiter() || prefork.RunChild() {
		run = a.runCommand()
		root.AddCommand(run)
	}
	// Create's fork and run's waiting process (internal/prefork) run the
	// verb their entry found on the command line: the other verbs'
	// commands, some 0.5-1 ms of the way to init's fork (for a run, to
	// the go-ahead its fork waits for), are built only if cobra would
	// pick another after all.
	if prefork.Child() || run != nil {
		if c, _, err := root.Find(os.Args[1:]); err == nil && (c == create || (run != nil && c == run)) {
			return root
		}
	}
	if run == nil {
		run = a.runCommand()
	}
	root.AddCommand(
		a.startCommand(), a.stateCommand(), a.killCommand(),
		a.deleteCommand(), run, a.listCommand(), a.specCommand(),
		a.eventCommand(), a.featuresCommand(),
		a.psCommand(), a.updateCommand(), a.eventsCommand(), a.execCommand(),
		a.pauseCommand(), a.resumeCommand(),
	)
	return root
}

// versionText is --version in runc's shape, which scripts parse: the name
// and version, then "commit:", "spec:" and "go:" lines. runc adds a
// "libseccomp:" line; crier compiles its filters itself and links no
// libseccomp, so it has none (docs/compatibility.md).
func versionText() string {
	c := commit
	if c == "" {
		c = "unknown"
	}
	return "crier version {{.Version}}\ncommit: " + c + "\nspec: " + specVersion() + "\ngo: " + runtime.Version() + "\n"
}
