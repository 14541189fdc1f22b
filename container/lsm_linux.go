package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// LSMs says which of the Linux security modules crier applies labels for
// are active on the host.
type LSMs struct {
	AppArmor bool
	SELinux  bool
}

// lsmHost is where the kernel's LSM state is read and written: the procfs
// and sysfs mount points and the filesystem magic numbers that prove they
// are the real thing. Tests point it at a fake tree.
type lsmHost struct {
	proc string
	sys  string
	// procType is the f_type an attr file must have before a label is
	// written to it: a container image can ship a plain /proc directory,
	// and a write that lands in a regular file would leave the process
	// unconfined without a word.
	procType int64
	// selinuxfsType is the f_type of a mounted selinuxfs.
	selinuxfsType int64
}

func defaultLSMHost() lsmHost {
	return lsmHost{proc: "/proc", sys: "/sys", procType: unix.PROC_SUPER_MAGIC, selinuxfsType: unix.SELINUX_MAGIC}
}

// EnabledLSMs reports which LSMs are active on this host.
func EnabledLSMs() LSMs { return defaultLSMHost().enabled() }

func (h lsmHost) enabled() LSMs {
	return LSMs{AppArmor: h.appArmorEnabled(), SELinux: h.selinuxEnabled()}
}

// appArmorEnabled reads the module parameter, which the LSM framework sets
// to N when AppArmor is built in but was not chosen at boot.
func (h lsmHost) appArmorEnabled() bool {
	b, err := os.ReadFile(filepath.Join(h.sys, "module/apparmor/parameters/enabled"))
	return err == nil && strings.HasPrefix(string(b), "Y")
}

// selinuxEnabled requires selinuxfs mounted where userspace expects it
// (the kernel registers it only when SELinux is active) and a loaded
// policy: before one is, every process is labelled "kernel".
func (h lsmHost) selinuxEnabled() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(h.sys, "fs/selinux"), &st); err != nil || int64(st.Type) != h.selinuxfsType {
		return false
	}
	b, err := os.ReadFile(filepath.Join(h.proc, "self/attr/current"))
	return err != nil || strings.TrimRight(string(b), "\x00\n") != "kernel"
}

// hasLabels reports whether spec asks for any LSM label.
func hasLabels(spec *specs.Spec) bool {
	if p := spec.Process; p != nil && (p.ApparmorProfile != "" || p.SelinuxLabel != "") {
		return true
	}
	return spec.Linux != nil && spec.Linux.MountLabel != ""
}

// specForInit returns the spec the init stage works from: spec itself, or,
// where it names labels of an LSM that is off, a copy without them. A
// label for an LSM the host does not run means nothing there (the shim's
// debug log says it was ignored), and init then applies whatever labels
// are left without having to look at the host from inside the container.
func specForInit(spec *specs.Spec, on LSMs) *specs.Spec {
	p, l := spec.Process, spec.Linux
	dropAA := p != nil && p.ApparmorProfile != "" && !on.AppArmor
	dropSE := !on.SELinux && ((p != nil && p.SelinuxLabel != "") || (l != nil && l.MountLabel != ""))
	if !dropAA && !dropSE {
		return spec
	}
	out := *spec
	if p != nil {
		pc := *p
		if dropAA {
			pc.ApparmorProfile = ""
		}
		if dropSE {
			pc.SelinuxLabel = ""
		}
		out.Process = &pc
	}
	if l != nil && dropSE {
		lc := *l
		lc.MountLabel = ""
		out.Linux = &lc
	}
	return &out
}

// setExecLabels arranges for the next execve of the calling thread to run
// with p's labels. It runs in the init stage on its locked thread, after
// pivot_root (so h.proc is the container's procfs), and before seccomp,
// no_new_privs and the switch away from root: a filter or a lost
// privilege must not be what stops the write.
func (h lsmHost) setExecLabels(p *specs.Process) error {
	if p.ApparmorProfile != "" {
		if err := h.writeAttr([]string{"attr/apparmor/exec", "attr/exec"}, "exec "+p.ApparmorProfile); err != nil {
			return fmt.Errorf("apparmorProfile %q: %w", p.ApparmorProfile, err)
		}
	}
	if p.SelinuxLabel != "" {
		if err := h.writeAttr([]string{"attr/exec"}, p.SelinuxLabel); err != nil {
			return fmt.Errorf("selinuxLabel %q: %w", p.SelinuxLabel, err)
		}
	}
	return nil
}

// writeAttr writes value in one write to the first of names (relative to
// the calling thread's procfs directory) that exists. AppArmor has had
// its own attr/apparmor directory since Linux 5.8; older kernels only have
// the shared attr files.
func (h lsmHost) writeAttr(names []string, value string) error {
	for i, name := range names {
		p := filepath.Join(h.proc, "thread-self", name)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if errors.Is(err, unix.ENOENT) && i < len(names)-1 {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "open", Path: p, Err: err}
		}
		err = h.writeProcFD(fd, p, value)
		unix.Close(fd)
		return err
	}
	return errors.New("no attr file to write") // unreachable with names non-empty
}

func (h lsmHost) writeProcFD(fd int, p, value string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return &os.PathError{Op: "fstatfs", Path: p, Err: err}
	}
	if int64(st.Type) != h.procType {
		return fmt.Errorf("%s is not on procfs (does the config mount proc at /proc?)", p)
	}
	n, err := unix.Write(fd, []byte(value))
	if err == nil && n != len(value) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(value))
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: p, Err: err}
	}
	return nil
}

// How linux.mountLabel reaches a mount, as runc and crun do it.
const (
	labelNone    = iota
	labelContext // a context="..." mount option
	labelXattr   // security.selinux set on the mount's root after mounting
)

// selinuxContextOptions are the SELinux mount options a config may set
// itself; context= may not be combined with any other of them.
var selinuxContextOptions = []string{"context=", "fscontext=", "defcontext=", "rootcontext="}

// mountLabelHow decides how the mount label applies to m: not at all for a
// bind mount (mount(2) ignores data there, and the files keep their own
// labels), nor for proc, sysfs and cgroup filesystems, whose labels come
// from policy; mqueue by xattr, since older kernels refuse context= on it;
// every other filesystem (tmpfs, devpts, overlay...) by context=, unless
// the config already sets an SELinux context option on it.
func mountLabelHow(m specs.Mount) int {
	flags, _, _, err := parseMountOptions(m.Options)
	if err != nil || isBindMount(m.Type, flags) {
		return labelNone
	}
	switch m.Type {
	case "proc", "sysfs", "cgroup", "cgroup2":
		return labelNone
	case "mqueue":
		return labelXattr
	}
	for _, o := range m.Options {
		for _, c := range selinuxContextOptions {
			if strings.HasPrefix(o, c) {
				return labelNone
			}
		}
	}
	return labelContext
}

// contextOption is the mount option carrying label. The quotes keep the
// commas of an MLS category list inside one option.
func contextOption(label string) (string, error) {
	if strings.ContainsAny(label, "\"\n") {
		return "", fmt.Errorf("linux.mountLabel %q: a label cannot contain a double quote or a newline", label)
	}
	return `context="` + label + `"`, nil
}

// mountLabeled performs m inside root with label (linux.mountLabel, ""
// when there is none or SELinux is off) applied as mountLabelHow says.
// tree is as for mountEntry.
func mountLabeled(root *rootDir, m specs.Mount, label string, tree *mountSource) error {
	if label == "" {
		return mountEntry(root, m, tree, "")
	}
	switch mountLabelHow(m) {
	case labelContext:
		opt, err := contextOption(label)
		if err != nil {
			return mountErr(m, err)
		}
		m.Options = append(slices.Clip(m.Options), opt)
	case labelXattr:
		return mountEntry(root, m, tree, label)
	}
	return mountEntry(root, m, tree, "")
}

// maskData is the mount data for the tmpfs that masks a directory.
func maskData(label string) (string, error) {
	if label == "" {
		return "", nil
	}
	return contextOption(label)
}

// initSpec is specForInit for this host; a spec without labels costs no
// look at the host.
func initSpec(spec *specs.Spec) *specs.Spec {
	if !hasLabels(spec) {
		return spec
	}
	return specForInit(spec, EnabledLSMs())
}
