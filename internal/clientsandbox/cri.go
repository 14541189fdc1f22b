package clientsandbox

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Handler is a CRI runtime handler: containerd-shim-runc-v2 driving the
// OCI runtime Binary, with its state below Root (the shim gives the
// runtime --root Root/<namespace>).
type Handler struct {
	Name   string
	Binary string
	Root   string
}

// CRI is what a containerd sandbox with its CRI plugin on needs beyond
// ContainerdConf's: the runtime handlers (the first is the default), the
// pause image, and the CNI configuration and plugin directories.
type CRI struct {
	Handlers     []Handler
	SandboxImage string
	CNIConfDir   string
	CNIBinDir    string
}

// ContainerdCRIConf is the config.toml of a containerd sandbox in dir,
// listening on address, with the CRI plugin on (cgroupfs, overlayfs).
// restrict_oom_score_adj caps the -998 the sandbox spec asks for at this
// process's own score: a host without CAP_SYS_RESOURCE refuses lowering
// it. The streaming server listens on a free port of the loopback.
func ContainerdCRIConf(dir, address string, c CRI) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version = 2
root = %q
state = %q
disabled_plugins = [
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

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %q
  conf_dir = %q
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address, address+".ttrpc",
		filepath.Join(dir, "opt"), c.SandboxImage, c.CNIBinDir, c.CNIConfDir, c.Handlers[0].Name)
	for _, h := range c.Handlers {
		fmt.Fprintf(&b, `
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s.options]
  BinaryName = %q
  Root = %q
  SystemdCgroup = false
`, h.Name, h.Name, h.Binary, h.Root)
	}
	return b.String()
}
