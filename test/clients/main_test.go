//go:build clients

package clients

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	runtimeFlag = flag.String("runtime", "../../bin/crier", "the OCI runtime the clients drive (crier, or runc as the reference)")
	stepFlag    = flag.Duration("step-timeout", 25*time.Second, "longest any one client command may take before it counts as hung")
)

// suite is what TestMain sets up once for every client.
var suite struct {
	runtime string // absolute path of the runtime under test
	crier   bool   // the runtime is crier: its own event check runs too
	tarball string // busybox rootfs, .tar.gz, from the runtime-tools module
	tmp     string // parent of every sandbox: every path of ours contains it
	prefix  string // starts every container name and cgroup parent of this run
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("client tests need root; skipping")
		os.Exit(0)
	}
	if err := setupSuite(); err != nil {
		fmt.Fprintln(os.Stderr, "client test setup:", err)
		os.Exit(1)
	}
	// Directories outside the sandboxes that the clients or the runtime
	// make whatever they are told: those that were not there before go
	// at the end, if empty.
	var made []string
	for _, d := range []string{"/run/docker", "/run/docker/plugins", "/run/crier", "/run/runc"} {
		if _, err := os.Stat(d); err != nil {
			made = append(made, d)
		}
	}
	code := m.Run()
	for i := len(made) - 1; i >= 0; i-- {
		os.Remove(made[i])
	}
	if err := os.RemoveAll(suite.tmp); err != nil {
		fmt.Fprintln(os.Stderr, "removing the suite's files:", err)
		code = 1
	}
	os.Exit(code)
}

func setupSuite() error {
	rt, err := filepath.Abs(*runtimeFlag)
	if err != nil {
		return err
	}
	suite.runtime = rt
	out, err := exec.Command(rt, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w (for crier, run make build first)", rt, err)
	}
	suite.crier = strings.HasPrefix(string(out), "crier ")
	if suite.tarball, err = busyboxTarball(); err != nil {
		return err
	}
	// Short names: they end up in unix socket paths (108 bytes at most).
	suite.prefix = fmt.Sprintf("cc%d", os.Getpid())
	if suite.tmp, err = os.MkdirTemp("", suite.prefix+"-"); err != nil {
		return err
	}
	// The containers' users must be able to reach the rootfs below it.
	return os.Chmod(suite.tmp, 0o755)
}

// busyboxTarball finds the busybox rootfs that the runtime-tools module
// ships (the integration tests use the same), fetching the module through
// the Go module proxy if it is not in the module cache yet.
func busyboxTarball() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0").Output()
	if err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	p := filepath.Join(mod.Dir, "rootfs-amd64.tar.gz")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
