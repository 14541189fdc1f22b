package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	crcontainer "github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// container is the run's one container, its files, and the helper process
// that adopt requests name.
type container struct {
	crier string
	dir   string // everything the run makes, removed at the end
	root  string
	id    string
	sock  string

	helper      *exec.Cmd
	helperPid   int
	helperPidfd int
}

// newContainer makes a bundle of busybox running sleep, and starts the
// helper.
func newContainer(bin string) (*container, error) {
	crier, err := filepath.Abs(filepath.Join(bin, "crier"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(crier); err != nil {
		return nil, fmt.Errorf("%w (run make build first)", err)
	}
	dir, err := os.MkdirTemp("", "crier-fuzz-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	c := &container{crier: crier, dir: dir, root: filepath.Join(dir, "root"), id: fmt.Sprintf("fuzz%d", os.Getpid())}
	c.sock = statedir.SocketPath(c.root, c.id)
	if err := c.bundle(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.helper = exec.Command("sleep", "1000000")
	if err := c.helper.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start the helper: %w", err)
	}
	c.helperPid = c.helper.Process.Pid
	if c.helperPidfd, err = unix.PidfdOpen(c.helperPid, 0); err != nil {
		c.stopHelper()
		os.RemoveAll(dir)
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	return c, nil
}

func (c *container) bundle() error {
	tarball, err := busyboxTarball()
	if err != nil {
		return err
	}
	rootfs := filepath.Join(c.dir, "bundle", "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("tar", "xzf", tarball, "-C", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("extract %s: %v: %s", tarball, err, out)
	}
	b := filepath.Join(c.dir, "bundle")
	if _, err := c.cli(context.Background(), "spec", "--bundle", b); err != nil {
		return err
	}
	cfg := filepath.Join(b, "config.json")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", cfg, err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sleep", "1000000"}
	raw, _ = json.Marshal(&spec)
	return os.WriteFile(cfg, raw, 0o644)
}

// busyboxTarball finds the busybox rootfs that the runtime-tools module
// ships, as the integration tests do.
func busyboxTarball() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0").Output()
	if err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	p := filepath.Join(mod.Dir, "rootfs-amd64.tar.gz")
	_, err = os.Stat(p)
	return p, err
}

func (c *container) createAndStart() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.cli(ctx, "create", "--bundle", filepath.Join(c.dir, "bundle"), c.id); err != nil {
		return err
	}
	_, err := c.cli(ctx, "start", c.id)
	return err
}

// shim returns the shim's pid and start time, from the state file.
func (c *container) shim() (int, uint64, error) {
	st, err := statedir.ReadState(c.root, c.id)
	if err != nil {
		return 0, 0, err
	}
	start, err := crcontainer.StartTime(st.ShimPid)
	if err != nil || start != st.ShimStart {
		return 0, 0, fmt.Errorf("shim pid %d is not running (%v)", st.ShimPid, err)
	}
	return st.ShimPid, st.ShimStart, nil
}

// state asks the shim for the container's status.
func (c *container) state() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := protocol.Dial(ctx, c.sock)
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	st, err := cl.State(ctx)
	if err != nil {
		return err.Error()
	}
	return string(st.Status)
}

func (c *container) delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.cli(ctx, "delete", "--force", c.id)
	return err
}

// gone checks that the shim exited and the state directory went with it.
func (c *container) gone(shimPid int, shimStart uint64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		start, err := crcontainer.StartTime(shimPid)
		if err != nil || start != shimStart {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shim pid %d still runs 10s after delete", shimPid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(statedir.DirPath(c.root, c.id)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state directory %s is still there (%v)", statedir.DirPath(c.root, c.id), err)
	}
	return nil
}

func (c *container) stopHelper() {
	if c.helper.ProcessState == nil {
		c.helper.Process.Kill()
		c.helper.Wait()
	}
}

// cleanup removes what a failed run may have left.
func (c *container) cleanup() {
	if _, err := os.Stat(statedir.DirPath(c.root, c.id)); err == nil {
		c.delete()
	}
	c.stopHelper()
	os.RemoveAll(c.dir)
}
