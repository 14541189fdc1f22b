package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
)

// The attacks of issue 8, finding 2 (a state root another user can write),
// finding 3 (the pid file) and item 6 (the dead-shim kill), done for real:
// the attacker's files are made as uid 1000, the victim is a root-owned
// file, and the CLI runs as root.

const attackerUID = 1000

// markerHook is a poststop hook that creates marker.
func markerHook(marker string) specs.Hook {
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo ran > " + marker}}
}

// asAttacker hands path (not following a link) to the attacker's uid.
func asAttacker(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, attackerUID, attackerUID); err != nil {
			t.Fatal(err)
		}
	}
}

// deadSocket leaves a socket file at path that nobody listens on, as a
// dead shim leaves it: connecting gives ECONNREFUSED.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// victimFile makes a root-owned 0600 file with known content.
func victimFile(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	content := "precious " + name + "\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, content
}

func wantUnchanged(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != content {
		t.Errorf("%s was written through a link: now %q (%v), was %q", path, b, err, content)
	}
}

func wantAbsent(t *testing.T, marker, what string) {
	t.Helper()
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("%s: the hook ran as root (%s exists)", what, marker)
	}
}

// plantContainer makes, as the attacker, the directory of container id in
// root with a state file naming bundle, status stopped, and a dead socket.
func plantContainer(t *testing.T, root, id, bundle string) {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st := map[string]any{
		"ociVersion": specs.Version, "id": id, "pid": 0, "status": "stopped",
		"bundle": bundle, "rootfs": filepath.Join(bundle, "rootfs"), "created": "2024-01-01T00:00:00Z",
		"owner": "root", "shimPid": 0, "shimStart": 0,
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	deadSocket(t, filepath.Join(dir, protocol.SocketName))
	asAttacker(t, dir, filepath.Join(dir, "state.json"), filepath.Join(dir, protocol.SocketName))
}

// TestStateRootOfOtherUserRefused is finding 2's first attack: uid 1000
// made the state root and planted a container whose state file names a
// bundle with a poststop hook, and whose shim is dead. Root's delete, with
// and without --force, must refuse the root, and the hook must not run.
// The same holds when only the container directory is the attacker's.
func TestStateRootOfOtherUserRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	marker := filepath.Join(e.dir, "hook-ran")
	bundle := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Poststop: []specs.Hook{markerHook(marker)}}
	})
	evil := filepath.Join(e.dir, "shared-root")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(evil) })
	asAttacker(t, evil)
	plantContainer(t, evil, id, bundle)

	want := fmt.Sprintf("state root %s: owned by uid %d, not 0", evil, attackerUID)
	for _, args := range [][]string{{"delete", id}, {"delete", "--force", id}, {"kill", id, "KILL"}, {"state", id}, {"list"}} {
		r := e.cliRun(append([]string{"--root", evil}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v in a root of uid %d: exit %d, stderr %q; want a refusal %q", args, attackerUID, r.code, r.stderr, want)
		}
		wantAbsent(t, marker, strings.Join(args, " "))
	}

	// A root of our own, but a container directory of the attacker's.
	own := filepath.Join(e.dir, "own-root")
	if err := os.Mkdir(own, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(own) })
	plantContainer(t, own, id, bundle)
	want = fmt.Sprintf("state directory %s: owned by uid %d, not 0", filepath.Join(own, id), attackerUID)
	for _, args := range [][]string{{"delete", id}, {"delete", "--force", id}} {
		r := e.cliRun(append([]string{"--root", own}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v on a container directory of uid %d: exit %d, stderr %q; want a refusal %q", args, attackerUID, r.code, r.stderr, want)
		}
		wantAbsent(t, marker, strings.Join(args, " "))
	}
}

// TestStateTempLinkNotFollowed is finding 2's second attack: a link at the
// state file's old temporary name, ROOT/ID/state.json.tmp, to a root-owned
// file. The container starts, exits and is deleted: the shim writes its
// state file each time, and the file behind the link stays as it was.
func TestStateTempLinkNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	victim, content := victimFile(t, e.dir, "victim")
	e.create(id, e.bundle([]string{"true"}, nil))
	dir := filepath.Join(e.root, id)
	for _, name := range []string{"state.json.tmp", ".state.json.tmp", "state.json~"} {
		link := filepath.Join(dir, name)
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		asAttacker(t, link)
	}
	sub := e.subscribe(id, true)
	e.cliOK("start", id)
	next(t, sub, protocol.EventStopped)
	if st := e.state(id); st.Status != protocol.StatusStopped {
		t.Errorf("state after exit: %s, want stopped", st.Status)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "state.json")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("state.json after exit: %v %v, want a regular file", fi, err)
	}
	e.cliOK("delete", id)
	wantUnchanged(t, victim, content)
	e.assertGone(id)
}

// TestStateRootWritableByOthersRefused: a root that the group or others can
// write is refused by every verb, with the path and the mode; so is a
// container directory that is. Restored to 0700, all works again.
func TestStateRootWritableByOthersRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	bundle := e.bundle([]string{"true"}, nil)
	e.create(id, bundle)
	for _, m := range []struct {
		mode os.FileMode
		text string
	}{{0o777, "0777"}, {0o770, "0770"}, {0o777 | os.ModeSticky, "1777"}} {
		if err := os.Chmod(e.root, m.mode); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("state root %s: writable by group or others (mode %s)", e.root, m.text)
		for _, args := range [][]string{
			{"create", "--bundle", bundle, e.id()}, {"list"}, {"state", id}, {"start", id},
			{"kill", id}, {"delete", id}, {"delete", "--force", id}, {"event", "--timeout", "5s", id},
		} {
			r := e.cliRun(args...)
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("%v with the root mode %s: exit %d, stderr %q; want a refusal %q", args, m.text, r.code, r.stderr, want)
			}
		}
	}
	if err := os.Chmod(e.root, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.root, id)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("state directory %s: writable by group or others (mode 0777)", dir)
	if r := e.cliRun("delete", "--force", id); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("delete --force of a 0777 container directory: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if st := e.state(id); st.Status != protocol.StatusCreated {
		t.Errorf("state once the modes are restored: %s, want created", st.Status)
	}
	e.cliOK("delete", "--force", id)
	e.assertGone(id)
}

// TestPidFileLinkNotFollowed is finding 3: in a directory others can write
// (as /tmp, with fs.protected_symlinks off), uid 1000 links the pid file's
// predictable temporaries to a root-owned file. create --pid-file writes
// the right pid and leaves the file alone. A link at the pid file's own
// name is replaced by the pid file, as runc's rename does, never written
// through.
func TestPidFileLinkNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := e.hostDir("shared") // 0777, as /tmp
	victim, content := victimFile(t, e.dir, "victim")
	pidFile := filepath.Join(shared, "c.pid")
	for _, name := range []string{"c.pid.tmp", ".c.pid", ".c.pid.tmp"} {
		link := filepath.Join(shared, name)
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		asAttacker(t, link)
	}
	atName := filepath.Join(shared, "d.pid")
	victim2, content2 := victimFile(t, e.dir, "victim2")
	if err := os.Symlink(victim2, atName); err != nil {
		t.Fatal(err)
	}
	asAttacker(t, atName)

	bundle := e.bundle([]string{"true"}, nil)
	for _, c := range []struct{ id, pidFile string }{{e.id(), pidFile}, {e.id(), atName}} {
		e.create(c.id, bundle, "--pid-file", c.pidFile)
		fi, err := os.Lstat(c.pidFile)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("pid file %s: %v %v, want a regular file", c.pidFile, fi, err)
		}
		b, _ := os.ReadFile(c.pidFile)
		if got := string(b); got != strconv.Itoa(e.state(c.id).Pid) {
			t.Errorf("pid file %s holds %q, want the container's pid %d", c.pidFile, got, e.state(c.id).Pid)
		}
		e.cliOK("delete", "--force", c.id)
	}
	wantUnchanged(t, victim, content)
	wantUnchanged(t, victim2, content2)
	// Nothing but the links, the pid files and no temporaries left.
	ents, _ := os.ReadDir(shared)
	if len(ents) != 5 {
		t.Errorf("%s holds %d entries, want the 4 links and the pid file: %v", shared, len(ents), ents)
	}
}

// TestDeadShimDeleteUsesRecordedHooks: with the shim dead, delete runs the
// poststop hooks of the config the container was created from, recorded
// by the shim, not those of the bundle as it is now: whoever can write the
// bundle must not get a hook run as root by changing config.json later.
func TestDeadShimDeleteUsesRecordedHooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.id()
	created := filepath.Join(e.dir, "created-hook-ran")
	swapped := filepath.Join(e.dir, "swapped-hook-ran")
	bundle := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Poststop: []specs.Hook{markerHook(created)}}
	})
	e.create(id, bundle)
	e.cliOK("start", id)
	editBundle(t, bundle, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Poststop: []specs.Hook{markerHook(swapped)}}
	})
	killShim(t, e.shimState(id))
	e.cliOK("delete", "--force", id)
	if _, err := os.Stat(created); err != nil {
		t.Errorf("the poststop hook the container was created with did not run: %v", err)
	}
	wantAbsent(t, swapped, "delete after config.json was changed")
	e.assertGone(id)
}

// TestDeadShimKillSparesOtherProcess: with the shim dead, the state file
// names a pid that is now another process (as after pid reuse: a live
// process of the test, started at another time). kill, kill --all and
// delete --force must not signal it.
func TestDeadShimKillSparesOtherProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, st := e.startSleeper()
	killShim(t, st)

	decoy := exec.Command("sleep", "1000")
	if err := decoy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { decoy.Process.Kill(); decoy.Wait() })
	decoyStart, err := container.StartTime(decoy.Process.Pid)
	if err != nil || decoyStart == st.PidStart {
		t.Fatalf("decoy start time %d (%v), container's %d: cannot tell them apart", decoyStart, err, st.PidStart)
	}
	// Root rewrites the state file as the recycled pid would have it.
	raw, err := os.ReadFile(filepath.Join(e.root, id, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["pid"] = decoy.Process.Pid
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(e.root, id, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	decoyFD := openPidfd(t, decoy.Process.Pid)
	containerFD := openPidfd(t, st.Pid)
	if r := e.cliRun("kill", id, "KILL"); r.code == 0 {
		t.Errorf("kill of a pid that is not the container's succeeded: %s", r.stderr)
	}
	e.cliRun("kill", "--all", id, "KILL")
	if pidfdExited(decoyFD, 0) {
		t.Fatalf("kill signalled process %d, which is not the container's", decoy.Process.Pid)
	}
	e.cliOK("delete", "--force", id)
	if pidfdExited(decoyFD, 0) {
		t.Errorf("delete --force signalled process %d, which is not the container's", decoy.Process.Pid)
	}
	if !pidfdExited(containerFD, hangDeadline) {
		t.Errorf("the container's process %d survived delete --force", st.Pid)
	}
	e.assertGone(id)
}
