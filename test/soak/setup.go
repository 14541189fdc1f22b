package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// soak is one run: its binaries, its private state root and files, the
// config every container starts from, and the figures.
type soak struct {
	o       *options
	crier   string
	shimBin string
	tmp     string // everything the soak makes on disk is below it
	root    string // crier's --root
	rootfs  string // one busybox rootfs, read-only, shared by every container
	// cgParent is the soak's own cgroup parent (linux.cgroupsPath
	// /cgParent/ID): what is left below it, in any hierarchy, is a leak.
	cgParent string
	template []byte // config.json of `crier spec`, edited (bundleConfig)
	stats    stats
	// durations of normal create, start and delete runs, for the random
	// kill points.
	timing timing
}

func setup(o *options) (*soak, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	s := &soak{o: o, crier: filepath.Join(bin, "crier"), shimBin: filepath.Join(bin, "crier-shim")}
	for _, b := range []string{s.crier, s.shimBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%w (run make build first)", err)
		}
	}
	s.timing.init()
	s.cgParent = fmt.Sprintf("crier-soak-%d", os.Getpid())
	// 0755: the container's user must reach the rootfs.
	if s.tmp, err = os.MkdirTemp("", "crier-soak-"); err != nil {
		return nil, err
	}
	os.Chmod(s.tmp, 0o755)
	s.root = filepath.Join(s.tmp, "root")
	s.rootfs = filepath.Join(s.tmp, "rootfs")
	if err := s.extractRootfs(); err != nil {
		return nil, err
	}
	if err := s.makeTemplate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *soak) extractRootfs() error {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0").Output()
	if err != nil {
		return fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	if err := os.Mkdir(s.rootfs, 0o755); err != nil {
		return err
	}
	tarball := filepath.Join(mod.Dir, "rootfs-amd64.tar.gz")
	if out, err := exec.Command("tar", "xzf", tarball, "-C", s.rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("extract %s: %v: %s", tarball, err, out)
	}
	return nil
}

// makeTemplate keeps `crier spec`'s config with the shared rootfs, no
// terminal, and the soak's cgroup parent.
func (s *soak) makeTemplate() error {
	dir := filepath.Join(s.tmp, "spec")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command(s.crier, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("crier spec: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("config.json of crier spec: %w", err)
	}
	spec.Process.Terminal = false
	spec.Root = &specs.Root{Path: s.rootfs, Readonly: true}
	s.template, err = json.Marshal(&spec)
	return err
}

// writeBundle writes dir/config.json: the template running args, in the
// cgroup /cgParent/id.
func (s *soak) writeBundle(dir, id string, args []string) error {
	var spec specs.Spec
	if err := json.Unmarshal(s.template, &spec); err != nil {
		return err
	}
	spec.Process.Args = args
	spec.Linux.CgroupsPath = "/" + s.cgParent + "/" + id
	b, err := json.Marshal(&spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// cleanupTmp removes the soak's files, unless something still uses them:
// a leak is left where it is, to be looked at.
func (s *soak) cleanupTmp(l leaks) {
	if l.any() {
		fmt.Printf("soak: leaving %s for inspection\n", s.tmp)
		return
	}
	if err := os.RemoveAll(s.tmp); err != nil {
		fmt.Printf("soak: removing %s: %v\n", s.tmp, err)
	}
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// execFloor is the median time of fork+exec+wait of /bin/true: what any
// command costs on this machine before it does anything.
func execFloor() time.Duration {
	var ds []time.Duration
	for range 21 {
		t := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			return 0
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return ds[len(ds)/2].Round(10 * time.Microsecond)
}
