package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// On a host with cgroup v1 controllers the shim forks init before it
// claims the container's ID (container.ForkAhead): init's Go runtime
// starts while the state directory is made and the socket bound. A claim
// that fails then (the ID taken meanwhile, the state root out of room)
// must kill and reap that init and leave nothing. TestRaceCreateSameID
// has creates of one ID meet there; this test makes the claim fail every
// time.

// TestForkAheadClaimFails: a state root on a tmpfs with no inode to spare
// lets create see the ID free, fork init, and then fail to make the
// container's temporary state directory: create exits 1 with one line
// naming the mkdir, and no init, no cgroup and no state entry is left,
// with and without a supervisor (where init is the supervisor's child and
// the shim waits for its exit through its pidfd).
func TestForkAheadClaimFails(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/sys/fs/cgroup/pids/tasks"); err != nil {
		t.Skip("no cgroup v1 pids hierarchy to watch create's processes in")
	}
	if !hostHasV1Controllers() {
		t.Skip("no cgroup v1 controllers: init is forked after the claim")
	}
	for _, supervisor := range []string{"off", "on"} {
		t.Run("supervisor "+supervisor, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			root := filepath.Join(e.dir, "full-root")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			// The root directory is the tmpfs's one inode.
			if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0700,nr_inodes=1"); err != nil {
				t.Fatalf("mount a tmpfs on %s: %v", root, err)
			}
			t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
			b := e.bundle([]string{"true"}, nil)
			for range 3 {
				id := e.id()
				// Init, if the claim's failure left it, lives on
				// only until its runtime has started and it reads
				// the end of its sync socket: some milliseconds
				// after create returned. So create runs in a cgroup
				// of its own, which init, forked from it, is in
				// too, and which must be empty when create returns.
				probe := filepath.Join("/sys/fs/cgroup/pids", id+"-probe")
				if err := os.Mkdir(probe, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(probe) })
				// The later --root is the one that counts.
				cmd := e.cliCommand("--root", root, "--supervisor", supervisor, "create", "--bundle", b, id)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := runInCgroup(cmd, probe)
				left, _ := os.ReadFile(filepath.Join(probe, "cgroup.procs"))
				if exitCode(err) != 1 {
					t.Errorf("create: %v, want exit 1; output %q", err, out.String())
				}
				if len(left) > 0 {
					t.Errorf("processes of create alive after it returned: %q", left)
				}
				wantOneLine(t, "create", out.String(), "mkdir", root, "no space left on device")
				if left := processesWithCwd(b); len(left) > 0 {
					t.Errorf("init left after the failed create: %v", left)
				}
				if entries, _ := os.ReadDir(root); len(entries) > 0 {
					t.Errorf("state root %s holds %v", root, names(entries))
				}
				wantNoCgroups(t, id)
			}
		})
	}
}

// runInCgroup runs cmd to its end in the v1 cgroup dir, as every process
// it forks is: the forking thread joins dir alone (a write of 0 to its
// tasks file) and goes back to where it was once cmd has started.
func runInCgroup(cmd *exec.Cmd, dir string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hier := filepath.Dir(dir)
	own, err := threadCgroup(filepath.Base(hier))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte("0"), 0); err != nil {
		return err
	}
	err = cmd.Start()
	if berr := os.WriteFile(filepath.Join(hier, own, "tasks"), []byte("0"), 0); berr != nil {
		// A thread that cannot go back must not be reused.
		runtime.Goexit()
	}
	if err != nil {
		return err
	}
	return cmd.Wait()
}

// threadCgroup returns the calling thread's cgroup in the v1 hierarchy of
// controller ctl.
func threadCgroup(ctl string) (string, error) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range cgroupLines(string(b)) {
		if ctls, path, ok := strings.Cut(line, ":"); ok && ctls == ctl {
			return path, nil
		}
	}
	return "", errors.New("/proc/thread-self/cgroup: no " + ctl + " hierarchy")
}
