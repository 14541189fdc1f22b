package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// benchPath is the PATH of the benchmark and of every runtime it runs:
// Debian puts runc in /usr/sbin.
const benchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func init() {
	// Only the PATH: each command also gets an explicit, minimal env.
	p := os.Getenv("PATH")
	if p == "" {
		p = benchPath
	} else {
		p = p + ":" + benchPath
	}
	os.Setenv("PATH", p)
}

// packages maps the binaries the benchmark runs to their Debian packages.
var packages = []struct{ bin, pkg string }{
	{"runc", "runc"},
	{"crun", "crun"},
	{"conmon", "conmon"},
	{"containerd", "containerd"},
	{"ctr", "containerd"},
	{"containerd-shim-runc-v2", "containerd"},
	{"podman", "podman"},
	{"unshare", "util-linux"},
	{"tar", "tar"},
}

// ensurePackages installs the Debian packages whose binaries are missing,
// after one apt-get update. runc and crun are required; conmon, containerd
// and podman only give their rows of the tables.
func ensurePackages() error {
	var missing []string
	seen := map[string]bool{}
	for _, p := range packages {
		if _, err := exec.LookPath(p.bin); err != nil && !seen[p.pkg] {
			seen[p.pkg] = true
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Printf("bench: installing %s\n", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	up := exec.Command("apt-get", "update", "-qq")
	up.Stdout, up.Stderr, up.Env = os.Stdout, os.Stderr, env
	if err := up.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	in := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	in.Stdout, in.Stderr, in.Env = os.Stdout, os.Stderr, env
	if err := in.Run(); err != nil {
		fmt.Printf("bench: apt-get install failed (%v); going on with what is there\n", err)
	}
	for _, need := range []string{"runc", "crun", "unshare", "tar"} {
		if _, err := exec.LookPath(need); err != nil {
			return fmt.Errorf("%s is required and could not be installed", need)
		}
	}
	return nil
}

// runc15Dirs are where a runc 1.5.3 may already be: make runc-suite's
// (test/runcsuite/run.sh) and the benchmark's own, which outlives a run
// because building runc takes a minute.
var runc15Dirs = []string{"/var/tmp/crier-runc-suite/bin", "/var/tmp/crier-bench/bin"}

// ensureRunc15 returns a runc 1.5.3 binary: -runc-1.5.3, or one already
// built, or else it installs one from the Go module proxy into the
// benchmark's own directory (with Debian's gcc, pkg-config and
// libseccomp-dev, which it installs if missing).
func ensureRunc15() (string, error) {
	is153 := func(p string) bool {
		out, err := exec.Command(p, "--version").Output()
		return err == nil && strings.HasPrefix(string(out), "runc version 1.5.3\n")
	}
	if *flagRunc15 != "" {
		if !is153(*flagRunc15) {
			return "", fmt.Errorf("%s: not runc 1.5.3", *flagRunc15)
		}
		return *flagRunc15, nil
	}
	for _, d := range runc15Dirs {
		if p := filepath.Join(d, "runc"); is153(p) {
			return p, nil
		}
	}
	var missing []string
	for _, pkg := range []string{"gcc", "pkg-config", "libseccomp-dev"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", pkg).Output(); err != nil || !strings.HasSuffix(string(out), " installed") {
			missing = append(missing, pkg)
		}
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if len(missing) > 0 {
		fmt.Printf("bench: installing %s to build runc 1.5.3\n", strings.Join(missing, " "))
		in := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
		in.Stdout, in.Stderr, in.Env = os.Stdout, os.Stderr, env
		if err := in.Run(); err != nil {
			return "", fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
		}
	}
	dir := runc15Dirs[len(runc15Dirs)-1]
	fmt.Printf("bench: go install runc v1.5.3 into %s\n", dir)
	in := exec.Command("go", "install", "-tags", "seccomp", "github.com/opencontainers/runc@v1.5.3")
	in.Dir = os.TempDir() // outside any module
	in.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=1")
	if out, err := in.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install runc@v1.5.3: %v\n%s", err, out)
	}
	if p := filepath.Join(dir, "runc"); is153(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s/runc: go install ran but it is not runc 1.5.3", dir)
}

// prepare builds the exit-stamp helper, unpacks the busybox rootfs of the
// runtime-tools module with the helper in it, and writes the spec template
// every bundle is made from.
func prepare(repo, work string) error {
	stamp := filepath.Join(work, "exitstamp")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", stamp, "./bench/exitstamp")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the exit-stamp helper: %v\n%s", err, out)
	}
	// The Go half of the exec floor (floor.go), built as crier is.
	hello := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(work, "gohello"), "./bench/gohello")
	hello.Dir = repo
	hello.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := hello.CombinedOutput(); err != nil {
		return fmt.Errorf("build the Go hello of the exec floor: %v\n%s", err, out)
	}
	dl := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0")
	dl.Dir = repo
	out, err := dl.Output()
	if err != nil {
		return fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download runtime-tools: no module directory in %q", out)
	}
	rootfs := filepath.Join(work, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	tarball := filepath.Join(mod.Dir, "rootfs-amd64.tar.gz")
	if out, err := exec.Command("tar", "xzf", tarball, "-C", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack the rootfs: %v\n%s", err, out)
	}
	// The clients section makes its images from the tarball itself.
	raw, err := os.ReadFile(tarball)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, busyboxTarball), raw, 0o644); err != nil {
		return err
	}
	b, err := os.ReadFile(stamp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "exitstamp"), b, 0o755); err != nil {
		return err
	}
	// runc's default spec, the reference every runtime understands, less
	// the ambient capabilities (crier refuses to raise ambient capabilities
	// that are not inheritable; runc and crun skip them) and the terminal.
	specDir := filepath.Join(work, "spec")
	os.MkdirAll(specDir, 0o755)
	sp := exec.Command("runc", "spec")
	sp.Dir = specDir
	if out, err := sp.CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v\n%s", err, out)
	}
	raw, err = os.ReadFile(filepath.Join(specDir, "config.json"))
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	if caps, ok := proc["capabilities"].(map[string]any); ok {
		delete(caps, "ambient")
	}
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	raw, err = json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "spec.json"), raw, 0o644)
}

// makeBundle writes a bundle (only a config.json: the root path is
// absolute) whose process runs args.
func (b *B) makeBundle(name string, args ...string) (string, error) {
	var spec map[string]any
	if err := json.Unmarshal(b.spec, &spec); err != nil {
		return "", err
	}
	spec["process"].(map[string]any)["args"] = args
	raw, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.work, "bundles", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
}

// machine describes the host for the report.
func machine() [][2]string {
	var u unix.Utsname
	unix.Uname(&u)
	cpu := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int
				fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return [][2]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04 MST")},
		{"CPU", cpu},
		{"cores (nproc)", fmt.Sprint(goruntime.NumCPU())},
		{"memory", mem},
		{"kernel", unix.ByteSliceToString(u.Release[:])},
		{"cgroups", "v1 (hybrid host; /sys/fs/cgroup/unified unmounted in the benchmark's mount namespace)"},
	}
}

// versions returns the first line of each tool's version output.
func (b *B) versions() [][2]string {
	first := func(argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return "not available"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	v := [][2]string{{"crier", first(b.crier.bin, "--version") + " (" + b.crier.bin + ")"}}
	v = append(v, [2]string{"runc", first("runc", "--version")})
	if b.runc15 != nil {
		v = append(v, [2]string{"runc 1.5.3", first(b.runc15.bin, "--version") + " (" + b.runc15.bin + ")"})
	}
	v = append(v, [2]string{"crun", first("crun", "--version")})
	v = append(v, [2]string{"conmon", first("conmon", "--version")})
	v = append(v, [2]string{"containerd", first("containerd", "--version")})
	v = append(v, [2]string{"podman", first("podman", "--version")})
	v = append(v, [2]string{"Go (crier and the benchmark)", goruntime.Version()})
	if gitRev, err := exec.Command("git", "-C", b.repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev := strings.TrimSpace(string(gitRev))
		if st, err := exec.Command("git", "-C", b.repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			rev += " with uncommitted changes"
		}
		v = append(v, [2]string{"crier commit", rev})
	}
	return v
}
