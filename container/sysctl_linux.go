package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// sysctlNamespace returns the namespace a sysctl belongs to, or "" for
// one that is global to the host and so not the container's to set.
func sysctlNamespace(key string) specs.LinuxNamespaceType {
	switch {
	case strings.HasPrefix(key, "net."):
		return specs.NetworkNamespace
	case strings.HasPrefix(key, "fs.mqueue."),
		key == "kernel.msgmax", key == "kernel.msgmnb", key == "kernel.msgmni",
		key == "kernel.sem", key == "kernel.shmall", key == "kernel.shmmax",
		key == "kernel.shmmni", key == "kernel.shm_rmid_forced":
		return specs.IPCNamespace
	case key == "kernel.hostname", key == "kernel.domainname":
		return specs.UTSNamespace
	}
	return ""
}

// validateSysctls refuses sysctls that would change the host: global ones,
// and namespaced ones whose namespace the container does not have.
func validateSysctls(l *specs.Linux) error {
	for key := range l.Sysctl {
		ns := sysctlNamespace(key)
		if ns == "" {
			return fmt.Errorf("linux.sysctl: %q is not namespaced; setting it would change the host", key)
		}
		if !hasNamespaceIn(l, ns) {
			return fmt.Errorf("linux.sysctl: %q needs a %s namespace", key, ns)
		}
	}
	return nil
}

func hasNamespaceIn(l *specs.Linux, t specs.LinuxNamespaceType) bool {
	for _, ns := range l.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// applySysctls writes the sysctls through /proc/sys, which shows the
// calling process's namespaces, so it runs in init before pivot_root (and
// before readonlyPaths makes /proc/sys read-only).
func applySysctls(sysctl map[string]string) error {
	for key, value := range sysctl {
		path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
	}
	return nil
}
