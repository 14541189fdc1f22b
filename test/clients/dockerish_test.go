//go:build clients

package clients

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dockerish is what podman and docker share: the same command line for
// everything the scenarios do.
type dockerish struct {
	*sandbox
	tool
	image   string
	runArgs []string // added to every run (podman's cgroup parent)
	rmAll   []string // removes containers at once, running or not
}

func (c *dockerish) base() *sandbox { return c.sandbox }

// runLine is the run of o; the client writes the container's ID to
// cidFile as soon as it has one.
func (c *dockerish) runLine(o runOpts, detach bool) []string {
	args := append([]string{"run", "--name", o.name, "--cidfile", c.cidFile(o.name)}, c.runArgs...)
	if detach {
		args = append(args, "-d")
	} else {
		args = append(args, "--rm")
	}
	if o.tty {
		args = append(args, "-t")
	}
	if o.volume != "" {
		args = append(args, "-v", o.volume+":/sync")
	}
	if o.pidOf != "" {
		args = append(args, "--pid", "container:"+o.pidOf)
	}
	return append(append(args, c.image), o.args...)
}

func (c *dockerish) cidFile(name string) string { return filepath.Join(c.sandbox.dir, name+".cid") }

// rememberCid remembers the ID of the container name, if the client got
// as far as making it: what the runtime has of it must go at the end,
// even if the client has forgotten it.
func (c *dockerish) rememberCid(name string) {
	if b, err := os.ReadFile(c.cidFile(name)); err == nil && len(b) > 0 {
		c.remember(strings.TrimSpace(string(b)))
	}
}

func (c *dockerish) run(t *testing.T, o runOpts) result {
	t.Helper()
	if o.name == "" {
		o.name = c.name()
	}
	defer c.rememberCid(o.name)
	if o.tty {
		return c.runTTY(t, c.runLine(o, false)...)
	}
	return c.tool.run(t, c.runLine(o, false)...)
}

func (c *dockerish) runDetached(t *testing.T, o runOpts) string {
	t.Helper()
	if o.name == "" {
		o.name = c.name()
	}
	defer c.rememberCid(o.name)
	c.ok(t, c.runLine(o, true)...)
	return o.name
}

func (c *dockerish) inspect(t *testing.T, name, format string) string {
	t.Helper()
	return strings.TrimSpace(c.ok(t, "inspect", "--format", format, name))
}

func (c *dockerish) id(t *testing.T, name string) string {
	t.Helper()
	id := c.inspect(t, name, "{{.Id}}")
	c.remember(id)
	return id
}

func (c *dockerish) exec(t *testing.T, name string, tty bool, args ...string) result {
	t.Helper()
	if tty {
		return c.runTTY(t, append([]string{"exec", "-t", name}, args...)...)
	}
	return c.tool.run(t, append([]string{"exec", name}, args...)...)
}

func (c *dockerish) pause(t *testing.T, name string)   { t.Helper(); c.ok(t, "pause", name) }
func (c *dockerish) unpause(t *testing.T, name string) { t.Helper(); c.ok(t, "unpause", name) }

func (c *dockerish) status(t *testing.T, name string) string {
	t.Helper()
	return c.inspect(t, name, "{{.State.Status}}")
}

func (c *dockerish) stop(t *testing.T, name string, grace time.Duration) {
	t.Helper()
	c.ok(t, "stop", "-t", strconv.Itoa(int(grace/time.Second)), name)
}

func (c *dockerish) startWait(t *testing.T, name string) func(*testing.T) int {
	t.Helper()
	p := c.start(t, *stepFlag, "wait", name)
	return func(t *testing.T) int {
		t.Helper()
		r := p.wait()
		if r.code != 0 {
			t.Fatal(r)
		}
		code, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if err != nil {
			t.Fatalf("%s: not an exit code: %q", r.line, r.stdout)
		}
		return code
	}
}

func (c *dockerish) exitCode(t *testing.T, name string) int {
	t.Helper()
	s := c.inspect(t, name, "{{.State.ExitCode}}")
	code, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s inspect %s: exit code %q", c.bin, name, s)
	}
	return code
}

func (c *dockerish) kill(t *testing.T, name string) { t.Helper(); c.ok(t, "kill", name) }

func (c *dockerish) remove(t *testing.T, name string, force bool) {
	t.Helper()
	if force {
		c.ok(t, "rm", "-f", name)
	} else {
		c.ok(t, "rm", name)
	}
}

func (c *dockerish) exists(t *testing.T, name string) bool {
	t.Helper()
	out := c.ok(t, "ps", "-a", "--format", "{{.Names}}")
	for _, n := range strings.Fields(out) {
		if n == name {
			return true
		}
	}
	return false
}

func (c *dockerish) pid(t *testing.T, name string) int {
	t.Helper()
	s := c.inspect(t, name, "{{.State.Pid}}")
	pid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s inspect %s: pid %q", c.bin, name, s)
	}
	return pid
}

func (c *dockerish) top(t *testing.T, name string) string {
	t.Helper()
	return c.ok(t, "top", name)
}

func (c *dockerish) statsPids(t *testing.T, name string) int {
	t.Helper()
	s := strings.TrimSpace(c.ok(t, "stats", "--no-stream", "--format", "{{.PIDs}}", name))
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s stats %s: PIDs %q", c.bin, name, s)
	}
	return n
}

// removeAll removes every container of the sandbox, running or not.
func (c *dockerish) removeAll(t *testing.T) {
	out := c.try(t, *stepFlag, "ps", "-aq")
	if ids := strings.Fields(out.stdout); len(ids) > 0 {
		if r := c.try(t, 2**stepFlag, append(c.rmAll, ids...)...); r.code != 0 {
			t.Errorf("removing what is left: %v", r)
		}
	}
}
