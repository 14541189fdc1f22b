//go:build clients

package clients

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// podman is podman with conmon, rootful, in a sandbox of its own: private
// configuration, storage, run and tmp directories, no network, and the
// runtime under test given by path (--runtime). No daemon: each command
// is a process, and conmon stays beside each container.
type podman struct{ dockerish }

func startPodman(t *testing.T) client {
	sb := newSandbox(t, "podman", "conmon")
	// Rootful podman passes the runtime no --root: runc and crier use
	// their default state directory (sb.stateDir).
	conf := filepath.Join(sb.dir, "containers.conf")
	storage := filepath.Join(sb.dir, "storage.conf")
	writeFile(t, conf, clientsandbox.PodmanConf(sb.dir))
	writeFile(t, storage, fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(sb.dir, "root"), filepath.Join(sb.dir, "runroot")))
	c := &podman{dockerish{
		sandbox: sb,
		tool: tool{bin: "podman", dir: sb.dir,
			args: []string{
				"--root", filepath.Join(sb.dir, "root"),
				"--runroot", filepath.Join(sb.dir, "runroot"),
				"--tmpdir", filepath.Join(sb.dir, "tmp"),
				"--storage-driver", "vfs",
				"--cgroup-manager", "cgroupfs",
				"--events-backend", "file",
				"--runtime", suite.runtime,
			},
			env: []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage}},
		image: "localhost/crier-clients:busybox",
		// Its containers' cgroups, and conmon's, go under a parent of
		// this run's, which the sweep can find and remove.
		runArgs: []string{"--cgroup-parent", "/" + sb.trace.cgroupParent},
		// Without -t 0, rm -f first waits 10 s for SIGTERM to work.
		rmAll: []string{"rm", "-f", "-t", "0"},
	}}
	t.Cleanup(func() { tearDown(t, c) })
	c.ok(t, "import", "--change", "ENV PATH=/bin:/sbin:/usr/bin", suite.tarball, c.image)
	return c
}

func (c *podman) shutdown(t *testing.T) { c.removeAll(t) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
