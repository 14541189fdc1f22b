//go:build clients

package clients

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// ctrClient is containerd 1.6 driven by ctr, in a sandbox of its own:
// private root, state, sockets and configuration, the CRI plugin and the
// snapshotters that cannot work here disabled, a namespace of its own, and
// the runtime under test given to containerd-shim-runc-v2 by path
// (--runc-binary, the runc options' BinaryName) with a --runc-root in the
// sandbox.
type ctrClient struct {
	*sandbox
	tool
	daemon  *daemon
	address string
	ns      string
	image   string
	execs   int
	probes  int
	runArgs []string
}

func startContainerd(t *testing.T) client {
	sb := newSandbox(t, "containerd", "containerd-shim")
	c := &ctrClient{
		sandbox: sb,
		address: filepath.Join(sb.dir, "containerd.sock"),
		// cgroupsPath is /<namespace>/<id>: the namespace is the run's
		// cgroup parent.
		ns:    sb.trace.cgroupParent,
		image: "localhost/crier-clients:busybox",
	}
	runcRoot := filepath.Join(sb.dir, "runc-root")
	// containerd-shim-runc-v2 gives the runtime --root <runc-root>/<ns>.
	sb.rtRoot = filepath.Join(runcRoot, c.ns)
	sb.shimSocket = func(id string) string { return shimSocket(c.address, c.ns, id) }
	c.tool = tool{bin: "ctr", dir: sb.dir, args: []string{"--address", c.address, "--namespace", c.ns}}
	conf := filepath.Join(sb.dir, "config.toml")
	writeFile(t, conf, clientsandbox.ContainerdConf(sb.dir, c.address))
	t.Cleanup(func() { tearDown(t, c) })
	c.daemon = startDaemon(t, sb.dir, "containerd", "containerd", "--config", conf)
	c.daemon.waitReady(t, func() bool { return c.try(t, *stepFlag, "version").code == 0 })
	archive := filepath.Join(sb.dir, "busybox-oci.tar")
	if err := clientsandbox.WriteOCIArchive(archive, suite.tarball, c.image); err != nil {
		t.Fatalf("writing the OCI image %s: %v", archive, err)
	}
	c.ok(t, "image", "import", archive)
	c.runArgs = []string{"--runc-binary", suite.runtime, "--runc-root", runcRoot}
	return c
}

func (c *ctrClient) base() *sandbox { return c.sandbox }

// runLine is ctr run of o; extra goes before the image.
func (c *ctrClient) runLine(o runOpts, extra ...string) []string {
	args := append(append([]string{"run"}, c.runArgs...), extra...)
	if o.tty {
		args = append(args, "-t")
	}
	if o.volume != "" {
		args = append(args, "--mount", "type=bind,src="+o.volume+",dst=/sync,options=rbind:rw")
	}
	return append(append(args, c.image, o.name), o.args...)
}

func (c *ctrClient) run(t *testing.T, o runOpts) result {
	t.Helper()
	if o.name == "" {
		o.name = c.name()
	}
	c.sandbox.remember(o.name)
	if o.tty {
		return c.runTTY(t, c.runLine(o, "--rm")...)
	}
	return c.tool.run(t, c.runLine(o, "--rm")...)
}

func (c *ctrClient) runDetached(t *testing.T, o runOpts) string {
	t.Helper()
	if o.name == "" {
		o.name = c.name()
	}
	c.sandbox.remember(o.name)
	c.ok(t, c.runLine(o, "-d")...)
	return o.name
}

func (c *ctrClient) id(t *testing.T, name string) string { return name }

func (c *ctrClient) exec(t *testing.T, name string, tty bool, args ...string) result {
	t.Helper()
	c.execs++
	line := []string{"task", "exec", "--exec-id", fmt.Sprintf("exec%d", c.execs)}
	if tty {
		return c.runTTY(t, append(append(line, "-t", name), args...)...)
	}
	return c.tool.run(t, append(append(line, name), args...)...)
}

func (c *ctrClient) pause(t *testing.T, name string)   { t.Helper(); c.ok(t, "task", "pause", name) }
func (c *ctrClient) unpause(t *testing.T, name string) { t.Helper(); c.ok(t, "task", "resume", name) }

// task is the PID and STATUS columns of `ctr task ls` for name; ok is
// false when it has no task.
func (c *ctrClient) task(t *testing.T, name string) (pid int, status string, ok bool) {
	t.Helper()
	for _, row := range strings.Split(c.ok(t, "task", "ls"), "\n")[1:] {
		f := strings.Fields(row)
		if len(f) == 3 && f[0] == name {
			pid, _ = strconv.Atoi(f[1])
			return pid, strings.ToLower(f[2]), true
		}
	}
	return 0, "", false
}

func (c *ctrClient) status(t *testing.T, name string) string {
	t.Helper()
	_, s, ok := c.task(t, name)
	if !ok {
		t.Fatalf("ctr task ls: no task %s", name)
	}
	if s == "stopped" {
		return "exited"
	}
	return s
}

// stop is what docker and podman do, done by hand with ctr, which has no
// stop: SIGTERM, the grace period, then SIGKILL.
func (c *ctrClient) stop(t *testing.T, name string, grace time.Duration) {
	t.Helper()
	wait := c.startWait(t, name)
	c.ok(t, "task", "kill", "--signal", "SIGTERM", name)
	time.Sleep(grace) // the grace period is what is being tested
	if s := c.status(t, name); s != "running" {
		t.Errorf("after SIGTERM and %v the task is %s: SIGTERM was not ignored", grace, s)
	}
	c.ok(t, "task", "kill", "--signal", "SIGKILL", name)
	wait(t)
}

// startWait subscribes to containerd's events and returns a waiter for
// the task's exit event. ctr has no wait: events are how containerd
// reports an exit. The subscription is known to be live once a probe
// event (a label on the namespace) has come through it; until then,
// probes are lost, and the next one is sent.
func (c *ctrClient) startWait(t *testing.T, name string) func(*testing.T) int {
	t.Helper()
	l := c.startLines(t, 4**stepFlag, "events")
	isProbe := func(s string) bool { return strings.Contains(s, "/namespaces/update") }
	waitFor(t, "ctr events to pass on a probe event", func() bool {
		c.probes++
		c.ok(t, "namespaces", "label", c.ns, fmt.Sprintf("probe=%d", c.probes))
		_, ok := l.within(200*time.Millisecond, isProbe)
		return ok
	})
	return func(t *testing.T) int {
		t.Helper()
		defer l.stop()
		var ev struct {
			ContainerID string `json:"container_id"`
			ID          string `json:"id"`
			ExitStatus  int    `json:"exit_status"`
		}
		l.next(t, "the exit event of "+name, func(s string) bool {
			i := strings.Index(s, " /tasks/exit ")
			if i < 0 {
				return false
			}
			ev.ContainerID, ev.ID, ev.ExitStatus = "", "", 0
			json.Unmarshal([]byte(s[i+len(" /tasks/exit "):]), &ev)
			return ev.ContainerID == name && ev.ID == name
		})
		return ev.ExitStatus
	}
}

var exitWarning = regexp.MustCompile(`exit with non-zero exit code (\d+)`)

// exitCode is the exit code `ctr task delete` reports (it warns when it is
// not zero). ctr has no inspect that shows it; the task is deleted.
func (c *ctrClient) exitCode(t *testing.T, name string) int {
	t.Helper()
	r := c.tool.run(t, "task", "delete", name)
	if r.code != 0 {
		t.Fatal(r)
	}
	if m := exitWarning.FindStringSubmatch(r.stderr); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func (c *ctrClient) kill(t *testing.T, name string) {
	t.Helper()
	c.ok(t, "task", "kill", "--signal", "SIGKILL", name)
}

// remove deletes the task, if it has not been, then the container.
func (c *ctrClient) remove(t *testing.T, name string, force bool) {
	t.Helper()
	if _, _, ok := c.task(t, name); ok {
		if force {
			c.ok(t, "task", "delete", "--force", name)
		} else {
			c.ok(t, "task", "delete", name)
		}
	}
	c.ok(t, "container", "delete", name)
}

func (c *ctrClient) exists(t *testing.T, name string) bool {
	t.Helper()
	for _, n := range strings.Fields(c.ok(t, "container", "ls", "--quiet")) {
		if n == name {
			return true
		}
	}
	return false
}

func (c *ctrClient) pid(t *testing.T, name string) int {
	t.Helper()
	pid, _, ok := c.task(t, name)
	if !ok {
		t.Fatalf("ctr task ls: no task %s", name)
	}
	return pid
}

func (c *ctrClient) top(t *testing.T, name string) string {
	t.Helper()
	return c.ok(t, "task", "ps", name)
}

// statsPids reads pids.current from `ctr task metrics`, which the shim
// reads from the cgroup of the task's pid.
func (c *ctrClient) statsPids(t *testing.T, name string) int {
	t.Helper()
	out := c.ok(t, "task", "metrics", "--format", "json", name)
	var m struct {
		Pids struct{ Current int }
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("ctr task metrics: %v: %s", err, out)
	}
	if m.Pids.Current == 0 {
		t.Logf("ctr task metrics: %s", out)
	}
	return m.Pids.Current
}

func (c *ctrClient) shutdown(t *testing.T) {
	if c.daemon == nil {
		return
	}
	for _, row := range strings.Split(c.try(t, *stepFlag, "task", "ls").stdout, "\n")[1:] {
		if f := strings.Fields(row); len(f) == 3 {
			c.try(t, *stepFlag, "task", "delete", "--force", f[0])
		}
	}
	if ids := strings.Fields(c.try(t, *stepFlag, "container", "ls", "--quiet").stdout); len(ids) > 0 {
		c.try(t, *stepFlag, append([]string{"container", "delete"}, ids...)...)
	}
	c.daemon.stop(t)
	if t.Failed() {
		t.Logf("containerd's log ends with:\n%s", strings.TrimSpace(c.daemon.logTail()))
	}
}
