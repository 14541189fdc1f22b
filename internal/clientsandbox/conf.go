package clientsandbox

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// PodmanConf is the containers.conf of a podman sandbox in dir.
// default_ulimits pins the rlimits podman asks for to what this host
// grants: as root it asks for 1048576 open files, more than a host without
// CAP_SYS_RESOURCE allows, and the runtime's setrlimit fails. conmon, and
// so the runtime, runs with the nproc limit podman set itself (32768 at
// most).
func PodmanConf(dir string) string {
	nofile := hostLimit(unix.RLIMIT_NOFILE, 1048576)
	nproc := hostLimit(unix.RLIMIT_NPROC, 32768)
	return fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
lock_type = "file"
tmp_dir = %q
image_copy_tmp_dir = %q
volume_path = %q

[network]
network_config_dir = %q
`, nofile, nofile, nproc, nproc,
		filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), filepath.Join(dir, "tmp"),
		filepath.Join(dir, "volumes"), filepath.Join(dir, "cni"))
}

// ContainerdConf is the config.toml of a containerd sandbox in dir,
// listening on address. Only the overlayfs and native snapshotters can
// work here; the others, the CRI plugin (which wants CNI and a pause
// image) and the restart monitor are off, and opt (which installs into
// /opt/containerd) points into the sandbox.
func ContainerdConf(dir, address string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.restart",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address, address+".ttrpc", filepath.Join(dir, "opt"))
}

// hostLimit is the hard limit of resource r in this process, capped at
// max: the most a container may ask for here.
func hostLimit(r int, max uint64) uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(r, &l); err != nil || l.Max > max {
		return max
	}
	return l.Max
}
