package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Joining user and time namespaces by path: setns wants a single-threaded
// caller for both, which crier-shim meets with its pre-runtime entry point
// and a two-stage init (container/nsenter_linux.go).

// joinHolder creates and starts a container in a new user namespace
// (root = host uid 100000) and a new time namespace ten days ahead, for
// others to join. It returns the container's pid.
func joinHolder(t *testing.T, e *env) int {
	t.Helper()
	id := e.id()
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		mapUser(s)
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 10 * 86400}}
	})
	chownRootfs(t, b)
	e.create(id, b)
	e.cliOK("start", id)
	return e.state(id).Pid
}

// mapUser gives s a new user namespace whose root is host uid 100000.
func mapUser(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

func chownRootfs(t *testing.T, bundle string) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", "-h", "100000:100000", filepath.Join(bundle, "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("chown rootfs: %v: %s", err, out)
	}
}

func uptime(t *testing.T, s string) float64 {
	t.Helper()
	f := strings.Fields(s)
	if len(f) == 0 {
		t.Fatalf("uptime %q", s)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("uptime %q: %v", s, err)
	}
	return v
}

func TestJoinUserAndTimeNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	holder := joinHolder(t, e)
	nsOf := func(name string) string { return fmt.Sprintf("/proc/%d/ns/%s", holder, name) }
	script := `echo ns_user=$(readlink /proc/self/ns/user); echo ns_time=$(readlink /proc/self/ns/time)
echo ns_pid=$(readlink /proc/self/ns/pid); echo pid=$$
echo uid_map=$(cat /proc/self/uid_map); echo uid=$(id -u)
echo uptime=$(cat /proc/uptime)
touch /dev/shm/probe && echo write=ok`
	hostUser, _ := os.Readlink("/proc/self/ns/user")
	hostTime, _ := os.Readlink("/proc/self/ns/time")
	tests := []struct {
		name       string
		join       []specs.LinuxNamespaceType
		user, time string // the namespace the container must be in
	}{
		{"user", []specs.LinuxNamespaceType{specs.UserNamespace}, sfNsID(t, "user", nsOf("user")), hostTime},
		{"time", []specs.LinuxNamespaceType{specs.TimeNamespace}, hostUser, sfNsID(t, "time", nsOf("time"))},
		{"both", []specs.LinuxNamespaceType{specs.UserNamespace, specs.TimeNamespace}, sfNsID(t, "user", nsOf("user")), sfNsID(t, "time", nsOf("time"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
				for _, typ := range tt.join {
					sfJoin(s, typ, nsOf(string(typ)))
				}
			})
			if tt.user != hostUser {
				chownRootfs(t, b)
			}
			hostUp := uptime(t, readFile(t, "/proc/uptime"))
			_, kv := e.runOK(e.id(), b, nil)
			wantKV(t, kv, "ns_user", tt.user)
			wantKV(t, kv, "ns_time", tt.time)
			wantKV(t, kv, "write", "ok")
			// Its own pid namespace, made after joining, so that
			// the joined user namespace owns it (or /proc would not
			// have mounted).
			wantKV(t, kv, "pid", "1")
			if kv["ns_pid"] == sfNsID(t, "pid", nsOf("pid")) {
				t.Errorf("the container shares the holder's pid namespace")
			}
			if tt.user != hostUser {
				wantKVFields(t, kv, "uid_map", "0 100000 65536")
				wantKV(t, kv, "uid", "0")
			}
			d := uptime(t, kv["uptime"]) - hostUp
			if ahead := tt.time != hostTime; ahead != (d > 9*86400) {
				t.Errorf("uptime inside is %.0f s from the host's, want ten days ahead=%v", d, ahead)
			}
		})
	}
}

// TestJoinUserNamespaceErrors: what cannot be joined fails create with a
// clear line and leaves nothing behind.
func TestJoinUserNamespaceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*specs.Spec)
		wants []string
	}{
		{"missing", func(s *specs.Spec) { sfJoin(s, specs.UserNamespace, "/nonexistent/ns/user") },
			[]string{"user namespace /nonexistent/ns/user", "no such file"}},
		{"not a namespace", func(s *specs.Spec) { sfJoin(s, specs.UserNamespace, "/proc/self/status") },
			[]string{"user namespace /proc/self/status", "not a namespace"}},
		{"wrong type", func(s *specs.Spec) { sfJoin(s, specs.TimeNamespace, "/proc/self/ns/net") },
			[]string{"time namespace /proc/self/ns/net", "not a time namespace"}},
		// The pre-runtime entry's own setns fails: a process may not
		// join the user namespace it is in.
		{"own user namespace", func(s *specs.Spec) { sfJoin(s, specs.UserNamespace, "/proc/self/ns/user") },
			[]string{"user namespace /proc/self/ns/user: setns: invalid argument"}},
		{"time offsets", func(s *specs.Spec) {
			sfJoin(s, specs.TimeNamespace, "/proc/self/ns/time")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
		}, []string{"timeOffsets", "joined time namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantCreateFails(t, tt.edit, tt.wants...)
		})
	}
}

// TestJoinMountNamespace: a container that joins a mount namespace by path
// sees what was mounted in it, builds its root filesystem there (as runc
// does), and adds nothing to the host's mount table.
func TestJoinMountNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", `echo ns_mnt=$(readlink /proc/self/ns/mnt); echo marker=$(cat /mnt/held/marker); echo ns_net=$(readlink /proc/self/ns/net)`}, nil)
	held := filepath.Join(b, "rootfs", "mnt", "held")
	if err := os.MkdirAll(held, 0o755); err != nil {
		t.Fatal(err)
	}
	h := sfStartHolder(t, []string{"--mount", "--propagation", "private"},
		fmt.Sprintf("mount -t tmpfs holder %s && echo from-holder > %s/marker", held, held))
	editBundle(t, b, func(s *specs.Spec) { sfJoin(s, specs.MountNamespace, h.nsPath("mnt")) })
	_, kv := e.runOK(e.id(), b, nil)
	wantKV(t, kv, "ns_mnt", sfNsID(t, "mnt", h.nsPath("mnt")))
	wantKV(t, kv, "marker", "from-holder")
	// The new network namespace, made ahead of the fork, is joined before
	// the mount namespace whose /proc would not show it.
	if host := sfNsID(t, "net", "/proc/self/ns/net"); kv["ns_net"] == host || kv["ns_net"] == "" {
		t.Errorf("ns_net = %q, want a new one (the host's is %s)", kv["ns_net"], host)
	}
	if _, err := os.Stat(filepath.Join(held, "marker")); !os.IsNotExist(err) {
		t.Errorf("the holder's tmpfs shows on the host: %v", err)
	}
}

// TestJoinUserNamespaceStageTwoFails: with a joined user namespace, init's
// second stage does the container's work; when that fails (here a bind
// mount of a missing source), create fails with init's reason and both
// stages, the cgroups and the state directory are gone.
func TestJoinUserNamespaceStageTwoFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	holder := joinHolder(t, e)
	// Its own root: the holder lives in e's.
	f := newEnv(t)
	id := f.id()
	b := f.bundle([]string{"true"}, func(s *specs.Spec) {
		sfJoin(s, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", holder))
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/x", Type: "bind", Source: "/nonexistent-crier-source", Options: []string{"bind"}})
	})
	chownRootfs(t, b)
	out := f.createFails(id, b)
	t.Logf("create: %s", strings.TrimSpace(out))
	wantOneLine(t, "create", out, "mount /mnt/x", "/nonexistent-crier-source")
	f.assertGone(id)
}
