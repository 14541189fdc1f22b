package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// This file tests mounts as runc makes them (mounts.bats, host-mntns.bats,
// no_pivot.bats): tmpcopyup, bind sources inside the rootfs taken in mount
// order, a container without a mount namespace, and --no-pivot; and the
// attacks on each (the image's symlinks, the host's /proc left under a
// chroot).

// TestParityTmpcopyup: a tmpfs with the tmpcopyup option starts with a
// copy of the directory it covers: subdirectories, files, symlinks and
// FIFOs, with their modes and owners (mounts.bats "runc run [tmpcopyup]":
// a 0777 subdirectory stays drwxrwxrwx under umask 022). It is a tmpfs:
// what the container writes there does not reach the image.
func TestParityTmpcopyup(t *testing.T) {
	e := newEnv(t)
	script := `ls -ld /dir1/dir2 | sed 's/ .*//;s/^/DIR2=/'
stat -c 'F=%a %u:%g' /dir1/f; echo "FC=$(cat /dir1/f)"
echo "L=$(readlink /dir1/link)"; stat -c 'FIFO=%F %a' /dir1/fifo
echo "DEEP=$(cat /dir1/dir2/sub/deep)"
grep ' /dir1 ' /proc/self/mountinfo | grep -q ' - tmpfs ' && echo TMPFS=yes
echo new > /dir1/new && echo WROTE=yes`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dir1", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}})
	})
	dir1 := filepath.Join(b, "rootfs", "dir1")
	mustMkdir(t, filepath.Join(dir1, "dir2", "sub"), 0o777)
	os.Chmod(filepath.Join(dir1, "dir2"), 0o777)
	writeFileMode(t, filepath.Join(dir1, "f"), "content", 0o604)
	os.Chown(filepath.Join(dir1, "f"), 1000, 1001)
	writeFileMode(t, filepath.Join(dir1, "dir2", "sub", "deep"), "deeper", 0o644)
	if err := os.Symlink("../somewhere/else", filepath.Join(dir1, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir1, "fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir1, "fifo"), 0o620)
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "DIR2", "drwxrwxrwx")
	wantKV(t, kv, "F", "604 1000:1001")
	wantKV(t, kv, "FC", "content")
	wantKV(t, kv, "L", "../somewhere/else")
	wantKV(t, kv, "FIFO", "fifo 620")
	wantKV(t, kv, "DEEP", "deeper")
	wantKV(t, kv, "TMPFS", "yes")
	wantKV(t, kv, "WROTE", "yes")
	if _, err := os.Lstat(filepath.Join(dir1, "new")); !os.IsNotExist(err) {
		t.Errorf("the container's write reached the image's /dir1: %v", err)
	}
}

// TestSecurityTmpcopyupSymlinks: the directory tmpcopyup copies is the
// image's. A symlink in it to a host file or directory is copied as a
// symlink (never what it points to), and a destination that is itself a
// symlink to a host directory is resolved inside the rootfs: the host's
// files are neither copied into the container nor covered.
func TestSecurityTmpcopyupSymlinks(t *testing.T) {
	e := newEnv(t)
	host := filepath.Join(e.dir, "host-secrets")
	mustMkdir(t, host, 0o755)
	writeFileMode(t, filepath.Join(host, "secret"), "HOSTSECRET", 0o644)
	script := `echo "L=$(readlink /dir1/link)"; cat /dir1/link /dir1/dirlink/secret /vol/secret 2>/dev/null
echo "VOL=$(ls -A /vol | tr '\n' ' ')"; echo done=yes`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/dir1", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}},
			specs.Mount{Destination: "/vol", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}})
	})
	rootfs := filepath.Join(b, "rootfs")
	mustMkdir(t, filepath.Join(rootfs, "dir1"), 0o755)
	for name, to := range map[string]string{"dir1/link": filepath.Join(host, "secret"), "dir1/dirlink": host, "vol": host} {
		if err := os.Symlink(to, filepath.Join(rootfs, name)); err != nil {
			t.Fatal(err)
		}
	}
	out, kv := e.runOK(e.id(), b, nil)
	if strings.Contains(out, "HOSTSECRET") || strings.Contains(kv["VOL"], "secret") {
		t.Errorf("the host's file reached the container:\n%s", out)
	}
	wantKV(t, kv, "L", filepath.Join(host, "secret"))
	wantKV(t, kv, "done", "yes")
	if ents, _ := os.ReadDir(host); len(ents) != 1 {
		t.Errorf("the host directory changed: %d entries", len(ents))
	}
	if len(mountsMatching(host)) != 0 {
		t.Errorf("a mount landed on the host directory: %q", mountsMatching(host))
	}
}

// mountOrderBundle makes the bundle of mounts.bats's test_mount_order: a
// tree of binds under /mnt from bind-src (a/x, b/y, c/z, with symlinks
// sym-a and sym-b to a and b; bind-src is 0750 so that only the host's
// root reaches it), then binds whose source and destination are host
// paths inside the rootfs, each of the tree as the mounts before it left
// it, and last the whole of /mnt on /final. userns adds a user namespace
// (0 is host 100000), idmap maps the rootfs sources' binds.
func mountOrderBundle(t *testing.T, e *env, userns, idmap bool) string {
	t.Helper()
	b := e.bundle([]string{"cat", "/final/x/y/z/z/x/y/z/x/file"}, nil)
	rootfs := filepath.Join(b, "rootfs")
	src := filepath.Join(b, "bind-src")
	for _, sub := range []string{"a/x", "b/y", "c/z"} {
		mustMkdir(t, filepath.Join(src, sub), 0o755)
		writeFileMode(t, filepath.Join(src, sub, "file"), sub+"\n", 0o644)
		top := filepath.Dir(sub)
		if err := os.Symlink(top, filepath.Join(src, "sym-"+top)); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(src, 0o750)
	mustMkdir(t, filepath.Join(rootfs, "mnt"), 0o755)
	mustMkdir(t, filepath.Join(rootfs, "final"), 0o755)
	bind := func(s, d string, opts ...string) specs.Mount {
		m := specs.Mount{Source: s, Destination: d, Type: "bind", Options: append([]string{"rbind", "rprivate"}, opts...)}
		return m
	}
	ctr := func(s, d string) specs.Mount {
		m := bind(s, d)
		if idmap {
			m.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			m.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}
		return m
	}
	editBundle(t, b, func(s *specs.Spec) {
		if userns {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}
		s.Mounts = append(s.Mounts,
			bind(filepath.Join(src, "a"), "/mnt"),
			bind(filepath.Join(src, "sym-b"), "/mnt/x"),
			bind(filepath.Join(src, "c"), "/mnt/x/y"),
			bind(filepath.Join(src, "sym-a"), "/mnt/x/y/z"),
			ctr(filepath.Join(rootfs, "mnt/x"), filepath.Join(rootfs, "mnt/x/y/z/x")),
			ctr(filepath.Join(rootfs, "mnt/x/y"), filepath.Join(rootfs, "mnt/x/y/z")),
			ctr(filepath.Join(rootfs, "mnt"), filepath.Join(rootfs, "final")))
	})
	if userns {
		chownRootfs(t, b)
	}
	return b
}

// TestParityMountOrder: a bind whose source is in the rootfs binds what
// is there at its turn, after the mounts before it (mounts.bats "mount
// order, container bind-mount source" and "container idmap source", with
// and without a user namespace): the final file is a/x's, reached through
// the tree the earlier binds built. Before, the source was opened before
// any mount (a user namespace, an idmap: "open_tree ...: no such file or
// directory") or the destination taken as a path below the rootfs.
func TestParityMountOrder(t *testing.T) {
	for _, c := range []struct {
		name          string
		userns, idmap bool
	}{{"plain", false, false}, {"userns", true, false}, {"idmap", false, true}, {"userns+idmap", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			b := mountOrderBundle(t, e, c.userns, c.idmap)
			out, _ := e.runOK(e.id(), b, nil)
			if out != "a/x\n" {
				t.Errorf("the final file holds %q, want a/x's", out)
			}
		})
	}
}

// TestSecurityRootfsBindSourceSymlink: a bind source inside the rootfs is
// the image's ground. A symlink there to a host directory is followed
// inside the rootfs, as the container would follow it, never to the
// host's directory: with and without a user namespace (where the source
// used to be opened by the parent, the host's root, by path).
func TestSecurityRootfsBindSourceSymlink(t *testing.T) {
	for _, userns := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "userns"}[userns]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			host := filepath.Join(e.dir, "host-secrets")
			mustMkdir(t, host, 0o755)
			writeFileMode(t, filepath.Join(host, "secret"), "HOSTSECRET", 0o644)
			b := e.bundle([]string{"sh", "-c", "cat /mnt/* 2>&1; ls /mnt"}, func(s *specs.Spec) {
				// "rootfs/evil": relative to the bundle, inside the rootfs.
				s.Mounts = append(s.Mounts, specs.Mount{Source: "rootfs/evil", Destination: "/mnt", Type: "bind", Options: []string{"rbind"}})
				if userns {
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
					s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
					s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
				}
			})
			rootfs := filepath.Join(b, "rootfs")
			if err := os.Symlink(host, filepath.Join(rootfs, "evil")); err != nil {
				t.Fatal(err)
			}
			// Where the link leads inside the rootfs.
			mustMkdir(t, filepath.Join(rootfs, host), 0o755)
			writeFileMode(t, filepath.Join(rootfs, host, "image-file"), "IMAGEFILE", 0o644)
			if userns {
				chownRootfs(t, b)
			}
			out, _ := e.runOK(e.id(), b, nil)
			if strings.Contains(out, "HOSTSECRET") || !strings.Contains(out, "IMAGEFILE") {
				t.Errorf("the bind followed the image's symlink out of the rootfs (or not at all):\n%s", out)
			}
		})
	}
}

// TestParityNoPivot: `run --no-pivot` and `create --no-pivot` enter the
// rootfs with MS_MOVE and chroot. The host's /proc, still in the mount
// namespace under the chroot, must not let the process mount a procfs of
// its own without the masks and write /proc/sysrq-trigger (no_pivot.bats
// "runc run --no-pivot must not expose bare /proc"): the mount fails with
// "permission denied". crier did not know the flag.
func TestParityNoPivot(t *testing.T) {
	e := newEnv(t)
	attack := []string{"unshare", "-mrpf", "sh", "-euxc", "mount -t proc none /proc && echo h > /proc/sysrq-trigger"}
	b := e.bundle(attack, func(s *specs.Spec) {
		caps := s.Process.Capabilities
		caps.Bounding = append(caps.Bounding, "CAP_SETFCAP")
		caps.Permitted = append(caps.Permitted, "CAP_SETFCAP")
	})
	r := e.cliRun("run", "--no-pivot", "--bundle", b, e.id())
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "mount: permission denied") {
		t.Errorf("run --no-pivot of the attack: exit %d, stdout %q stderr %q; want 1 and mount: permission denied", r.code, r.stdout, r.stderr)
	}
	// A --no-pivot container is in its rootfs, from create and start too.
	b = e.bundle([]string{"sh", "-c", "test -f /only-here && echo ROOTFS=yes"}, nil)
	writeFileMode(t, filepath.Join(b, "rootfs", "only-here"), "", 0o644)
	id := e.id()
	outFile := e.create(id, b, "--no-pivot")
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	ev := next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	wantExit(t, ev, 0, "")
	wantKV(t, keyValues(readFile(t, outFile)), "ROOTFS", "yes")
}

// TestParityHostMountNamespace: a container without a mount namespace
// gets its mounts in the host's, below a slave bind of its rootfs, as
// runc makes them, and chroots into it (host-mntns.bats): with a terminal
// (whose pty is on the container's /dev/pts: create failed with "open
// /proc/PID/root/dev/pts/ptmx: no such file or directory"), a
// createRuntime hook run once, and the propagation of the host's / and of
// the mount holding the bundle unchanged. The mounts stay after the
// container, as runc leaves them: the test unmounts them.
func TestParityHostMountNamespace(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle([]string{"sh", "-c", "tty; grep -c ' - proc ' /proc/self/mountinfo >/dev/null && echo hello"}, func(s *specs.Spec) {
		dropNamespace(s, specs.MountNamespace)
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		s.Process.Terminal = true
	})
	editBundle(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo x >> " + filepath.Join(b, "hook-ran")}}}}
	})
	rootfs := filepath.Join(b, "rootfs")
	t.Cleanup(func() { exec.Command("umount", "-R", "-l", rootfs).Run() })
	propagation := func() string {
		out, err := exec.Command("sh", "-c", "findmnt -n -o TARGET,PROPAGATION / && findmnt -n -o TARGET,PROPAGATION -T "+b).CombinedOutput()
		if err != nil {
			t.Fatalf("findmnt: %v: %s", err, out)
		}
		return string(out)
	}
	before := propagation()
	fds := consoleReceiver(t, filepath.Join(e.dir, "console.sock"))
	e.create(id, b, "--console-socket", filepath.Join(e.dir, "console.sock"))
	got := <-fds
	if len(got) != 1 {
		t.Fatalf("console socket: %d descriptors, want 1", len(got))
	}
	master := os.NewFile(uintptr(got[0]), "ptmx")
	defer master.Close()
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	out := readPtyUntil(t, master, "hello")
	ev := next(t, sub, protocol.EventStopped)
	e.cliOK("delete", id)
	wantExit(t, ev, 0, "")
	if !strings.Contains(out, "/dev/pts/") {
		t.Errorf("terminal output %q: want the process on the container's pty", out)
	}
	if after := propagation(); after != before {
		t.Errorf("the host's propagation changed:\nbefore %s\nafter  %s", before, after)
	}
	if hooks := readFile(t, filepath.Join(b, "hook-ran")); strings.TrimSpace(hooks) != "x" {
		t.Errorf("createRuntime hook ran %q, want once", hooks)
	}
	if len(mountsMatching(rootfs+"/proc ")) == 0 {
		t.Errorf("no procfs below the rootfs in the host's mount namespace")
	}
}

// readPtyUntil reads the pty master until marker or EOF, within
// hangDeadline.
func readPtyUntil(t *testing.T, master *os.File, marker string) string {
	t.Helper()
	master.SetReadDeadline(time.Now().Add(hangDeadline))
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), marker) {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Errorf("reading the pty master: %v (read %q)", err, out.String())
			break
		}
	}
	return out.String()
}

func mustMkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFileMode(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
