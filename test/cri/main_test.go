//go:build cri

package cri

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

var (
	crierBinFlag = flag.String("crier-bin", "../../bin", "directory of the crier and crier-shim binaries under test")
	runcFlag     = flag.String("runc", "/usr/sbin/runc", "the reference runtime, the second handler")
	toolsFlag    = flag.String("tools", "../../build/cri", "directory of crictl and critest (make cri-tools)")
	stepFlag     = flag.Duration("step-timeout", 40*time.Second, "longest any one crictl command may take")
)

// The sandbox's fixed names. The bridge and the subnet are the host's,
// so they are unique to this suite, not to a run: two runs at once
// would share them (make test runs one).
const (
	bridgeName = "crier-cri0"
	subnet     = "10.88.213.0/24"
	cniNetwork = "crier-cri"
	// The runc shim's namespace directory below each handler's Root:
	// CRI's containers are in containerd's k8s.io namespace.
	k8sNS = "k8s.io"
	// critest's pods ask for this cgroup parent: containerd 1.6 has no
	// RuntimeConfig, so critest takes the driver for systemd's.
	critestCgroupParent = "test.slice"
)

// The images critest uses by default, made offline from the busybox
// rootfs; the pause image is this sandbox's own.
const (
	pauseImage   = "localhost/crier-cri/pause:1"
	busyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	nginxImage   = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	httpdImage   = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	hostnetImage = "gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest"
)

// handler is a CRI runtime handler of the sandbox's containerd.
type handler struct {
	name    string
	runtime string // the OCI runtime binary
	root    string // the runc options' Root
	crier   bool
}

// stateRoot is the --root the shim gives the runtime.
func (h handler) stateRoot() string { return filepath.Join(h.root, k8sNS) }

// suite is what TestMain sets up once for every test.
var suite struct {
	dir          string // every path of the run is below it
	sock         string // containerd's grpc socket
	crier        string // bin/crier
	crictl       string
	critest      string
	handlers     []handler // crier first: the default
	cgroupParent string    // of the crictl scenarios' pods
	containerd   *exec.Cmd
	containerdEx chan struct{}
	log          string // containerd's log
	before       hostSnapshot

	mu  sync.Mutex
	ids []string // pod and container IDs the tests made, for the leak check
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("CRI tests need root; skipping")
		os.Exit(0)
	}
	code := 0
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "CRI test setup:", err)
		if suite.log != "" {
			fmt.Fprintf(os.Stderr, "containerd's log ends with:\n%s\n", logTail(suite.log))
		}
		code = 1
	} else {
		code = m.Run()
	}
	if left := tearDown(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "CRI tests left behind (now swept):\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	os.Exit(code)
}

// remember records a pod or container ID for the leak check.
func remember(id string) {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	suite.ids = append(suite.ids, id)
}

func setUp() error {
	bin, err := filepath.Abs(*crierBinFlag)
	if err != nil {
		return err
	}
	tools, err := filepath.Abs(*toolsFlag)
	if err != nil {
		return err
	}
	suite.crier = filepath.Join(bin, "crier")
	suite.crictl, suite.critest = filepath.Join(tools, "crictl"), filepath.Join(tools, "critest")
	for _, p := range []string{suite.crier, filepath.Join(bin, "crier-shim"), *runcFlag, suite.crictl} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (make build cri-tools first)", err)
		}
	}
	suite.before = snapshotHost()
	if suite.dir, err = os.MkdirTemp("", "crier-cri-"); err != nil {
		return err
	}
	// The containers' users must be able to reach the rootfs below it.
	if err := os.Chmod(suite.dir, 0o755); err != nil {
		return err
	}
	suite.cgroupParent = fmt.Sprintf("crier-cri-test-%d", os.Getpid())
	suite.sock = filepath.Join(suite.dir, "containerd.sock")
	suite.handlers = []handler{
		{name: "crier", runtime: suite.crier, root: filepath.Join(suite.dir, "crier-root"), crier: true},
		{name: "runc", runtime: *runcFlag, root: filepath.Join(suite.dir, "runc-root")},
	}
	// crier event --all watches the crier handler's root from the start:
	// made here as the shim would make it (root's, not group-writable).
	if err := os.MkdirAll(suite.handlers[0].stateRoot(), 0o711); err != nil {
		return err
	}
	if err := writeCNIConf(); err != nil {
		return err
	}
	if err := writeCrictlConf(); err != nil {
		return err
	}
	if err := startContainerd(); err != nil {
		return err
	}
	return importImages()
}

// writeCNIConf writes the bridge network: a bridge of its own on a
// private subnet, the host as gateway, no masquerading (nothing leaves
// the host), addresses kept in the sandbox. It is in place before
// containerd starts, and written whole then renamed: containerd watches
// the directory and would load a half-written file.
func writeCNIConf() error {
	dir := filepath.Join(suite.dir, "cni")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, cniNetwork, bridgeName, subnet, filepath.Join(suite.dir, "cni-ipam"))
	tmp := filepath.Join(dir, ".10-crier-cri.tmp")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "10-crier-cri.conflist"))
}

func writeCrictlConf() error {
	ep := "unix://" + suite.sock
	conf := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 30\ndebug: false\npull-image-on-create: false\ndisable-pull-on-run: true\n", ep, ep)
	return os.WriteFile(filepath.Join(suite.dir, "crictl.yaml"), []byte(conf), 0o644)
}

// startContainerd starts the sandbox's containerd in an IPC namespace of
// its own, which its shims and the containers that share the host's IPC
// namespace inherit: the SysV segments critest makes on "the host" go
// with it.
func startContainerd() error {
	var handlers []clientsandbox.Handler
	for _, h := range suite.handlers {
		handlers = append(handlers, clientsandbox.Handler{Name: h.name, Binary: h.runtime, Root: h.root})
	}
	conf := filepath.Join(suite.dir, "config.toml")
	err := os.WriteFile(conf, []byte(clientsandbox.ContainerdCRIConf(suite.dir, suite.sock, clientsandbox.CRI{
		Handlers:     handlers,
		SandboxImage: pauseImage,
		CNIConfDir:   filepath.Join(suite.dir, "cni"),
		CNIBinDir:    "/usr/lib/cni",
	})), 0o644)
	if err != nil {
		return err
	}
	suite.log = filepath.Join(suite.dir, "containerd.log")
	f, err := os.Create(suite.log)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("containerd", "--config", conf)
	cmd.Stdout, cmd.Stderr, cmd.Dir = f, f, suite.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: syscall.CLONE_NEWIPC}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	suite.containerd, suite.containerdEx = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(suite.containerdEx) }()
	// Ready when the CRI plugin says the runtime and the network are.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-suite.containerdEx:
			return fmt.Errorf("containerd exited before it answered: %v", cmd.ProcessState)
		default:
		}
		out, err := crictlCmd(nil, "info").Output()
		if err == nil && strings.Count(string(out), `"status": true`) >= 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd's CRI not ready after 60s: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// importImages makes the images offline and imports them into the k8s.io
// namespace: one layer (the busybox rootfs with what the stand-ins need,
// writeRootfsLayer) under each name critest uses, with the entrypoint each
// stands in for.
func importImages() error {
	standin := filepath.Join(suite.dir, "standin")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", standin, "./standin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the stand-in binary: %w: %s", err, out)
	}
	base, err := busyboxTarball()
	if err != nil {
		return err
	}
	layer := filepath.Join(suite.dir, "rootfs-layer.tar.gz")
	if err := writeRootfsLayer(base, standin, layer); err != nil {
		return err
	}
	layers := []string{layer}
	images := []clientsandbox.Image{
		{Refs: []string{pauseImage}, Layers: layers, Entrypoint: []string{"/pause"}},
		{Refs: []string{busyboxImage}, Layers: layers, Cmd: []string{"sh"}},
		{Refs: []string{nginxImage}, Layers: layers, Entrypoint: []string{"/bin/nginx", "master process", "80"}},
		{Refs: []string{hostnetImage}, Layers: layers, Entrypoint: []string{"/bin/nginx", "master process", "12003"}},
		// critest looks for "httpd" in its log.
		{Refs: []string{httpdImage}, Layers: layers, Entrypoint: []string{"/bin/sh", "-c", "echo httpd: serving /www on port 80 >&2; exec httpd -f -p 80 -h /www"}},
	}
	for i, img := range images {
		archive := filepath.Join(suite.dir, fmt.Sprintf("image-%d.tar", i))
		if err := clientsandbox.WriteOCIImage(archive, img); err != nil {
			return fmt.Errorf("writing %s: %w", archive, err)
		}
		out, err := exec.Command("ctr", "--address", suite.sock, "--namespace", k8sNS, "images", "import", archive).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %w: %s", archive, err, out)
		}
		os.Remove(archive)
	}
	return nil
}
