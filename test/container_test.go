package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/protocol"
)

// hostDir makes a directory anyone can use under the test's files.
func (e *env) hostDir(name string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	if err := os.Mkdir(dir, 0o777); err != nil {
		e.t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	return dir
}

// ---------------------------------------------------------------------------
// Namespaces.

// TestContainerNamespaces: the container has the hostname from its config,
// is pid 1 of its own pid namespace, and every namespace it asks for is new.
func TestContainerNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `echo hostname=$(hostname); echo pid=$$; echo ppid=$PPID
for ns in pid uts ipc net mnt cgroup user; do echo ns_$ns=$(readlink /proc/self/ns/$ns); done
echo links=$(ls /sys/class/net | tr '\n' ' ')`
	cgroupNSByDefault := slices.ContainsFunc(e.specFor(t.TempDir()).Linux.Namespaces,
		func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace })
	kv := e.runScript(script, func(s *specs.Spec) { s.Hostname = "crier-ns-test" })
	wantKV(t, kv, "hostname", "crier-ns-test")
	wantKV(t, kv, "pid", "1")
	wantKV(t, kv, "ppid", "0")
	wantKV(t, kv, "links", "lo")
	for _, ns := range []string{"pid", "uts", "ipc", "net", "mnt", "cgroup", "user"} {
		host, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		inside := kv["ns_"+ns]
		if inside == "" {
			t.Errorf("container printed no %s namespace", ns)
			continue
		}
		// The default config has no user namespace: that one is shared;
		// nor, on a v1 or hybrid host, a cgroup namespace (as runc's).
		shared := ns == "user" || (ns == "cgroup" && !cgroupNSByDefault)
		if (inside == host) != shared {
			t.Errorf("%s namespace: container %s, host %s, want shared=%v", ns, inside, host, shared)
		}
	}
}

// TestContainerUserNamespace maps container root to host uid 100000: the
// container sees the mapping and runs as 0 inside, 100000 outside.
func TestContainerUserNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	script := `echo uid_map=$(cat /proc/self/uid_map); echo gid_map=$(cat /proc/self/gid_map)
echo uid=$(id -u); echo gid=$(id -g); echo ns_user=$(readlink /proc/self/ns/user)
touch /dev/shm/probe && echo write=ok
echo ready
exec sleep 1000`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
	if out, err := exec.Command("chown", "-R", "-h", "100000:100000", filepath.Join(b, "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("chown rootfs: %v: %s", err, out)
	}
	r := e.createPiped(id, b)
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	started := next(t, sub, protocol.EventStarted)
	out := r.until(t, "ready")
	t.Logf("container output:\n%s", out)
	status := readFile(t, fmt.Sprintf("/proc/%d/status", started.Pid))
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "Uid" || k == "Gid") {
			if f := strings.Fields(v); len(f) != 4 || f[0] != "100000" || f[1] != "100000" {
				t.Errorf("host view of the running container process: %s, want 100000", line)
			}
		}
	}
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	kv := keyValues(out)
	wantKVFields(t, kv, "uid_map", "0 100000 65536")
	wantKVFields(t, kv, "gid_map", "0 100000 65536")
	wantKV(t, kv, "uid", "0")
	wantKV(t, kv, "gid", "0")
	wantKV(t, kv, "write", "ok")
	if host, _ := os.Readlink("/proc/self/ns/user"); kv["ns_user"] == "" || kv["ns_user"] == host {
		t.Errorf("user namespace inside = %q, host %q: want a new one", kv["ns_user"], host)
	}
}

// ---------------------------------------------------------------------------
// Mounts.

// TestContainerBindMounts: a read-only bind of a host directory cannot be
// written from inside; a read-write one can, and the host sees it.
func TestContainerBindMounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ro := e.hostDir("ro")
	rw := e.hostDir("rw")
	os.WriteFile(filepath.Join(ro, "data"), []byte("from-host\n"), 0o644)
	script := `echo data=$(cat /mnt/ro/data)
if touch /mnt/ro/new 2>/dev/null; then echo ro_write=ok; else echo ro_write=fail; fi
if echo inside > /mnt/rw/new; then echo rw_write=ok; else echo rw_write=fail; fi`
	kv := e.runScript(script, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: ro, Options: []string{"rbind", "ro"}},
			specs.Mount{Destination: "/mnt/rw", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}})
	})
	wantKV(t, kv, "data", "from-host")
	wantKV(t, kv, "ro_write", "fail")
	wantKV(t, kv, "rw_write", "ok")
	if _, err := os.Stat(filepath.Join(ro, "new")); !os.IsNotExist(err) {
		t.Errorf("the container wrote through its read-only bind: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(rw, "new")); strings.TrimSpace(string(got)) != "inside" {
		t.Errorf("host sees %q through the read-write bind, want inside", got)
	}
}

// TestContainerTmpfsMount: a tmpfs gets its size and mode options.
func TestContainerTmpfsMount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `echo mount=$(grep ' /scratch ' /proc/self/mountinfo)
echo mode=$(stat -c %a /scratch)
if dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null; then echo fill=ok; else echo fill=full; fi`
	kv := e.runScript(script, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=1770", "nosuid"}})
	})
	m := kv["mount"]
	if !strings.Contains(m, " - tmpfs ") || !strings.Contains(m, "size=1024k") {
		t.Errorf("/scratch mount = %q, want a tmpfs with size=1024k", m)
	}
	wantKV(t, kv, "mode", "1770")
	wantKV(t, kv, "fill", "full")
}

// TestContainerMountSymlinkEscape: mount destinations that go through a
// symlink in the rootfs pointing outside it land inside the rootfs.
func TestContainerMountSymlinkEscape(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "crier-escape-" + e.id()
	src := e.hostDir("bind-src")
	host := []string{filepath.Join("/tmp", name), filepath.Join("/tmp", name+"-b")}
	for _, p := range host {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s exists before the test: %v", p, err)
		}
	}
	t.Cleanup(func() {
		for _, p := range host {
			os.RemoveAll(p)
		}
	})
	script := fmt.Sprintf(`echo tmpfs=$(grep -c ' /tmp/%[1]s ' /proc/self/mountinfo)
echo bind=$(grep -c ' /tmp/%[1]s-b ' /proc/self/mountinfo)
echo written > /escape/%[1]s/file && echo tmpfs_write=ok
echo written > /escape2/%[1]s-b/file && echo bind_write=ok`, name)
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/escape/" + name, Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			specs.Mount{Destination: "/escape2/" + name + "-b", Type: "bind", Source: src, Options: []string{"rbind", "rw"}})
	})
	rootfs := filepath.Join(b, "rootfs")
	if err := os.Symlink("/../../../../../tmp", filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../tmp", filepath.Join(rootfs, "escape2")); err != nil {
		t.Fatal(err)
	}
	got, ev := e.run(e.id(), b, func() {
		// While the container exists, its mounts are inside its rootfs.
		for _, p := range host {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("mount target %s was made on the host: %v", p, err)
			}
		}
		if ms := mountsMatching(name); len(ms) > 0 {
			t.Errorf("host mount table mentions %s: %v", name, ms)
		}
		for _, p := range []string{name, name + "-b"} {
			if fi, err := os.Stat(filepath.Join(rootfs, "tmp", p)); err != nil || !fi.IsDir() {
				t.Errorf("mount target %s not made inside the rootfs: %v", filepath.Join(rootfs, "tmp", p), err)
			}
		}
	})
	if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
		t.Errorf("container exited %+v", ev)
	}
	kv := keyValues(got)
	wantKV(t, kv, "tmpfs", "1")
	wantKV(t, kv, "bind", "1")
	wantKV(t, kv, "tmpfs_write", "ok")
	wantKV(t, kv, "bind_write", "ok")
	if b, _ := os.ReadFile(filepath.Join(src, "file")); strings.TrimSpace(string(b)) != "written" {
		t.Errorf("bind source got %q, want written", b)
	}
	for _, p := range host {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("host %s after the container: %v", p, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Root, masked and read-only paths.

// TestContainerReadonlyRoot: root.readonly decides whether / is writable.
func TestContainerReadonlyRoot(t *testing.T) {
	t.Parallel()
	for _, readonly := range []bool{true, false} {
		t.Run(fmt.Sprintf("readonly=%v", readonly), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			script := `if touch /probe 2>/dev/null; then echo write=ok; else echo write=fail; fi
echo tmpfs=$(touch /dev/shm/x && echo ok)`
			b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) { s.Root.Readonly = readonly })
			_, kv := e.runOK(e.id(), b, nil)
			want := "ok"
			if readonly {
				want = "fail"
			}
			wantKV(t, kv, "write", want)
			wantKV(t, kv, "tmpfs", "ok")
			_, err := os.Stat(filepath.Join(b, "rootfs", "probe"))
			if readonly != os.IsNotExist(err) {
				t.Errorf("rootfs/probe on the host: %v (readonly %v)", err, readonly)
			}
		})
	}
}

// TestContainerMaskedPaths: masked files read empty and masked directories
// look empty, for the default /proc entries and for paths in the rootfs.
func TestContainerMaskedPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `for f in /proc/kcore /proc/timer_list /proc/keys /secret-file; do
  if [ -e $f ]; then echo "bytes_$f=$(cat $f 2>/dev/null | wc -c)"; else echo "bytes_$f=absent"; fi
done
echo entries_secret=$(ls -A /secret-dir | wc -l)
echo entries_firmware=$(ls -A /sys/firmware | wc -l)
echo unmasked=$(cat /visible)`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/secret-file", "/secret-dir", "/does-not-exist")
	})
	rootfs := filepath.Join(b, "rootfs")
	os.WriteFile(filepath.Join(rootfs, "secret-file"), []byte("top secret\n"), 0o644)
	os.Mkdir(filepath.Join(rootfs, "secret-dir"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "secret-dir", "inner"), []byte("hidden\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "visible"), []byte("shown\n"), 0o644)
	_, kv := e.runOK(e.id(), b, nil)
	for _, f := range []string{"/proc/kcore", "/proc/timer_list", "/proc/keys", "/secret-file"} {
		want := "0"
		if _, err := os.Stat(f); err != nil && strings.HasPrefix(f, "/proc/") {
			want = "absent" // this kernel has no such file
		}
		wantKV(t, kv, "bytes_"+f, want)
	}
	wantKV(t, kv, "entries_secret", "0")
	wantKV(t, kv, "entries_firmware", "0")
	wantKV(t, kv, "unmasked", "shown")
	if got := readFile(t, filepath.Join(rootfs, "secret-file")); got != "top secret" {
		t.Errorf("masking changed the file on the host: %q", got)
	}
}

// TestContainerReadonlyPaths: readonlyPaths cannot be written, the rest of a
// writable root can.
func TestContainerReadonlyPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `if touch /data/new 2>/dev/null; then echo data_write=ok; else echo data_write=fail; fi
echo data=$(cat /data/file)
if touch /other 2>/dev/null; then echo other_write=ok; else echo other_write=fail; fi
if echo hacked > /proc/sys/kernel/hostname 2>/dev/null; then echo procsys_write=ok; else echo procsys_write=fail; fi
echo hostname=$(hostname)`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Root.Readonly = false
		s.Hostname = "ro-paths"
		s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/data")
	})
	rootfs := filepath.Join(b, "rootfs")
	os.Mkdir(filepath.Join(rootfs, "data"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "data", "file"), []byte("kept\n"), 0o644)
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "data_write", "fail")
	wantKV(t, kv, "data", "kept")
	wantKV(t, kv, "other_write", "ok")
	wantKV(t, kv, "procsys_write", "fail")
	wantKV(t, kv, "hostname", "ro-paths")
	if _, err := os.Stat(filepath.Join(rootfs, "data", "new")); !os.IsNotExist(err) {
		t.Errorf("rootfs/data/new exists on the host: %v", err)
	}
}

// ---------------------------------------------------------------------------
// The process.

// TestContainerProcessUser: uid, gid, additional gids, cwd, env and umask.
func TestContainerProcessUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	umask := uint32(0o027)
	script := `grep -E '^(Uid|Gid|Groups):' /proc/self/status | sed 's/:\t*/=/'
echo cwd=$(pwd); echo env="$CRIER_TEST"; echo umask=$(umask)
touch /dev/shm/f && echo fmode=$(stat -c %a /dev/shm/f)`
	kv := e.runScript(script, func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10, 20}, Umask: &umask}
		s.Process.Cwd = "/etc"
		s.Process.Env = append(s.Process.Env, "CRIER_TEST=hello  world")
	})
	wantKVFields(t, kv, "Uid", "1000 1000 1000 1000")
	wantKVFields(t, kv, "Gid", "1001 1001 1001 1001")
	wantKVFields(t, kv, "Groups", "10 20")
	wantKV(t, kv, "cwd", "/etc")
	wantKV(t, kv, "env", "hello  world")
	wantKV(t, kv, "umask", "0027")
	wantKV(t, kv, "fmode", "640")
}

// TestContainerProcessLimits: rlimits, oomScoreAdj and noNewPrivileges.
func TestContainerProcessLimits(t *testing.T) {
	t.Parallel()
	for _, nnp := range []bool{true, false} {
		t.Run(fmt.Sprintf("noNewPrivileges=%v", nnp), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			oom := 500
			script := `echo nofile=$(ulimit -n); echo nofile_hard=$(ulimit -Hn)
echo oom=$(cat /proc/self/oom_score_adj)
grep NoNewPrivs /proc/self/status | sed 's/:\t*/=/'`
			kv := e.runScript(script, func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}}
				s.Process.OOMScoreAdj = &oom
				s.Process.NoNewPrivileges = nnp
			})
			wantKV(t, kv, "nofile", "123")
			wantKV(t, kv, "nofile_hard", "456")
			wantKV(t, kv, "oom", "500")
			want := "0"
			if nnp {
				want = "1"
			}
			wantKV(t, kv, "NoNewPrivs", want)
		})
	}
}

// TestContainerCapabilities: the process has exactly the configured sets.
func TestContainerCapabilities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status | sed 's/:\t*/=/'
if chown 1:1 /dev/shm 2>/dev/null; then echo chown=ok; else echo chown=fail; fi`
	caps := []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"}
	kv := e.runScript(script, func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	})
	const set = "0000000000000420" // CAP_KILL (5) | CAP_NET_BIND_SERVICE (10)
	wantKV(t, kv, "CapEff", set)
	wantKV(t, kv, "CapPrm", set)
	wantKV(t, kv, "CapBnd", set)
	wantKV(t, kv, "CapInh", "0000000000000000")
	wantKV(t, kv, "CapAmb", "0000000000000000")
	wantKV(t, kv, "chown", "fail")
}

// ---------------------------------------------------------------------------
// Cgroups.

// TestContainerCgroupLimits: memory, pids and cpu limits from the config
// are in the container's cgroups on the host while it exists, the
// container sees them too, and the cgroups are gone after delete.
func TestContainerCgroupLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	mem := int64(64 << 20)
	shares := uint64(512)
	pidsMax := int64(42)
	script := `echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
echo pids=$(cat /sys/fs/cgroup/pids/pids.max)
echo ready
exec sleep 1000`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pidsMax}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
	})
	r := e.createPiped(id, b)
	memDir := filepath.Join("/sys/fs/cgroup/memory", id)
	pidsDir := filepath.Join("/sys/fs/cgroup/pids", id)
	check := func(when string, pid int) {
		t.Helper()
		if got, err := os.ReadFile(filepath.Join(memDir, "memory.limit_in_bytes")); err != nil || strings.TrimSpace(string(got)) != strconv.FormatInt(mem, 10) {
			t.Errorf("%s: memory.limit_in_bytes = %q, %v; want %d", when, got, err, mem)
		}
		if got, err := os.ReadFile(filepath.Join(pidsDir, "pids.max")); err != nil || strings.TrimSpace(string(got)) != "42" {
			t.Errorf("%s: pids.max = %q, %v; want 42", when, got, err)
		}
		st := e.shimState(id)
		if st.Cgroup != nil && st.Cgroup.Paths["cpu"] != "" {
			if got, err := os.ReadFile(filepath.Join(st.Cgroup.Paths["cpu"], "cpu.shares")); err != nil || strings.TrimSpace(string(got)) != "512" {
				t.Errorf("%s: cpu.shares = %q, %v; want 512", when, got, err)
			}
		}
		for _, dir := range []string{memDir, pidsDir} {
			procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil || !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(pid)+"\n") {
				t.Errorf("%s: %s/cgroup.procs = %q, %v; want pid %d in it", when, dir, procs, err, pid)
			}
		}
	}
	sub := e.subscribe(id, true)
	created := next(t, sub, protocol.EventCreated)
	check("created", created.Pid)
	e.cliOK("start", id)
	started := next(t, sub, protocol.EventStarted)
	out := r.until(t, "ready")
	t.Logf("container output:\n%s", out)
	check("running", started.Pid)
	e.cliOK("kill", id, "KILL")
	next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	for _, dir := range []string{memDir, pidsDir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s after delete: %v", dir, err)
		}
	}
	wantNoCgroups(t, id)
	kv := keyValues(out)
	wantKV(t, kv, "mem", strconv.FormatInt(mem, 10))
	wantKV(t, kv, "pids", "42")
}

// ---------------------------------------------------------------------------
// Hooks.

// recordHook is a hook that saves its stdin to dir/name.json and appends
// name to dir/order.
func recordHook(sh, dir, name string) specs.Hook {
	timeout := 10
	return specs.Hook{
		Path:    sh,
		Args:    []string{"sh", "-c", fmt.Sprintf("cat > %s/%s.json && echo %s >> %s/order", dir, name, name, dir)},
		Env:     []string{"PATH=/usr/bin:/bin"},
		Timeout: &timeout,
	}
}

// TestContainerHooks: every kind of hook runs once, at its point in the
// lifecycle, with the container's state on stdin.
func TestContainerHooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	hd := e.hostDir("hooks")
	b := e.bundle([]string{"sh", "-c", "test -s /hooks/startContainer.json && echo saw_start_hook=yes"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/hooks", Type: "bind", Source: hd, Options: []string{"rbind", "rw"}})
	})
	sh := filepath.Join(b, "rootfs", "bin", "sh")
	editBundle(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{recordHook(sh, hd, "prestart")}, //nolint:staticcheck // still part of the spec
			CreateRuntime:   []specs.Hook{recordHook(sh, hd, "createRuntime")},
			CreateContainer: []specs.Hook{recordHook(sh, hd, "createContainer")},
			StartContainer:  []specs.Hook{recordHook("/bin/sh", "/hooks", "startContainer")},
			Poststart:       []specs.Hook{recordHook(sh, hd, "poststart")},
			Poststop:        []specs.Hook{recordHook(sh, hd, "poststop")},
		}
	})
	ran := func(name string) bool {
		_, err := os.Stat(filepath.Join(hd, name+".json"))
		return err == nil
	}
	expect := func(when string, want ...string) {
		t.Helper()
		all := []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
		for _, h := range all {
			should := strings.Contains(" "+strings.Join(want, " ")+" ", " "+h+" ")
			if ran(h) != should {
				t.Errorf("%s: %s hook ran = %v, want %v", when, h, ran(h), should)
			}
		}
		order, _ := os.ReadFile(filepath.Join(hd, "order"))
		if got := strings.Fields(string(order)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: hooks ran in order %v, want %v", when, got, want)
		}
	}

	out := e.create(id, b)
	expect("after create", "prestart", "createRuntime", "createContainer")
	sub := e.subscribe(id, true)
	pid := next(t, sub, protocol.EventCreated).Pid
	e.cliOK("start", id)
	expect("after start", "prestart", "createRuntime", "createContainer", "startContainer", "poststart")
	ev := next(t, sub, protocol.EventStopped)
	if ev.ExitStatus == nil || *ev.ExitStatus != 0 {
		t.Errorf("container exited %+v", ev)
	}
	expect("after stop", "prestart", "createRuntime", "createContainer", "startContainer", "poststart")
	e.cliOK("delete", id)
	expect("after delete", "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
	if got, _ := os.ReadFile(out); !strings.Contains(string(got), "saw_start_hook=yes") {
		t.Errorf("the process did not see the startContainer hook's file: %q", got)
	}

	for _, h := range []struct {
		name, status string
		pid          bool
	}{
		{"prestart", "creating", true},
		{"createRuntime", "creating", true},
		{"createContainer", "creating", true},
		{"startContainer", "created", true},
		{"poststart", "running", true},
		{"poststop", "stopped", false},
	} {
		raw, err := os.ReadFile(filepath.Join(hd, h.name+".json"))
		if err != nil {
			continue // reported above
		}
		var st specs.State
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Errorf("%s hook's stdin is not a state: %q", h.name, raw)
			continue
		}
		if st.ID != id || string(st.Status) != h.status || st.Bundle != b || st.Version == "" {
			t.Errorf("%s hook got %+v, want id %s status %s bundle %s", h.name, st, id, h.status, b)
		}
		if h.pid && st.Pid != pid {
			t.Errorf("%s hook got pid %d, want %d", h.name, st.Pid, pid)
		}
	}
}

// TestContainerHookTimeout: a hook that outlives its timeout makes create
// fail promptly and leaves nothing behind.
func TestContainerHookTimeout(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"prestart", "createRuntime", "createContainer"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.id()
			b := e.bundle([]string{"true"}, nil)
			timeout := 1
			// The hook is the rootfs's sleep itself, so its command line
			// names the bundle and the leak check sees it if it survives.
			hook := specs.Hook{Path: filepath.Join(b, "rootfs", "bin", "sleep"), Args: []string{"sleep", "60"}, Timeout: &timeout}
			editBundle(t, b, func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{}
				switch kind {
				case "prestart":
					s.Hooks.Prestart = []specs.Hook{hook} //nolint:staticcheck // still part of the spec
				case "createRuntime":
					s.Hooks.CreateRuntime = []specs.Hook{hook}
				case "createContainer":
					s.Hooks.CreateContainer = []specs.Hook{hook}
				}
			})
			begin := time.Now()
			out := e.createFails(id, b)
			took := time.Since(begin)
			t.Logf("create failed after %v: %s", took, out)
			if took > 20*time.Second {
				t.Errorf("create took %v with a 1s hook timeout", took)
			}
			wantOneLine(t, "create", out, "time")
			e.assertGone(id)
		})
	}
}

// TestContainerFailingPrestartHook: a failing prestart hook makes create
// fail with the hook's reason, leaves nothing, and frees the ID.
func TestContainerFailingPrestartHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	hd := e.hostDir("hooks")
	b := e.bundle([]string{"true"}, nil)
	sh := filepath.Join(b, "rootfs", "bin", "sh")
	editBundle(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart: []specs.Hook{{ //nolint:staticcheck // still part of the spec
				Path: sh,
				Args: []string{"sh", "-c", "echo prestart-boom >&2; exit 3"},
			}},
			// Nothing after the failed hook may run.
			CreateRuntime:   []specs.Hook{recordHook(sh, hd, "createRuntime")},
			CreateContainer: []specs.Hook{recordHook(sh, hd, "createContainer")},
			Poststart:       []specs.Hook{recordHook(sh, hd, "poststart")},
		}
	})
	out := e.createFails(id, b)
	t.Logf("create: %s", out)
	if !strings.Contains(out, "prestart") {
		t.Errorf("create's error does not name the prestart hook: %q", out)
	}
	if !strings.Contains(out, "prestart-boom") {
		t.Errorf("create's error does not carry the hook's message: %q", out)
	}
	e.assertGone(id)
	for _, h := range []string{"createRuntime", "createContainer", "poststart"} {
		if _, err := os.Stat(filepath.Join(hd, h+".json")); err == nil {
			t.Errorf("%s hook ran after prestart failed", h)
		}
	}
	// The ID is free again.
	editBundle(t, b, func(s *specs.Spec) { s.Hooks = nil })
	e.create(id, b)
	e.startAndStop(id)
}
