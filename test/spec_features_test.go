package test

// Integration tests for the config features of issue 3 on real busybox
// containers: namespaces joined by path, linux.devices and the device
// cgroup, a terminal over a console socket, sysctls, and the config errors
// and lifecycle rules the runtime spec asks for. No test waits on time: they
// wait on events, pipes and pids.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// ---------------------------------------------------------------------------
// Helpers.

// sfHolder is a helper process that owns namespaces a container joins. It
// runs `unshare ARGS -- sh -c 'SETUP && exec cat'`: cat echoes what the test
// writes, so one round trip proves that the setup is done and the holder is
// in place, and closing its stdin ends it.
type sfHolder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	// pid is the process in the new namespaces: unshare itself, or with
	// --fork its child.
	pid int
}

func sfStartHolder(t *testing.T, unshareArgs []string, setup string) *sfHolder {
	t.Helper()
	script := "exec cat"
	if setup != "" {
		script = setup + " && exec cat"
	}
	args := append(append([]string{}, unshareArgs...), "--", "sh", "-c", script)
	cmd := exec.Command("unshare", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	h := &sfHolder{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out), pid: cmd.Process.Pid}
	t.Cleanup(func() {
		h.stdin.Close()
		if exited, _ := waitOrKill(cmd); !exited {
			t.Errorf("namespace holder %v did not end when its stdin closed", args)
		}
	})
	ready := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(stdin, "ping\n"); err != nil {
			ready <- err
			return
		}
		line, err := h.stdout.ReadString('\n')
		if err == nil && line != "ping\n" {
			err = fmt.Errorf("echoed %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(hangDeadline):
		err = errors.New("no answer")
	}
	if err != nil {
		t.Fatalf("namespace holder unshare %v: %v; stderr %q", args, err, stderr.String())
	}
	if slices.Contains(unshareArgs, "--fork") {
		children := readFile(t, fmt.Sprintf("/proc/%d/task/%d/children", h.pid, h.pid))
		f := strings.Fields(children)
		if len(f) != 1 {
			t.Fatalf("unshare --fork has children %q, want one", children)
		}
		if _, err := fmt.Sscan(f[0], &h.pid); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// nsPath is the holder's namespace file of the given /proc/PID/ns name.
func (h *sfHolder) nsPath(name string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", h.pid, name)
}

// sfNsID returns a namespace file's identity as readlink of /proc/*/ns/*
// shows it, such as "net:[4026532288]", for any file that refers to a
// namespace (a /proc link or a bind mount of one like /var/run/netns/NAME).
func sfNsID(t *testing.T, kind, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino)
}

// sfJoin makes the config join the namespace of type typ at path instead of
// making a new one.
func sfJoin(s *specs.Spec, typ specs.LinuxNamespaceType, path string) {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: path})
}

// sfDevicesList returns the device cgroup's devices.list of container id.
func sfDevicesList(t *testing.T, id string) []string {
	t.Helper()
	return strings.Split(readFile(t, filepath.Join("/sys/fs/cgroup/devices", id, "devices.list")), "\n")
}

// TestSpecFeatureNewNetwork: a container with a new network namespace (made
// ahead of init's fork, see container.netNSAhead) has a namespace of its
// own, with nothing in it but a loopback that is down.
func TestSpecFeatureNewNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", `echo ns_net=$(readlink /proc/self/ns/net)
echo links=$(ls /sys/class/net | sort | tr '\n' ' ')
echo lo=$(cat /sys/class/net/lo/operstate)`}, nil)
	_, kv := e.runOK(e.id(), b, nil)
	if host := sfNsID(t, "net", "/proc/self/ns/net"); kv["ns_net"] == host || kv["ns_net"] == "" {
		t.Errorf("ns_net = %q, want a new one (the host's is %s)", kv["ns_net"], host)
	}
	wantKVFields(t, kv, "links", "lo")
	wantKV(t, kv, "lo", "down")
}

// ---------------------------------------------------------------------------
// Namespaces joined by path.

// TestSpecFeatureJoinNetwork: a container that joins a network namespace by
// path sees that namespace's links and addresses, whether the path is a
// named netns of `ip netns` or a process's /proc/PID/ns/net.
func TestSpecFeatureJoinNetwork(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (apt-get install iproute2)")
	}
	script := `echo ns_net=$(readlink /proc/self/ns/net)
echo links=$(ls /sys/class/net | sort | tr '\n' ' ')
echo devs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')
ip addr`
	t.Run("netns", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		name := "crier-test-" + e.id()
		ip := func(args ...string) {
			t.Helper()
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		ip("netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
		ip("-n", name, "link", "set", "lo", "up")
		ip("-n", name, "addr", "add", "127.0.0.77/8", "dev", "lo")
		ip("-n", name, "link", "add", "sfv0", "type", "veth", "peer", "name", "sfv1")
		ip("-n", name, "addr", "add", "10.199.7.3/24", "dev", "sfv0")
		path := filepath.Join("/var/run/netns", name)
		b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) { sfJoin(s, specs.NetworkNamespace, path) })
		out, kv := e.runOK(e.id(), b, nil)
		wantKV(t, kv, "ns_net", sfNsID(t, "net", path))
		wantKV(t, kv, "links", "lo sfv0 sfv1")
		wantKV(t, kv, "devs", "lo sfv0 sfv1")
		for _, addr := range []string{"127.0.0.77/8", "10.199.7.3/24"} {
			if !strings.Contains(out, "inet "+addr) {
				t.Errorf("ip addr in the container does not show %s", addr)
			}
		}
	})
	t.Run("proc", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		h := sfStartHolder(t, []string{"--net"}, "ip link set lo up && ip addr add 127.0.0.78/8 dev lo && ip link add sfw0 type veth peer name sfw1")
		b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) { sfJoin(s, specs.NetworkNamespace, h.nsPath("net")) })
		out, kv := e.runOK(e.id(), b, nil)
		wantKV(t, kv, "ns_net", sfNsID(t, "net", h.nsPath("net")))
		wantKV(t, kv, "links", "lo sfw0 sfw1")
		if !strings.Contains(out, "inet 127.0.0.78/8") {
			t.Errorf("ip addr in the container does not show 127.0.0.78/8")
		}
	})
}

// TestSpecFeatureJoinUTS: a container that joins a uts namespace by path
// has that namespace's hostname, and leaves it as it was.
func TestSpecFeatureJoinUTS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hostname := "held-" + e.id()
	h := sfStartHolder(t, []string{"--uts"}, "hostname "+hostname)
	kv := e.runScript(`echo hostname=$(hostname); echo ns_uts=$(readlink /proc/self/ns/uts)`, func(s *specs.Spec) {
		s.Hostname = "" // the joined namespace keeps its own name
		sfJoin(s, specs.UTSNamespace, h.nsPath("uts"))
	})
	wantKV(t, kv, "hostname", hostname)
	wantKV(t, kv, "ns_uts", sfNsID(t, "uts", h.nsPath("uts")))
	if host, _ := os.Hostname(); host == hostname {
		t.Errorf("the host's hostname became %q", host)
	}
	// The holder still has its name.
	if out, err := exec.Command("nsenter", "--uts="+h.nsPath("uts"), "hostname").Output(); err != nil || strings.TrimSpace(string(out)) != hostname {
		t.Errorf("hostname in the joined namespace after the container: %q, %v; want %s", out, err, hostname)
	}
}

// TestSpecFeatureJoinIPC: a container that joins an ipc namespace by path
// sees the message queue made in it.
func TestSpecFeatureJoinIPC(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ipcmk"); err != nil {
		t.Skip("no ipcmk (util-linux)")
	}
	e := newEnv(t)
	h := sfStartHolder(t, []string{"--ipc"}, "ipcmk -Q >/dev/null")
	kv := e.runScript(`echo ns_ipc=$(readlink /proc/self/ns/ipc)
echo queues=$(tail -n +2 /proc/sysvipc/msg | wc -l)`, func(s *specs.Spec) {
		sfJoin(s, specs.IPCNamespace, h.nsPath("ipc"))
	})
	wantKV(t, kv, "ns_ipc", sfNsID(t, "ipc", h.nsPath("ipc")))
	wantKV(t, kv, "queues", "1")
}

// TestSpecFeatureJoinPID: a container that joins a pid namespace by path is
// not its pid 1 but sees the holder there.
func TestSpecFeatureJoinPID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := sfStartHolder(t, []string{"--pid", "--fork"}, "")
	kv := e.runScript(`echo pid=$$
echo ns_pid=$(readlink /proc/self/ns/pid)
echo pid1=$(cat /proc/1/cmdline)
echo procs=$(ls /proc | grep -c '^[0-9]*$')`, func(s *specs.Spec) {
		sfJoin(s, specs.PIDNamespace, h.nsPath("pid"))
	})
	nsID := sfNsID(t, "pid", h.nsPath("pid"))
	wantKV(t, kv, "ns_pid", nsID)
	if kv["pid"] == "" || kv["pid"] == "1" {
		t.Errorf("the container's pid in the joined namespace is %q, want one above 1", kv["pid"])
	}
	wantKV(t, kv, "pid1", "cat") // the holder, exec'd into cat
	if host, _ := os.Readlink("/proc/self/ns/pid"); nsID == host {
		t.Fatalf("the holder is in the host's pid namespace %s", host)
	}
	// The holder and the shell, and ls and its pipe peers: never the host's
	// hundreds.
	if kv["procs"] == "" || len(kv["procs"]) > 1 {
		t.Errorf("the container sees %q processes", kv["procs"])
	}
}

// TestSpecFeatureJoinCgroup: a container that joins a cgroup namespace by
// path is in it.
func TestSpecFeatureJoinCgroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := sfStartHolder(t, []string{"--cgroup"}, "")
	kv := e.runScript(`echo ns_cgroup=$(readlink /proc/self/ns/cgroup)`, func(s *specs.Spec) {
		sfJoin(s, specs.CgroupNamespace, h.nsPath("cgroup"))
	})
	wantKV(t, kv, "ns_cgroup", sfNsID(t, "cgroup", h.nsPath("cgroup")))
}

// ---------------------------------------------------------------------------
// Devices.

// TestSpecFeatureDevices: linux.devices entries appear with their type,
// numbers, mode and owner; the config's rules decide whether they may be
// used (as in runc, a linux.devices entry adds no rule: here the config
// allows 10:229, and 1:3 is among the default rules), and their mode is
// what decides who may open them.
func TestSpecFeatureDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	mode := func(m os.FileMode) *os.FileMode { return &m }
	u32 := func(n uint32) *uint32 { return &n }
	script := `echo fuse=$(stat -c '%t %T %a %F %u %g' /dev/fuse)
echo null2=$(stat -c '%t %T %a %F %u %g' /dev/crier/null2)
echo fuse_open=$(exec 3<>/dev/fuse && echo ok)
echo null2_write=$( (echo x >/dev/crier/null2) 2>&1 && echo ok)
echo null_write=$(echo x >/dev/null && echo ok)`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.Devices = []specs.LinuxDevice{
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o666), UID: u32(0), GID: u32(0)},
			{Path: "/dev/crier/null2", Type: "c", Major: 1, Minor: 3, FileMode: mode(0o640), UID: u32(12), GID: u32(34)},
		}
		ten, fuse := int64(10), int64(229)
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
			specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &ten, Minor: &fuse, Access: "rwm"})
	})
	if s := e.specFor(t.TempDir()); len(s.Linux.Resources.Devices) != 1 || s.Linux.Resources.Devices[0].Allow {
		t.Fatalf("crier spec's device rules are %+v, want deny all", s.Linux.Resources.Devices)
	}
	_, kv := e.runOK(id, b, func() {
		list := sfDevicesList(t, id)
		t.Logf("devices.list: %q", list)
		for _, want := range []string{"c 10:229 rwm", "c 1:3 rwm"} {
			if !slices.Contains(list, want) {
				t.Errorf("devices.list has no %q: %q", want, list)
			}
		}
		if slices.Contains(list, "a *:* rwm") {
			t.Errorf("devices.list allows everything: %q", list)
		}
	})
	wantKV(t, kv, "fuse", "a e5 666 character special file 0 0")
	wantKV(t, kv, "null2", "1 3 640 character special file 12 34")
	wantKV(t, kv, "fuse_open", "ok")
	// 0640 and owned by 12:34: the container's root, without
	// CAP_DAC_OVERRIDE, may not write it, as it may /dev/null.
	if !strings.Contains(kv["null2_write"], "Permission denied") {
		t.Errorf("writing /dev/crier/null2 (0640, 12:34) as root without CAP_DAC_OVERRIDE: %q, want Permission denied", kv["null2_write"])
	}
	wantKV(t, kv, "null_write", "ok")
}

// TestSpecFeatureDeviceCgroup: with the deny-all rule `crier spec` writes,
// the default devices work but a block device node the image ships (8:0,
// like /dev/sda) cannot be opened: EPERM from the device cgroup. The same
// node with an allow rule for 8:0 gets past the cgroup to the kernel, which
// answers ENXIO as this host has no such disk: so the EPERM is the cgroup's.
func TestSpecFeatureDeviceCgroup(t *testing.T) {
	t.Parallel()
	script := `echo null_read=$(cat /dev/null && echo ok)
echo null_write=$(echo x > /dev/null && echo ok)
echo zero=$(head -c 3 /dev/zero | wc -c)
echo node=$(stat -c '%F %t:%T' /blk8)
echo open=$(cat /blk8 2>&1 >/dev/null)`
	for _, allow := range []bool{false, true} {
		name := "deny"
		if allow {
			name = "allow-8:0"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
				if allow {
					eight, zero := int64(8), int64(0)
					s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
						specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: &eight, Minor: &zero, Access: "r"})
				}
			})
			// Not in /dev, which is a tmpfs in the container.
			if err := unix.Mknod(filepath.Join(b, "rootfs", "blk8"), unix.S_IFBLK|0o666, int(unix.Mkdev(8, 0))); err != nil {
				t.Fatal(err)
			}
			_, kv := e.runOK(id, b, func() {
				list := sfDevicesList(t, id)
				t.Logf("devices.list: %q", list)
				if !slices.Contains(list, "c 1:3 rwm") {
					t.Errorf("devices.list does not allow /dev/null: %q", list)
				}
				has := slices.ContainsFunc(list, func(l string) bool { return strings.HasPrefix(l, "b 8:0 ") || strings.HasPrefix(l, "a ") })
				if has != allow {
					t.Errorf("devices.list allows block 8:0 = %v, want %v: %q", has, allow, list)
				}
			})
			wantKV(t, kv, "null_read", "ok")
			wantKV(t, kv, "null_write", "ok")
			wantKV(t, kv, "zero", "3")
			wantKV(t, kv, "node", "block special file 8:0")
			want := "Operation not permitted"
			if allow {
				want = "No such device or address"
			}
			if !strings.Contains(kv["open"], want) {
				t.Errorf("opening the 8:0 node: %q, want %q", kv["open"], want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Terminal.

// TestSpecFeatureTerminalConsoleSocket: with process.terminal and
// --console-socket, create sends the pty master over SCM_RIGHTS; the
// process runs on the slave, and its output and exit status come through.
func TestSpecFeatureTerminalConsoleSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	sock := filepath.Join(e.dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetDeadline(time.Now().Add(hangDeadline))
	type received struct {
		data string
		fds  []int
		err  error
	}
	got := make(chan received, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- received{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(hangDeadline))
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- received{err: err}
			return
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		var fds []int
		for i := 0; err == nil && i < len(msgs); i++ {
			var f []int
			f, err = syscall.ParseUnixRights(&msgs[i])
			fds = append(fds, f...)
		}
		got <- received{data: string(buf[:n]), fds: fds, err: err}
	}()

	b := e.bundle([]string{"sh", "-c", "tty; echo hello; exit 3"}, func(s *specs.Spec) { s.Process.Terminal = true })
	createOut := e.create(id, b, "--console-socket", sock)
	r := <-got
	for _, fd := range r.fds[min(1, len(r.fds)):] {
		unix.Close(fd)
	}
	if r.err != nil || len(r.fds) != 1 {
		t.Fatalf("console socket: %v, %d descriptors (data %q), want one", r.err, len(r.fds), r.data)
	}
	t.Logf("console socket message %q", r.data)
	ptn, err := unix.IoctlGetInt(r.fds[0], unix.TIOCGPTN)
	if err != nil {
		unix.Close(r.fds[0])
		t.Fatalf("the descriptor received is not a pty master: TIOCGPTN: %v", err)
	}
	if err := unix.SetNonblock(r.fds[0], true); err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(r.fds[0]), "ptmx")
	defer master.Close()

	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	master.SetReadDeadline(time.Now().Add(hangDeadline))
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), "hello\r\n") {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Errorf("reading the pty master: %v", err)
			break
		}
	}
	t.Logf("terminal output %q", out.String())
	ev := next(t, sub, protocol.EventStopped)
	wantExit(t, ev, 3, "")
	e.cliOK("delete", id)
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(out.String(), "\r\n", "\n")), "\n")
	if want := []string{fmt.Sprintf("/dev/pts/%d", ptn), "hello"}; !slices.Equal(lines, want) {
		t.Errorf("terminal output lines %q, want %q", lines, want)
	}
	if b, _ := os.ReadFile(createOut); strings.Contains(string(b), "hello") {
		t.Errorf("the process wrote to create's stdio, not the terminal: %q", b)
	}
}

// TestSpecFeatureTerminalNoSocket: process.terminal without
// --console-socket fails create with one line and leaves nothing.
func TestSpecFeatureTerminalNoSocket(t *testing.T) {
	t.Parallel()
	wantCreateFails(t, func(s *specs.Spec) { s.Process.Terminal = true }, "console")
}

// ---------------------------------------------------------------------------
// Sysctl.

// TestSpecFeatureSysctl: a sysctl of the container's network namespace is
// set in it and not on the host.
func TestSpecFeatureSysctl(t *testing.T) {
	t.Parallel()
	const file = "/proc/sys/net/ipv4/ip_forward"
	host := readFile(t, file)
	if host == "1" {
		t.Logf("the host already forwards: the test shows less")
	}
	e := newEnv(t)
	kv := e.runScript("echo ip_forward=$(cat "+file+")", func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	})
	wantKV(t, kv, "ip_forward", "1")
	if after := readFile(t, file); after != host {
		t.Errorf("host %s changed from %s to %s", file, host, after)
	}
}

// TestSpecFeatureSysctlErrors: a sysctl that is not namespaced, or whose
// namespace the container does not have, fails create with one line.
func TestSpecFeatureSysctlErrors(t *testing.T) {
	t.Parallel()
	t.Run("kernel.panic", func(t *testing.T) {
		t.Parallel()
		before := readFile(t, "/proc/sys/kernel/panic")
		wantCreateFails(t, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.panic": "17"} }, "kernel.panic")
		if after := readFile(t, "/proc/sys/kernel/panic"); after != before {
			t.Errorf("host kernel.panic changed from %s to %s", before, after)
		}
	})
	t.Run("net-without-netns", func(t *testing.T) {
		t.Parallel()
		wantCreateFails(t, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
				return ns.Type == specs.NetworkNamespace
			})
		}, "net.ipv4.ip_forward")
	})
}

// ---------------------------------------------------------------------------
// Config errors.

// TestSpecFeatureBadNamespaces: an unknown namespace type and one given
// twice each fail create with one line.
func TestSpecFeatureBadNamespaces(t *testing.T) {
	t.Parallel()
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		wantCreateFails(t, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "foo"})
		}, "foo")
	})
	t.Run("duplicate", func(t *testing.T) {
		t.Parallel()
		wantCreateFails(t, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
		}, "network")
	})
	t.Run("duplicate-with-path", func(t *testing.T) {
		t.Parallel()
		wantCreateFails(t, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: "/proc/self/ns/uts"})
		}, "uts")
	})
}

// ---------------------------------------------------------------------------
// Lifecycle.

// TestSpecFeatureNoProcess: a config without process can be created; start
// fails with one line, the container then stops, and delete removes it.
func TestSpecFeatureNoProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	b := e.bundle(nil, func(s *specs.Spec) { s.Process = nil })
	e.create(id, b)
	sub := e.subscribe(id, true)
	created := next(t, sub, protocol.EventCreated)
	if st := e.state(id); st.Status != protocol.StatusCreated || st.Pid != created.Pid {
		t.Errorf("state after create: %+v", st)
	}
	wantCLIError(t, "start without a process", e.cliRun("start", id), "process")
	ev := next(t, sub, protocol.EventStopped)
	t.Logf("stopped: %+v", ev)
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("status after the failed start = %q, want stopped", st.Status)
	}
	if processAlive(created.Pid) {
		t.Errorf("init %d still alive after stopped", created.Pid)
	}
	wantCLIError(t, "second start", e.cliRun("start", id))
	e.cliOK("delete", id)
	next(t, sub, protocol.EventDeleted)
	e.assertGone(id)
}

// sfSnapshot is what a refused operation must leave as it was.
type sfSnapshot struct {
	state    string   // `crier state` output
	files    []string // the state directory's entries
	cgroups  []string // the container's cgroup directories
	procs    string   // the pids cgroup's members
	shimPid  int
	shimLive bool
}

func sfSnap(t *testing.T, e *env, id string) sfSnapshot {
	t.Helper()
	s := sfSnapshot{state: e.cliOK("state", id).stdout, cgroups: cgroupDirsOf(id)}
	ents, err := os.ReadDir(filepath.Join(e.root, id))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		s.files = append(s.files, ent.Name())
	}
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", id, "cgroup.procs")); err == nil {
		s.procs = string(b)
	}
	st := e.shimState(id)
	s.shimPid, s.shimLive = st.ShimPid, processAlive(st.ShimPid)
	return s
}

// TestSpecFeatureDeleteNotStopped: delete of a created or running container
// fails with one line and changes nothing: state, files, cgroups, members,
// shim.
func TestSpecFeatureDeleteNotStopped(t *testing.T) {
	t.Parallel()
	for _, status := range []protocol.Status{protocol.StatusCreated, protocol.StatusRunning} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			// The container's stdin is /dev/null: it idles in sleep, killed below.
			r := e.createPiped(id, e.bundle([]string{"sh", "-c", "echo ready; exec sleep 100000"}, nil))
			sub := e.subscribe(id, true)
			pid := next(t, sub, protocol.EventCreated).Pid
			if status == protocol.StatusRunning {
				e.cliOK("start", id)
				next(t, sub, protocol.EventStarted)
				r.until(t, "ready")
			}
			before := sfSnap(t, e, id)
			if len(before.cgroups) == 0 || !strings.Contains(before.procs, fmt.Sprint(pid)) || !before.shimLive {
				t.Fatalf("before delete: %+v (pid %d)", before, pid)
			}
			wantCLIError(t, "delete of a "+string(status)+" container", e.cliRun("delete", id), string(status))
			after := sfSnap(t, e, id)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the refused delete changed things:\nbefore %+v\nafter  %+v", before, after)
			}
			if !processAlive(pid) {
				t.Errorf("container process %d died", pid)
			}
			if status == protocol.StatusCreated {
				e.cliOK("start", id) // still usable
				next(t, sub, protocol.EventStarted)
			}
			e.cliOK("kill", id, "KILL")
			next(t, sub, protocol.EventStopped)
			e.cliOK("delete", id)
			e.assertGone(id)
		})
	}
}

// TestSpecFeatureKillStopped: kill of a stopped container fails with one
// line, for a container whose process exited and one that never started
// (start without a process), and changes nothing.
func TestSpecFeatureKillStopped(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"exited", "no-process"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			var b string
			if how == "exited" {
				b = e.bundle([]string{"sh", "-c", "exit 5"}, nil)
			} else {
				b = e.bundle(nil, func(s *specs.Spec) { s.Process = nil })
			}
			e.create(id, b)
			sub := e.subscribe(id, true)
			e.cliRun("start", id) // fails without a process; it stops all the same
			ev := next(t, sub, protocol.EventStopped)
			if how == "exited" {
				wantExit(t, ev, 5, "")
			}
			before := sfSnap(t, e, id)
			for _, args := range [][]string{{"kill", id, "KILL"}, {"kill", id, "TERM"}, {"kill", "--all", id, "KILL"}} {
				wantCLIError(t, strings.Join(args, " "), e.cliRun(args...), "stopped", "not running")
			}
			if after := sfSnap(t, e, id); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the refused kill changed things:\nbefore %+v\nafter  %+v", before, after)
			}
			if !regexp.MustCompile(`"status": *"stopped"`).MatchString(before.state) {
				t.Errorf("state is not stopped: %s", before.state)
			}
			e.cliOK("delete", id)
			e.assertGone(id)
		})
	}
}
