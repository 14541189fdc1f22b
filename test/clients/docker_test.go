//go:build clients

package clients

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// docker is dockerd 20.10 with the containerd it starts itself, in a
// sandbox of its own: private data-root, exec-root, socket, pidfile and
// configuration, no bridge, no iptables, vfs storage, cgroupfs, and the
// runtime under test added by path and made the default.
type docker struct {
	dockerish
	daemon     *daemon
	containerd string // the address of dockerd's containerd
}

// dockerRuntimeName is the name dockerd knows the runtime under test by:
// its base name, except that "runc" is taken by docker's own.
func dockerRuntimeName() string {
	name := filepath.Base(suite.runtime)
	if name == "runc" {
		name = "runc-ref"
	}
	return name
}

func startDocker(t *testing.T) client {
	sb := newSandbox(t, "docker", "containerd-shim")
	exec := filepath.Join(sb.dir, "exec")
	sock := filepath.Join(sb.dir, "docker.sock")
	conf := filepath.Join(sb.dir, "daemon.json")
	// Without deprecated-key-path (no flag for it in 20.10), dockerd
	// writes its trust key to /etc/docker/key.json.
	writeFile(t, conf, fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(sb.dir, "key.json")))
	rt := dockerRuntimeName()
	// containerd-shim-runc-v2 gives the runtime this --root. dockerd 20.10
	// names it after runc whatever the runtime's name is (seen in the
	// runtime's arguments).
	sb.rtRoot = filepath.Join(exec, "runtime-runc", "moby")
	c := &docker{
		dockerish: dockerish{
			sandbox: sb,
			tool: tool{bin: "/usr/bin/docker", dir: sb.dir,
				args: []string{"--host", "unix://" + sock},
				env:  []string{"DOCKER_CONFIG=" + filepath.Join(sb.dir, "client")}},
			image: "crier-clients:busybox",
			rmAll: []string{"rm", "-f"},
		},
		containerd: filepath.Join(exec, "containerd", "containerd.sock"),
	}
	sb.shimSocket = func(id string) string { return shimSocket(c.containerd, "moby", id) }
	t.Cleanup(func() { tearDown(t, c) })
	c.daemon = startDaemon(t, sb.dir, "dockerd", "dockerd",
		"--data-root", filepath.Join(sb.dir, "data"),
		"--exec-root", exec,
		"--pidfile", filepath.Join(sb.dir, "docker.pid"),
		"--host", "unix://"+sock,
		"--config-file", conf,
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--storage-driver", "vfs",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", "/"+sb.trace.cgroupParent,
		"--add-runtime", rt+"="+suite.runtime,
		"--default-runtime", rt,
	)
	c.daemon.waitReady(t, func() bool { return c.try(t, *stepFlag, "version").code == 0 })
	c.ok(t, "import", "--change", "ENV PATH=/bin:/sbin:/usr/bin", suite.tarball, c.image)
	return c
}

// shimSocket is where containerd 1.6 puts the socket of a container's
// shim: a hash of its address, namespace and ID, under /run/containerd/s
// whatever the daemon's state directory is.
func shimSocket(address, namespace, id string) string {
	return fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(address, namespace, id))))
}

func (c *docker) shutdown(t *testing.T) {
	if c.daemon == nil {
		return
	}
	c.removeAll(t)
	c.daemon.stop(t)
	if t.Failed() {
		t.Logf("dockerd's log ends with:\n%s", strings.TrimSpace(c.daemon.logTail()))
	}
}
