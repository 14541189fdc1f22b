package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// Attacks on the rootfs and mounts (issue 8, findings 1 and 4): each test
// performs the attack on a real container and checks what happened.

// capMask is the hexadecimal capability mask /proc/PID/status shows for
// the named capabilities.
func capMask(t *testing.T, names []string) string {
	t.Helper()
	numbers := map[string]uint{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_FOWNER": unix.CAP_FOWNER,
		"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
		"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
		"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_MKNOD": unix.CAP_MKNOD,
		"CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_SETFCAP": unix.CAP_SETFCAP,
	}
	var m uint64
	for _, n := range names {
		c, ok := numbers[n]
		if !ok {
			t.Fatalf("capMask: %s not in the test's table", n)
		}
		m |= 1 << c
	}
	return fmt.Sprintf("%016x", m)
}

// TestSecurityCapLastCapOverProc is finding 1 as reported: the image links
// /data to /proc/sys/kernel and a volume holding "cap_last_cap: 0" is
// bound on /data. Before the fix it landed over the real file, init
// believed the kernel had one capability, kept the rest of the bounding
// set, and the container printed CapEff 000001fffefffffe. Now create
// refuses the destination in one line naming it, and leaves nothing.
func TestSecurityCapLastCapOverProc(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vol := e.hostDir("fake-kernel")
	if err := os.WriteFile(filepath.Join(vol, "cap_last_cap"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e.bundle([]string{"sh", "-c", "grep CapEff /proc/self/status"}, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = false
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}})
	})
	if err := os.Symlink("/proc/sys/kernel", filepath.Join(b, "rootfs", "data")); err != nil {
		t.Fatal(err)
	}
	id := e.id()
	outPath, r := e.createTo(id, b)
	out := readFile(t, outPath)
	if r.code == 0 {
		sub := e.subscribe(id, true)
		e.cliOK("start", id)
		next(t, sub, protocol.EventStopped)
		e.cliOK("delete", id)
		t.Fatalf("create succeeded with a file bound over /proc/sys/kernel/cap_last_cap; the container printed %q", readFile(t, outPath))
	}
	t.Logf("create: %s", out)
	wantOneLine(t, "create", out, "mount /data", "/proc")
	e.assertGone(id)
}

// TestSecurityCapsAreTheSpecs: without no_new_privs, a plain container
// gets exactly the capabilities its config lists, in every set.
func TestSecurityCapsAreTheSpecs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var caps *specs.LinuxCapabilities
	kv := e.runScript(`grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb):' /proc/self/status | tr -d '\t' | tr : =`, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = false
		caps = s.Process.Capabilities
	})
	wantKV(t, kv, "CapBnd", capMask(t, caps.Bounding))
	wantKV(t, kv, "CapEff", capMask(t, caps.Effective))
	wantKV(t, kv, "CapPrm", capMask(t, caps.Permitted))
	wantKV(t, kv, "CapInh", capMask(t, caps.Inheritable))
}

// TestSecuritySpecialMountOnSymlink: the image makes /proc, /sys or
// /dev/pts a symlink out of the rootfs. The target of a procfs, sysfs or
// devpts mount must be an ordinary directory (runc's CVE-2019-19921 rule):
// create fails at once, in one line, and the link's target is not made.
func TestSecuritySpecialMountOnSymlink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fstype, dir string
		edit        func(*specs.Spec)
	}{
		{"proc", "proc", nil},
		{"sysfs", "sys", nil},
		// Without a tmpfs on /dev, /dev/pts is the image's.
		{"devpts", "dev/pts", func(s *specs.Spec) { dropMount(s, "/dev") }},
		{"mqueue", "dev/mqueue", func(s *specs.Spec) { dropMount(s, "/dev") }},
	}
	for _, tt := range tests {
		t.Run(tt.fstype, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bundle([]string{"true"}, tt.edit)
			rootfs := filepath.Join(b, "rootfs")
			link := filepath.Join(rootfs, tt.dir)
			if err := os.RemoveAll(link); err != nil {
				t.Fatal(err)
			}
			bad := "/bad-" + strings.ReplaceAll(tt.dir, "/", "-")
			if err := os.Symlink(bad, link); err != nil {
				t.Fatal(err)
			}
			id := e.id()
			outPath, r := e.createTo(id, b)
			out := readFile(t, outPath)
			if r.code == 0 {
				e.cliRun("delete", "--force", id)
				t.Fatalf("create succeeded with /%s a symlink to %s", tt.dir, bad)
			}
			t.Logf("create (%v): %s", r.elapsed, out)
			wantOneLine(t, "create", out, fmt.Sprintf("filesystem %q must be mounted on ordinary directory", tt.fstype), "/"+tt.dir)
			if r.elapsed > 10*time.Second {
				t.Errorf("create took %v to refuse, want at once", r.elapsed)
			}
			if _, err := os.Lstat(filepath.Join(rootfs, bad)); err == nil {
				t.Errorf("%s was made in the rootfs", bad)
			}
			e.assertGone(id)
		})
	}
}

func dropMount(s *specs.Spec, dest string) {
	kept := s.Mounts[:0]
	for _, m := range s.Mounts {
		if m.Destination != dest {
			kept = append(kept, m)
		}
	}
	s.Mounts = kept
}

// TestSecurityProcBinds: lxcfs-style binds over the allowed /proc files
// still work and show the bound content; a bind anywhere else in /proc,
// directly or through a link, is refused naming the destination.
func TestSecurityProcBinds(t *testing.T) {
	t.Parallel()
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		src := e.hostDir("lxcfs")
		for _, f := range []string{"uptime", "meminfo"} {
			if err := os.WriteFile(filepath.Join(src, f), []byte("crier-"+f+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		kv := e.runScript(`echo uptime=$(cat /proc/uptime); echo meminfo=$(cat /proc/meminfo)`, func(s *specs.Spec) {
			for _, f := range []string{"uptime", "meminfo"} {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/" + f, Type: "bind", Source: filepath.Join(src, f), Options: []string{"bind", "ro"}})
			}
		})
		wantKV(t, kv, "uptime", "crier-uptime")
		wantKV(t, kv, "meminfo", "crier-meminfo")
	})
	for _, tt := range []struct{ name, dest, link, want string }{
		{"cap_last_cap", "/proc/sys/kernel/cap_last_cap", "", "/proc/sys/kernel/cap_last_cap"},
		{"attr", "/proc/self/attr/exec", "", "inside /proc"},
		{"through a link", "/x/cap_last_cap", "/proc/sys/kernel", "/proc/sys/kernel/cap_last_cap"},
		{"tmpfs over /proc/sys", "/proc/sys", "", "/proc/sys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			src := filepath.Join(e.hostDir("src"), "file")
			if err := os.WriteFile(src, []byte("0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m := specs.Mount{Destination: tt.dest, Type: "bind", Source: src, Options: []string{"bind"}}
			if tt.name == "tmpfs over /proc/sys" {
				m = specs.Mount{Destination: tt.dest, Type: "tmpfs", Source: "tmpfs"}
			}
			b := e.bundle([]string{"true"}, func(s *specs.Spec) { s.Mounts = append(s.Mounts, m) })
			if tt.link != "" {
				if err := os.Symlink(tt.link, filepath.Join(b, "rootfs", "x")); err != nil {
					t.Fatal(err)
				}
			}
			id := e.id()
			outPath, r := e.createTo(id, b)
			out := readFile(t, outPath)
			if r.code == 0 {
				e.cliRun("delete", "--force", id)
				t.Fatalf("create succeeded with a mount on %s", tt.dest)
			}
			t.Logf("create: %s", out)
			wantOneLine(t, "create", out, "mount "+tt.dest, tt.want)
			e.assertGone(id)
		})
	}
}

// TestSecurityMountRace is finding 4 (the class of CVE-2021-30465): a
// volume is shared with an attacker (here the test itself, standing in for
// another container) who swaps /vol/x between a directory and a symlink to
// a host directory as fast as it can, while container B, with the volume
// on /vol and a tmpfs on /vol/x, is created again and again. B's rootfs
// propagation is shared and the host directory sits in a shared mount, so
// a tmpfs that followed the link would show on the host; a createContainer
// hook also looks in B's own mount table. A create may fail cleanly when
// it sees the swap; the tmpfs must never land outside B's rootfs.
func TestSecurityMountRace(t *testing.T) {
	t.Parallel()
	const rounds, triesPerCreate = 32, 4
	e := newEnv(t)
	shared := sharedHostDir(t, e, "shared")
	hostTarget := filepath.Join(shared, "target")
	if err := os.Mkdir(hostTarget, 0o755); err != nil {
		t.Fatal(err)
	}
	vol := e.hostDir("vol")
	if err := os.Mkdir(filepath.Join(vol, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hostTarget, filepath.Join(vol, "swap")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.hostDir("report"), "stray")
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.RootfsPropagation = "shared"
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}})
		// Each entry is one more try at the race in the same create.
		for range triesPerCreate {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/vol/x", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=64k"}})
		}
	})
	sh := filepath.Join(b, "rootfs", "bin", "sh")
	editBundle(t, b, func(s *specs.Spec) {
		timeout := 10
		s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{
			Path:    sh,
			Args:    []string{"sh", "-c", fmt.Sprintf("grep -F ' %s ' /proc/self/mountinfo >> %s; exit 0", hostTarget, report)},
			Env:     []string{"PATH=/bin"},
			Timeout: &timeout,
		}}}
	})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swaps int
	wg.Add(1)
	go func() {
		defer wg.Done()
		dir, err := unix.Open(vol, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(dir)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(dir, "x", dir, "swap", unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swap: %v", err)
				return
			}
			swaps++
		}
	}()
	created, refused := 0, 0
	var stray, badErrors []string
	for i := 0; i < rounds; i++ {
		id := e.id()
		outPath, r := e.createTo(id, b)
		if r.code == 0 {
			created++
			e.cliOK("delete", "--force", id)
		} else {
			refused++
			out := readFile(t, outPath)
			if refused <= 3 {
				t.Logf("round %d refused: %s", i, out)
			}
			if lines := strings.Split(out, "\n"); len(lines) != 1 || !strings.Contains(out, "mount /vol/x") {
				badErrors = append(badErrors, fmt.Sprintf("round %d: %q", i, out))
			}
		}
		if ms := mountsMatching(" " + hostTarget + " "); len(ms) > 0 {
			stray = append(stray, fmt.Sprintf("round %d: on the host: %v", i, ms))
			for range ms {
				unix.Unmount(hostTarget, unix.MNT_DETACH)
			}
		}
		if ents, _ := os.ReadDir(hostTarget); len(ents) > 0 {
			stray = append(stray, fmt.Sprintf("round %d: %s holds %d entries", i, hostTarget, len(ents)))
		}
	}
	close(stop)
	wg.Wait()
	if b, err := os.ReadFile(report); err == nil && len(b) > 0 {
		stray = append(stray, fmt.Sprintf("B's own mount table showed the tmpfs on the host path %d times", strings.Count(string(b), "\n")))
	}
	t.Logf("%d rounds: %d created, %d refused, %d swaps", rounds, created, refused, swaps)
	if len(stray) > 0 {
		t.Errorf("the tmpfs for /vol/x landed outside the rootfs:\n  %s", strings.Join(stray, "\n  "))
	}
	if len(badErrors) > 0 {
		t.Errorf("creates failed without one line naming mount /vol/x:\n  %s", strings.Join(badErrors, "\n  "))
	}
	if created == 0 {
		t.Errorf("no create succeeded in %d rounds: the defence refuses too much", rounds)
	}
}

// sharedHostDir makes a directory that is a shared mount of the host, so
// that a mount made on it in a container's namespace by mistake (with
// shared rootfs propagation) shows on the host. It is unmounted when the
// test ends, before the leak check.
func sharedHostDir(t *testing.T, e *env, name string) string {
	t.Helper()
	dir := e.hostDir(name)
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSecurityDevAndTargetSymlinks: symlinks the image puts where the
// runtime creates device nodes, /dev links and mount targets stay inside
// the rootfs: the host files they name are not touched, and the container
// sees real nodes.
func TestSecurityDevAndTargetSymlinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hostDir := e.hostDir("host")
	hostFile := func(name string) string {
		p := filepath.Join(hostDir, name)
		if err := os.WriteFile(p, []byte("host "+name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	victims := map[string]string{} // rootfs path -> host file it links to
	for _, n := range []string{"dev/null", "dev/zero", "dev/tty", "dev/ptmx", "dev/fd", "etc/target-file"} {
		victims[n] = hostFile(strings.ReplaceAll(n, "/", "-"))
	}
	src := filepath.Join(e.hostDir("src"), "content")
	if err := os.WriteFile(src, []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `for d in null zero tty; do test -c /dev/$d && echo $d=char; done
echo target=$(cat /etc/target-file)
echo up=$(cat /up/file 2>&1)`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		// The image's own /dev, not a tmpfs, is where the nodes go.
		dropMount(s, "/dev")
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/etc/target-file", Type: "bind", Source: src, Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/up/file", Type: "bind", Source: src, Options: []string{"bind", "ro"}})
	})
	rootfs := filepath.Join(b, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "dev"), 0o755)
	for n, host := range victims {
		p := filepath.Join(rootfs, n)
		os.Remove(p)
		if err := os.Symlink(host, p); err != nil {
			t.Fatal(err)
		}
	}
	// A relative link climbing far above the rootfs to the host directory.
	if err := os.Symlink(strings.Repeat("../", 12)+strings.TrimPrefix(hostDir, "/"), filepath.Join(rootfs, "up")); err != nil {
		t.Fatal(err)
	}
	_, kv := e.runOK(e.id(), b, nil)
	for _, d := range []string{"null", "zero", "tty"} {
		wantKV(t, kv, d, "char")
	}
	wantKV(t, kv, "target", "bound")
	wantKV(t, kv, "up", "bound")
	for n, host := range victims {
		fi, err := os.Lstat(host)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("host file %s (linked from %s) changed: %v %v", host, n, fi.Mode(), err)
			continue
		}
		want := "host " + strings.ReplaceAll(n, "/", "-") + "\n"
		if got, _ := os.ReadFile(host); string(got) != want {
			t.Errorf("host file %s (linked from %s) = %q, want %q", host, n, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(hostDir, "file")); err == nil {
		t.Errorf("mount target %s was made on the host", filepath.Join(hostDir, "file"))
	}
	if ms := mountsMatching(hostDir); len(ms) > 0 {
		t.Errorf("host mount table mentions %s: %v", hostDir, ms)
	}
	if st, err := os.Stat(filepath.Join(rootfs, strings.TrimPrefix(hostDir, "/"), "file")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("mount target for /up/file not made inside the rootfs: %v", err)
	}
}
