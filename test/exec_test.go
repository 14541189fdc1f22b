package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// crier exec: a process run in a running container by its shim, as its
// child, in the container's namespaces, cgroups and privileges.

// execTarget creates and starts a container that sleeps, made with edit,
// and returns its ID.
func execTarget(t *testing.T, e *env, edit func(*specs.Spec)) string {
	t.Helper()
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		if edit != nil {
			edit(s)
		}
	})
	// A file only the container's rootfs has.
	if err := os.WriteFile(filepath.Join(b, "rootfs", "only-here"), []byte("rootfs-marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := readSpec(t, b); s.Linux.UIDMappings != nil {
		chownRootfs(t, b)
	}
	e.create(id, b)
	e.cliOK("start", id)
	return id
}

// execDetached runs exec --detach --pid-file and returns the pid the file
// names.
func execDetached(t *testing.T, e *env, id string, args ...string) int {
	t.Helper()
	pidFile := filepath.Join(e.dir, "exec.pid")
	r := e.cliRun(append([]string{"exec", "--detach", "--pid-file", pidFile, id}, args...)...)
	if r.code != 0 {
		t.Fatalf("exec --detach: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("exec --detach printed %q %q, want nothing", r.stdout, r.stderr)
	}
	pid, err := strconv.Atoi(readFile(t, pidFile))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file holds %q, want a pid", readFile(t, pidFile))
	}
	return pid
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	kv := map[string]string{}
	for _, line := range strings.Split(readFile(t, "/proc/"+strconv.Itoa(pid)+"/status"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

func sameNS(t *testing.T, a, b int, ns string) bool {
	t.Helper()
	x, err1 := os.Readlink("/proc/" + strconv.Itoa(a) + "/ns/" + ns)
	y, err2 := os.Readlink("/proc/" + strconv.Itoa(b) + "/ns/" + ns)
	if err1 != nil || err2 != nil {
		t.Fatalf("readlink ns/%s: %v %v", ns, err1, err2)
	}
	return x == y
}

// TestExecExitStatusAndOutput: a foreground exec's stdout and stderr are
// the CLI's own, and the CLI exits with the process's status, 128+N for
// signal N.
func TestExecExitStatusAndOutput(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	r := e.cliRun("exec", id, "sh", "-c", "echo out; echo err >&2; exit 5")
	if r.code != 5 {
		t.Errorf("exec exit %d, want 5 (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("stdout %q stderr %q, want \"out\\n\" and \"err\\n\"", r.stdout, r.stderr)
	}
	r = e.cliRun("exec", id, "sh", "-c", "kill -TERM $$")
	if r.code != 128+15 {
		t.Errorf("exec killed by SIGTERM: exit %d, want 143", r.code)
	}
}

// TestExecStdin: a foreground exec of cat echoes the CLI's stdin.
func TestExecStdin(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	p := e.cliStart(func(c *exec.Cmd) { c.Stdin = strings.NewReader("hello through stdin\n") }, "exec", id, "cat")
	if r := p.waitOK(); r.stdout != "hello through stdin\n" {
		t.Errorf("cat printed %q, want its stdin", r.stdout)
	}
}

// TestExecInContainer: the exec'd process sees the container's pid and
// mount namespaces, has the init's capabilities, and is under its seccomp
// filter.
func TestExecInContainer(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, func(s *specs.Spec) { s.Linux.Seccomp = denyMkdir() })
	script := `echo "pid=$$"; echo "file=$(cat /only-here)"; echo "one=$(cat /proc/1/cmdline | tr '\0' ' ')"
		echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"; echo "initcap=$(grep CapEff /proc/1/status | cut -f2)"
		echo "capbnd=$(grep CapBnd /proc/self/status | cut -f2)"; echo "initbnd=$(grep CapBnd /proc/1/status | cut -f2)"
		mkdir /tmp/x 2>/dev/null; echo "mkdir=$?"; touch /tmp/y; echo "touch=$?"`
	kv := keyValues(e.cliOK("exec", id, "sh", "-c", script).stdout)
	if pid, _ := strconv.Atoi(kv["pid"]); pid <= 1 {
		t.Errorf("exec'd $$ = %q, want a pid > 1 of the container's pid namespace", kv["pid"])
	}
	wantKV(t, kv, "file", "rootfs-marker")
	wantKV(t, kv, "one", "sleep 1000")
	if kv["capeff"] == "" || kv["capeff"] != kv["initcap"] || kv["capbnd"] != kv["initbnd"] {
		t.Errorf("capabilities eff %q bnd %q, want the init's eff %q bnd %q", kv["capeff"], kv["capbnd"], kv["initcap"], kv["initbnd"])
	}
	wantKV(t, kv, "mkdir", "1")
	wantKV(t, kv, "touch", "0")
}

// TestExecDetachPidFile: exec --detach returns while the process runs; the
// pid file names it, it is the shim's child, in the init's namespaces and
// in the container's cgroup.
func TestExecDetachPidFile(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	initPid, shimPid := e.state(id).Pid, e.shimState(id).ShimPid
	pid := execDetached(t, e, id, "sleep", "999")
	st := procStatus(t, pid)
	if st["PPid"] != strconv.Itoa(shimPid) {
		t.Errorf("exec'd process's parent %s, want the shim %d", st["PPid"], shimPid)
	}
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] == "1" {
		t.Errorf("NSpid %q, want a pid in the container's pid namespace besides the host's", st["NSpid"])
	}
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts", "cgroup"} {
		if !sameNS(t, pid, initPid, ns) {
			t.Errorf("exec'd process is not in the init's %s namespace", ns)
		}
	}
	dirs := cgroupDirsOf(id)
	if len(dirs) == 0 {
		dirs = []string{filepath.Join("/sys/fs/cgroup", id)}
	}
	for _, d := range dirs {
		if procs := readFile(t, filepath.Join(d, "cgroup.procs")); !strings.Contains("\n"+procs+"\n", "\n"+strconv.Itoa(pid)+"\n") {
			t.Errorf("%s/cgroup.procs does not list the exec'd pid %d: %q", d, pid, procs)
		}
	}
	// It is reaped by the shim when it exits: no zombie is left.
	unix.Kill(pid, unix.SIGKILL)
	e.cliOK("kill", id, "KILL")
	e.waitStopped(id)
	e.cliOK("delete", id)
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("exec'd process %d still exists after delete", pid)
	}
}

// TestExecUserEnvCwd: --user, --additional-gids, --env and --cwd, and HOME
// from the container's /etc/passwd when the env has none.
func TestExecUserEnvCwd(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, func(s *specs.Spec) {
		var env []string
		for _, kv := range s.Process.Env {
			if !strings.HasPrefix(kv, "HOME=") {
				env = append(env, kv)
			}
		}
		s.Process.Env = env
	})
	script := `echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "groups=$(id -G)"; echo "foo=$FOO"; echo "cwd=$(pwd)"; echo "home=$HOME"`
	r := e.cliOK("exec", "--user", "1000:1001", "--additional-gids", "10", "-e", "FOO=bar baz", "--cwd", "/tmp", id, "sh", "-c", script)
	kv := keyValues(r.stdout)
	wantKV(t, kv, "uid", "1000")
	wantKV(t, kv, "gid", "1001")
	wantKVFields(t, kv, "groups", "1001 10")
	wantKV(t, kv, "foo", "bar baz")
	wantKV(t, kv, "cwd", "/tmp")
	wantKV(t, kv, "home", "/")
	kv = keyValues(e.cliOK("exec", id, "sh", "-c", script).stdout)
	wantKV(t, kv, "uid", "0")
	wantKV(t, kv, "home", "/root")
}

// TestExecStoppedContainer: exec in a stopped container fails with runc's
// words, on one line.
func TestExecStoppedContainer(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"true"}, nil))
	e.cliOK("start", id)
	e.waitStopped(id)
	r := e.cliRun("exec", id, "true")
	wantCLIError(t, "exec in a stopped container", r, "cannot exec in a stopped container")
	e.cliOK("delete", id)
}

// TestExecMissingBinary: a program that is not there fails with runc's
// first line (Go's exec.LookPath words, `exec: "<path>": stat <path>: no
// such file or directory`), and exit 255; an execve that fails says
// `exec <path>: no such file or directory`.
func TestExecMissingBinary(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	script := filepath.Join(e.bundleOf(id), "rootfs", "run.sh")
	if err := os.WriteFile(script, []byte("#!/mmnnttbb foo bar\nsh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.cliRun("exec", id, "/no/such/prog")
	wantCLIError(t, "exec of a missing path", r, `exec: "/no/such/prog": stat /no/such/prog: no such file or directory`)
	if r.code != 255 {
		t.Errorf("exit %d, want 255", r.code)
	}
	// A script whose interpreter is missing fails at the execve, also
	// with a terminal (runc's "execve error" case).
	r = e.cliRun("exec", "-t", id, "/run.sh")
	wantCLIError(t, "exec -t of a script with a missing interpreter", r, "exec /run.sh: no such file or directory")
	r = e.cliRun("exec", id, "no-such-prog")
	wantCLIError(t, "exec of a missing command", r, `exec: "no-such-prog": executable file not found in $PATH`)
	// The container is unharmed.
	if e.state(id).Status != "running" {
		t.Errorf("container not running after failed execs")
	}
}

// TestExecUserNamespace: exec into a container with a user and a time
// namespace (joined before the Go runtime starts) runs as the container's
// root, with the container's clocks.
func TestExecUserNamespace(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, func(s *specs.Spec) {
		mapUser(s)
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 10 * 86400}}
	})
	initPid := e.state(id).Pid
	kv := keyValues(e.cliOK("exec", id, "sh", "-c", `echo "uid=$(id -u)"; echo "map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"; echo "file=$(cat /only-here)"; echo "uptime=$(cat /proc/uptime)"`).stdout)
	wantKV(t, kv, "uid", "0")
	wantKV(t, kv, "map", "0 100000 65536")
	wantKV(t, kv, "file", "rootfs-marker")
	if up := uptime(t, kv["uptime"]); up < 10*86400 {
		t.Errorf("exec'd process's uptime %v, want the container's, ten days ahead", up)
	}
	pid := execDetached(t, e, id, "sleep", "999")
	for _, ns := range []string{"user", "time", "mnt", "pid"} {
		if !sameNS(t, pid, initPid, ns) {
			t.Errorf("exec'd process is not in the init's %s namespace", ns)
		}
	}
	if st := procStatus(t, pid); strings.Fields(st["Uid"])[0] != "100000" {
		t.Errorf("exec'd process's host uid %q, want 100000", st["Uid"])
	}
}

// TestExecTTYConsoleSocket: exec --tty --detach sends the pty master to
// --console-socket, and the process runs on the slave.
func TestExecTTYConsoleSocket(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	sock, masters := e.consoleSocket()
	e.cliOK("exec", "--tty", "--detach", "--console-socket", sock, id, "sh", "-c", "echo tty=$(tty); read line; echo got=$line")
	master, ok := <-masters
	if !ok {
		t.Fatal("no pty master arrived on the console socket")
	}
	t.Cleanup(func() { master.Close() })
	u := &userTerminal{t: t, master: master}
	u.expect(line(`tty=/dev/pts/\d+`))
	u.write("over the pty\n")
	u.expect(line(`got=over the pty`))
	wantCLIError(t, "exec --console-socket without --detach", e.cliRun("exec", "--tty", "--console-socket", sock, id, "true"), "cannot use console socket")
	wantCLIError(t, "exec -t -d without a console socket", e.cliRun("exec", "-t", "-d", id, "true"), "cannot allocate tty")
}

// TestExecTTYForeground: exec --tty in the foreground: crier holds the pty
// master and proxies it; the process's exit status is crier's.
func TestExecTTYForeground(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	p := e.cliStart(func(c *exec.Cmd) { c.Stdin = strings.NewReader("typed\n") }, "exec", "--tty", id, "sh", "-c", "echo tty=$(tty); read line; echo got=$line; exit 3")
	r := p.wait()
	if r.code != 3 {
		t.Errorf("exec --tty exit %d, want 3 (stderr %q)", r.code, r.stderr)
	}
	kv := keyValues(strings.ReplaceAll(r.stdout, "\r", ""))
	if !strings.HasPrefix(kv["tty"], "/dev/pts/") {
		t.Errorf("tty %q, want a pty of the container (output %q)", kv["tty"], r.stdout)
	}
	wantKV(t, kv, "got", "typed")
}

// TestExecWithoutPidNamespace: in a container that shares the host's pid
// namespace the shim is the subreaper of its orphans and reaps with
// wait4(-1); an exec'd process's status still reaches its exec, and the
// process is chrooted into the container's root when it shares nothing.
func TestExecWithoutPidNamespace(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, func(s *specs.Spec) {
		dropNamespace(s, specs.PIDNamespace)
	})
	for i := 0; i < 3; i++ {
		r := e.cliRun("exec", id, "sh", "-c", "cat /only-here; sh -c 'sleep 0 &'; exit 4")
		if r.code != 4 || r.stdout != "rootfs-marker\n" {
			t.Errorf("exec: exit %d stdout %q, want 4 and the rootfs's file", r.code, r.stdout)
		}
	}
}

// TestExecCreatedContainer: as runc, exec runs in a created container,
// whose init waits for start.
func TestExecCreatedContainer(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "1000"}, nil))
	r := e.cliRun("exec", id, "sh", "-c", "echo created; exit 2")
	if r.code != 2 || r.stdout != "created\n" {
		t.Errorf("exec in created: exit %d stdout %q stderr %q, want 2 and \"created\"", r.code, r.stdout, r.stderr)
	}
	if st := e.state(id).Status; st != "created" {
		t.Errorf("status %q after exec, want created: exec moves nothing", st)
	}
}

// TestExecPreserveFDs: --preserve-fds passes the CLI's descriptor 3 to the
// process as its 3.
func TestExecPreserveFDs(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	out := filepath.Join(e.dir, "fd3.out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := e.cliStart(func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} }, "exec", "--preserve-fds", "1", id, "sh", "-c", "echo via-fd3 >&3")
	p.waitOK()
	if got := readFile(t, out); got != "via-fd3" {
		t.Errorf("fd 3 got %q, want \"via-fd3\"", got)
	}
}

// TestExecSignalForwarded: a signal to a foreground exec reaches the
// process.
func TestExecSignalForwarded(t *testing.T) {
	e := newEnv(t)
	id := execTarget(t, e, nil)
	p, out := e.cliStartPiped("exec", id, "sh", "-c", `trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done`)
	if l := out.line(t); l != "ready" {
		t.Fatalf("exec printed %q, want ready", l)
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	if r := p.wait(); r.code != 7 {
		t.Errorf("exec after SIGTERM: exit %d, want the trap's 7 (stderr %q)", r.code, r.stderr)
	}
}

// bundleOf returns the bundle of container id.
func (e *env) bundleOf(id string) string {
	e.t.Helper()
	return e.state(id).Bundle
}

// TestExecConcurrent: execs at once each get their own process's status,
// the container's among them untouched.
func TestExecConcurrent(t *testing.T) {
	for _, pidns := range []bool{true, false} {
		t.Run("pidns="+strconv.FormatBool(pidns), func(t *testing.T) {
			e := newEnv(t)
			id := execTarget(t, e, func(s *specs.Spec) {
				if !pidns {
					dropNamespace(s, specs.PIDNamespace)
				}
			})
			var procs []*cliProc
			for i := 0; i < 12; i++ {
				procs = append(procs, e.cliStart(nil, "exec", id, "sh", "-c", "exit "+strconv.Itoa(i+1)))
			}
			for i, p := range procs {
				if r := p.wait(); r.code != i+1 {
					t.Errorf("exec %d: exit %d, want %d (stderr %q)", i, r.code, i+1, r.stderr)
				}
			}
			if st := e.state(id).Status; st != "running" {
				t.Errorf("container %s after the execs, want running", st)
			}
		})
	}
}

// TestExecWithoutMountNamespace: a container that shares the host's mount
// namespace is chrooted into its rootfs; so is an exec'd process. Its
// rootfs is bound in the host's mount namespace and stays so, as with runc
// (TestParityHostMountNamespace): the test unmounts it.
func TestExecWithoutMountNamespace(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		dropNamespace(s, specs.MountNamespace)
		s.Mounts = nil
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	})
	if err := os.WriteFile(filepath.Join(b, "rootfs", "only-here"), []byte("rootfs-marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("umount", "-R", "-l", filepath.Join(b, "rootfs")).Run() })
	e.create(id, b)
	e.cliOK("start", id)
	r := e.cliRun("exec", id, "sh", "-c", "cat /only-here; exit 6")
	if r.code != 6 || r.stdout != "rootfs-marker\n" {
		t.Errorf("exec: exit %d stdout %q stderr %q, want 6 and the rootfs's file", r.code, r.stdout, r.stderr)
	}
}
