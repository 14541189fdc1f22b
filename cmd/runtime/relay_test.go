package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crier-runtime/crier/internal/relay"
)

// cobraReading is what the CLI makes of args: the relay.Command its
// command tree parses them to, or nil where it would fail.
func cobraReading(t *testing.T, args []string) *relay.Command {
	t.Helper()
	a := &app{}
	root := a.command()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		return nil
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return nil
	}
	pos := cmd.Flags().Args()
	if cmd.ValidateArgs(pos) != nil || a.setup() != nil {
		return nil
	}
	if help, _ := cmd.Flags().GetBool("help"); help {
		return nil
	}
	c := &relay.Command{Verb: cmd.Name(), Root: a.root, ID: pos[0], LogFormat: a.logFormat}
	if a.logPath != "" {
		c.LogPath, _ = filepath.Abs(a.logPath)
	}
	switch c.Verb {
	case "delete":
		c.Force, _ = cmd.Flags().GetBool("force")
	case "event":
		types, _ := cmd.Flags().GetStringArray("event")
		c.Events = strings.Join(types, ",")
		c.Monitor, _ = cmd.Flags().GetBool("monitor")
		c.NoHistory, _ = cmd.Flags().GetBool("no-history")
		c.Timeout, _ = cmd.Flags().GetDuration("timeout")
		if c.Timeout < 0 {
			return nil
		}
		for _, f := range []string{"since", "all", "historic"} {
			if cmd.Flags().Changed(f) {
				return nil
			}
		}
	case "kill":
		c.All, _ = cmd.Flags().GetBool("all")
		c.Signal, _ = cmd.Flags().GetString("signal")
		if len(pos) == 2 {
			if cmd.Flags().Changed("signal") {
				return nil
			}
			c.Signal = pos[1]
		}
	}
	if !a.debug && !a.systemdCgroup && a.shimPath == "" && a.supervisor == "" {
		return c
	}
	return nil
}

// relay.Parse takes a command line only if the CLI reads it the same way:
// the relayed command does what the CLI would have done.
func TestRelayParseAgreesWithCobra(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line  string
		relay bool // the relay must take it
	}{
		{"state c1", true},
		{"start c1", true},
		{"pause c1", true},
		{"resume c1", true},
		{"delete c1", true},
		{"delete --force c1", true},
		{"delete -f c1", true},
		{"delete c1 --force", true},
		{"kill c1", true},
		{"kill c1 9", true},
		{"kill c1 KILL", true},
		{"kill c1 SIGUSR1", true},
		{"kill c1 0", true},
		{"kill --all c1 9", true},
		{"kill -a c1 9", true},
		{"kill -s KILL c1", true},
		{"kill --signal KILL c1", true},
		{"kill --signal=HUP c1", true},
		{"--root /run/x state c1", true},
		{"--root=/run/x state c1", true},
		{"--root rel/dir state c1", true},
		{"--root /run/x/../y/ state c1", true},
		{"state --root /run/x c1", true},
		{"state c1 --root /run/x", true},
		{"--root /a --root /b state c1", true},
		{"--log /tmp/l.json --log-format json start c1", true},
		{"--log=/tmp/l --log-format=text start c1", true},
		{"--log rel.log start c1", true},
		{"--root /r --log /b/log.json --log-format json delete --force c1", true},
		{"--root /r --log /b/log.json --log-format json kill --all c1 9", true},
		{"--root /r --log /b/log.json --log-format json kill c1 15", true},
		// The CLI's own: declined, whatever cobra makes of them.
		{"--debug state c1", false},
		{"state -h", false},
		{"state --help c1", false},
		{"--systemd-cgroup state c1", false},
		{"--shim /x state c1", false},
		{"--supervisor on start c1", false},
		{"--log-format xml state c1", false},
		{"--root= state c1", false},
		{"state", false},
		{"state c1 c2", false},
		{"state ../c1", false},
		{"state .c1", false},
		{"state c/1", false},
		{"start c1 extra", false},
		{"delete --force=true c1", false},
		{"delete -f=true c1", false},
		{"delete -fa c1", false},
		{"kill -s=KILL c1", false},
		{"kill c1 KILL --signal TERM", false},
		{"kill c1 NOSUCH", false},
		{"kill c1 -9", false},
		{"kill c1 9 9", false},
		{"kill --force c1", false},
		{"delete --all c1", false},
		{"state --force c1", false},
		{"--force delete c1", false},
		{"-f delete c1", false},
		{"--signal KILL kill c1", false},
		{"-- state c1", false},
		{"state -- c1", false},
		{"list", false},
		{"exec c1 ls", false},
		{"ps c1", false},
		{"events c1", false},
		{"event c1", true},
		{"event --event stopped c1", true},
		{"event -e stopped c1", true},
		{"event --event=started -e stopped c1", true},
		{"event -m c1", true},
		{"event --monitor --no-history c1", true},
		{"--root /r event c1 --event oom", true},
		{"--root /r --log /l --log-format json event -e deleted c1", true},
		{"event --event nosuch c1", false},
		{"event --since 3 c1", false},
		{"event --timeout 5s c1", true},
		{"event --event stopped --timeout=1m30s c1", true},
		{"event --timeout 0 c1", true},
		{"event --timeout -1s c1", false},
		{"event --timeout 5 c1", false},
		{"event --timeout soon c1", false},
		{"--timeout 5s event c1", false},
		{"event --all", false},
		{"event -a c1", false},
		{"event --historic c1", false},
		{"event -H c1", false},
		{"event --historic --no-history c1", false},
		{"event c1 c2", false},
		{"event -e=stopped c1", false},
		{"event --monitor=true c1", false},
		{"-e stopped event c1", false},
		{"state -e stopped c1", false},
		{"kill -m c1", false},
		{"create c1", false},
		{"--root", false},
		{"kill -s", false},
		{"--version", false},
		{"sta c1", false},
	} {
		args := strings.Fields(c.line)
		got, ok := relay.Parse(args, cwd)
		if c.relay && !ok {
			t.Errorf("%q: the relay declines it", c.line)
			continue
		}
		if !ok {
			continue
		}
		want := cobraReading(t, args)
		switch {
		case want == nil:
			t.Errorf("%q: the relay takes it, the CLI refuses it", c.line)
		case *got != *want:
			t.Errorf("%q: the relay reads %+v, the CLI %+v", c.line, *got, *want)
		}
	}
}
