package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Idmapped mounts (runtime-spec config.md, mount_setattr(MOUNT_ATTR_IDMAP)).
// The sources live under the suite's temporary directory, on the host's
// ext4, which supports idmapping; so does tmpfs (since Linux 6.3), used
// for the mount below a source in the recursive test.

// idmap is a one-range ID mapping.
func idmap(containerID, hostID, size uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: containerID, HostID: hostID, Size: size}}
}

// idmapSource makes a host directory holding a file for each entry of
// owners (name to "uid:gid").
func (e *env) idmapSource(name string, owners map[string]string) string {
	e.t.Helper()
	dir := e.hostDir(name)
	for file, owner := range owners {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			e.t.Fatal(err)
		}
		if out, err := exec.Command("chown", owner, p).CombinedOutput(); err != nil {
			e.t.Fatalf("chown %s: %v: %s", p, err, out)
		}
	}
	return dir
}

// userns is how a test container gets its user namespace.
type userns int

const (
	noUserns     userns = iota
	newUserns           // its own, root = host 100000
	joinedUserns        // joined by path: a holder container's, root = host 100000
)

// TestIdmapMount: a bind mount with a mapping shows each file's owner as
// the mapping says, with and without a container user namespace (new or
// joined), and through the container's own mapping when the mount names
// none.
func TestIdmapMount(t *testing.T) {
	t.Parallel()
	overflow := readFile(t, "/proc/sys/kernel/overflowuid") + ":" + readFile(t, "/proc/sys/kernel/overflowgid")
	tests := []struct {
		name   string
		userns userns
		owners map[string]string // files in the source, by owner on disk
		opts   []string
		uids   []specs.LinuxIDMapping
		gids   []specs.LinuxIDMapping
		want   map[string]string // owners seen in the container
	}{
		{
			name:   "own mapping without userns",
			owners: map[string]string{"f": "1000:1000", "unmapped": "5:5"},
			opts:   []string{"bind"},
			uids:   idmap(1000, 2000, 1),
			gids:   idmap(1000, 3000, 1),
			want:   map[string]string{"f": "2000:3000", "unmapped": overflow},
		},
		{
			name:   "own mapping with idmap option",
			owners: map[string]string{"f": "1000:1001"},
			opts:   []string{"rbind", "idmap", "ro"},
			uids:   idmap(1000, 4000, 10),
			gids:   idmap(1000, 4000, 10),
			want:   map[string]string{"f": "4000:4001"},
		},
		{
			name:   "own mapping in userns",
			userns: newUserns,
			owners: map[string]string{"f": "1000:1000"},
			opts:   []string{"bind"},
			uids:   idmap(1000, 100005, 1),
			gids:   idmap(1000, 100006, 1),
			want:   map[string]string{"f": "5:6"},
		},
		{
			name:   "container mapping in userns",
			userns: newUserns,
			owners: map[string]string{"f": "7:8", "g": "1000:1000"},
			opts:   []string{"bind", "idmap"},
			want:   map[string]string{"f": "7:8", "g": "1000:1000"},
		},
		{
			name:   "own mapping in joined userns",
			userns: joinedUserns,
			owners: map[string]string{"f": "1000:1000"},
			opts:   []string{"bind", "idmap"},
			uids:   idmap(1000, 100005, 1),
			gids:   idmap(1000, 100006, 1),
			want:   map[string]string{"f": "5:6"},
		},
		{
			name:   "container mapping in joined userns",
			userns: joinedUserns,
			owners: map[string]string{"f": "7:8"},
			opts:   []string{"rbind", "ridmap"},
			want:   map[string]string{"f": "7:8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			src := e.idmapSource("src", tt.owners)
			var script strings.Builder
			for f := range tt.want {
				script.WriteString("echo " + f + "=$(stat -c %u:%g /mnt/idmap/" + f + ")\n")
			}
			holder := 0
			if tt.userns == joinedUserns {
				holder = joinHolder(t, e)
			}
			b := e.bundle([]string{"sh", "-c", script.String()}, func(s *specs.Spec) {
				switch tt.userns {
				case newUserns:
					mapUser(s)
				case joinedUserns:
					sfJoin(s, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", holder))
				}
				s.Mounts = append(s.Mounts, specs.Mount{
					Destination: "/mnt/idmap", Type: "bind", Source: src, Options: tt.opts,
					UIDMappings: tt.uids, GIDMappings: tt.gids,
				})
			})
			if tt.userns != noUserns {
				chownRootfs(t, b)
			}
			_, kv := e.runOK(e.id(), b, nil)
			for f, want := range tt.want {
				wantKV(t, kv, f, want)
			}
		})
	}
}

// TestIdmapMountWrite: with the container's own mapping, a file that
// container root creates belongs to root on disk, not to host uid 100000;
// and a read-only idmapped mount stays read-only.
func TestIdmapMountWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rw := e.idmapSource("rw", nil)
	ro := e.idmapSource("ro", nil)
	script := `touch /mnt/rw/new && echo rw=ok
touch /mnt/ro/new 2>/dev/null || echo ro=refused`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		mapUser(s)
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/mnt/rw", Type: "bind", Source: rw, Options: []string{"bind", "idmap"}},
			specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: ro, Options: []string{"bind", "idmap", "ro"}},
		)
	})
	chownRootfs(t, b)
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "rw", "ok")
	wantKV(t, kv, "ro", "refused")
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(rw, "new"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("file made by container root is %d:%d on disk, want 0:0", st.Uid, st.Gid)
	}
}

// TestIdmapMountRecursive: over an rbind, ridmap maps the mounts below the
// source too; idmap maps only the top one.
func TestIdmapMountRecursive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := e.idmapSource("src", map[string]string{"top": "1000:1000"})
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", sub, err)
	}
	// Runs before newEnv's leak check, which would see this mount.
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", sub, err)
		}
	})
	f := filepath.Join(sub, "below")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	script := `for m in r n; do echo ${m}top=$(stat -c %u:%g /mnt/$m/top); echo ${m}below=$(stat -c %u:%g /mnt/$m/sub/below); done`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		for _, m := range []struct{ dst, opt string }{{"/mnt/r", "ridmap"}, {"/mnt/n", "idmap"}} {
			s.Mounts = append(s.Mounts, specs.Mount{
				Destination: m.dst, Type: "bind", Source: src, Options: []string{"rbind", m.opt},
				UIDMappings: idmap(1000, 2000, 1), GIDMappings: idmap(1000, 2000, 1),
			})
		}
	})
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "rtop", "2000:2000")
	wantKV(t, kv, "rbelow", "2000:2000")
	wantKV(t, kv, "ntop", "2000:2000")
	wantKV(t, kv, "nbelow", "1000:1000")
}

// TestIdmapMountOrder: an idmapped mount comes in its place among the
// others, under a tmpfs mounted before it and under one mounted after it.
func TestIdmapMountOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := e.idmapSource("src", map[string]string{"f": "1000:1000"})
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo over=$(stat -c %u /mnt/o/f); echo hidden=$(ls /mnt/o/sub | wc -l)
echo under=$(stat -c %u /mnt/t/i/f)`
	mapped := func(dst string) specs.Mount {
		return specs.Mount{
			Destination: dst, Type: "bind", Source: src, Options: []string{"bind"},
			UIDMappings: idmap(1000, 2000, 1), GIDMappings: idmap(1000, 2000, 1),
		}
	}
	tmpfs := func(dst string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=755"}}
	}
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, mapped("/mnt/o"), tmpfs("/mnt/o/sub"), tmpfs("/mnt/t"), mapped("/mnt/t/i"))
	})
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "over", "2000")
	wantKV(t, kv, "hidden", "0")
	wantKV(t, kv, "under", "2000")
}

// TestIdmapMountErrors: what cannot be idmapped fails create with one line
// naming the mount, and leaves nothing behind (no helper process either:
// the leak check looks for anything naming the test's directory).
func TestIdmapMountErrors(t *testing.T) {
	t.Parallel()
	bind := func(src string, opts []string, uids, gids []specs.LinuxIDMapping) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{
				Destination: "/mnt/idmap", Type: "bind", Source: src, Options: opts,
				UIDMappings: uids, GIDMappings: gids,
			})
		}
	}
	tests := []struct {
		name  string
		edit  func(*specs.Spec)
		wants []string
	}{
		{"overlapping ranges", bind("/tmp", []string{"bind"},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 10}, {ContainerID: 5, HostID: 3000, Size: 10}},
			idmap(0, 2000, 10)), []string{"/mnt/idmap", "uidMappings[1]", "overlaps"}},
		{"empty range", bind("/tmp", []string{"bind"}, idmap(0, 2000, 1), idmap(0, 2000, 0)),
			[]string{"/mnt/idmap", "gidMappings[0]", "size is 0"}},
		{"past the last ID", bind("/tmp", []string{"bind"}, idmap(0, 0xfffffff0, 16), idmap(0, 2000, 1)),
			[]string{"/mnt/idmap", "uidMappings[0]", "past the last ID"}},
		{"uids without gids", bind("/tmp", []string{"bind"}, idmap(0, 2000, 1), nil),
			[]string{"/mnt/idmap", "gidMappings", "together"}},
		{"no mapping, no userns", bind("/tmp", []string{"bind", "idmap"}, nil, nil),
			[]string{"/mnt/idmap", "user namespace"}},
		{"not a bind mount", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{
				Destination: "/mnt/idmap", Type: "tmpfs", Source: "tmpfs", Options: []string{"idmap"},
				UIDMappings: idmap(0, 2000, 1), GIDMappings: idmap(0, 2000, 1),
			})
		}, []string{"/mnt/idmap", "bind"}},
		// These two fail in the shim, after init is forked.
		{"missing source", bind("/nonexistent-crier-idmap", []string{"bind"}, idmap(0, 2000, 1), idmap(0, 2000, 1)),
			[]string{"/mnt/idmap", "/nonexistent-crier-idmap", "no such file"}},
		{"filesystem without idmap", bind("/proc/sys", []string{"bind", "idmap"}, idmap(0, 2000, 1), idmap(0, 2000, 1)),
			[]string{"/mnt/idmap", "/proc/sys", "proc", "does not support idmapped mounts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantCreateFails(t, tt.edit, tt.wants...)
		})
	}
}

// TestSecurityIdmapMountPropagation: an idmapped bind of a host directory
// that is a shared mount is cloned in the host's mount namespace, where
// the clone joined the host mount's peer group: a tmpfs the container
// mounted under it appeared on the host, and stayed there after the
// container was gone. Now the container's mount stays in the container,
// and a mount the host makes under the source still reaches it, as with
// a plain bind under the default rslave root.
func TestSecurityIdmapMountPropagation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := e.idmapSource("shared", map[string]string{"f": "1000:1000"})
	for _, d := range []string{"fromctr", "fromhost"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(src, src, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", src, err)
	}
	// Runs before newEnv's leak check: whatever was mounted under src
	// goes with it.
	t.Cleanup(func() {
		if err := unix.Unmount(src, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", src, err)
		}
	})
	if err := unix.Mount("", src, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", src, err)
	}
	script := `mount -t tmpfs attack /mnt/x/fromctr && echo mounted=yes; read go; echo host=$(grep -c hostmnt /proc/self/mountinfo)`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
		s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_SYS_ADMIN")
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/mnt/x", Type: "bind", Source: src, Options: []string{"bind"},
			UIDMappings: idmap(1000, 2000, 1), GIDMappings: idmap(1000, 2000, 1),
		})
	})
	id := e.id()
	in, out := e.createPipedIn(id, b)
	e.cliOK("start", id)
	if line := out.line(t); line != "mounted=yes" {
		t.Fatalf("the container printed %q, want mounted=yes", line)
	}
	hostSub := filepath.Join(src, "fromhost")
	if err := unix.Mount("hostmnt", hostSub, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount on the host: %v", err)
	}
	in.Write([]byte("go\n"))
	if line := out.line(t); line != "host=1" {
		t.Errorf("the container printed %q, want host=1: the host's mount under the source should reach it", line)
	}
	e.waitStopped(id)
	e.cliOK("delete", id)
	mi := readFile(t, "/proc/self/mountinfo")
	if strings.Contains(mi, filepath.Join(src, "fromctr")) {
		t.Errorf("the container's tmpfs under its idmapped bind is mounted on the host at %s", filepath.Join(src, "fromctr"))
	}
}

// createPipedIn is createPiped with the container's stdin a pipe too,
// whose write end it returns.
func (e *env) createPipedIn(id, bundle string) (*os.File, *outPipe) {
	e.t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { inW.Close(); outR.Close() })
	p := e.cliStart(func(c *exec.Cmd) { c.Stdin, c.Stdout = inR, outW }, "create", "--bundle", bundle, id)
	inR.Close()
	outW.Close()
	p.waitOK()
	return inW, newOutPipe(outR)
}
