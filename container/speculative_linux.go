package container

import (
	"encoding/json"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Speculative is an init stage that crier's pre-runtime entry point
// started before create had read anything of the container
// (internal/prefork, speculate.go): forked from the shim into a new pid
// and mount namespace, the two a clone must make, and exec'd from a
// sealed copy of the crier-shim beside crier, it starts its Go runtime
// while the shim's starts, and waits on its sync socket for its config.
// ForkAhead adopts it in place of forking one when the container fits
// it; else, and on any error before that, it is killed and reaped.
type Speculative struct {
	Pid  int
	Sync *os.File // the shim's end of init's sync socket
	Exe  *os.File // the sealed binary init was exec'd from
	// Mounts are the detached mounts Exe is sealed in (an empty tmpfs
	// and the overlay of crier-shim's directory). Dropping the last
	// descriptor of a detached mount waits for an expedited RCU grace
	// period (the kernel's namespace_unlock): 0.05 ms, at times some
	// milliseconds. Held here, init's exec did not drop them; the
	// Container closes them once init is building its rootfs, off
	// create's path (closeSealMounts).
	Mounts []*os.File
	// adopted: a Container owns Pid and the files now.
	adopted bool
	// specSent: config.json's bytes went ahead (SendSpec).
	specSent bool
}

// maxSpecAhead is the largest config SendSpec sends: the socket's buffer
// takes it whole while init's runtime may still be starting.
const maxSpecAhead = 64 << 10

// SendSpec sends init config.json's bytes, b, to decode while it waits
// for the rest of its config. Nothing is sent for a config too large, or
// that is not JSON: Create says what is wrong with it.
func (s *Speculative) SendSpec(b []byte) {
	if s == nil || s.Pid == 0 || s.specSent || len(b) > maxSpecAhead || !json.Valid(b) {
		return
	}
	// One JSON value, as json.Valid checked: the bytes cannot end the
	// message early and make one of their own. (json.Marshal would
	// check them as much, and compact them too.)
	m := make([]byte, 0, len(b)+64)
	m = append(m, `{"type":"`+msgSpec+`","specJSON":`...)
	m = append(append(m, b...), "}\n"...)
	if _, err := s.Sync.Write(m); err == nil {
		s.specSent = true
	}
}

// speculatedFlags are the namespaces a speculative init is born in;
// unshareableFlags those it can still make on its one thread, where it
// does all its work and from which it execs the user's process.
const (
	speculatedFlags  = unix.CLONE_NEWPID | unix.CLONE_NEWNS
	unshareableFlags = unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET
)

// Discard kills and reaps the init unless a Container adopted it. It does
// nothing to a nil Speculative, and may be called more than once.
func (s *Speculative) Discard() {
	if s == nil || s.adopted || s.Pid == 0 {
		return
	}
	unix.Kill(s.Pid, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(s.Pid, nil, 0, nil); err != unix.EINTR {
			break
		}
	}
	s.Pid = 0
	s.Sync.Close()
	s.Exe.Close()
	closeFiles(s.Mounts)
	s.Mounts = nil
}

// adoptSpeculative makes the Container of cfg from its speculative init,
// where the container is one that init fits; ok is false otherwise, and
// the caller forks as usual (and discards it).
func adoptSpeculative(cfg *Config, c *Container) (ok bool) {
	s := cfg.Speculative
	if s == nil || s.adopted || s.Pid == 0 || !speculationFits(cfg) || !sameBinary(s.Exe, cfg.InitPath) {
		return false
	}
	plan, err := planNamespaces(c.Spec.Linux)
	if err != nil || !speculativePlan(plan) {
		return false // the usual fork says what is wrong, if anything
	}
	flags := plan.sys.Cloneflags
	pidfd, err := unix.PidfdOpen(s.Pid, 0)
	if err != nil {
		return false
	}
	s.adopted = true
	c.Pid, c.PidFD, c.sync, c.exe = s.Pid, pidfd, newSyncConn(s.Sync), s.Exe
	c.sealMounts, s.Mounts = s.Mounts, nil
	// Until placeSpeculated has made the cgroups and moved it in.
	c.outside = true
	c.ExeSeal = exeSealKind(s.Exe)
	c.unshareCgroup = plan.unshareCgroup
	c.speculated = &speculated{unshare: flags &^ speculatedFlags, dir: cfg.Bundle, specSent: s.specSent}
	return true
}

// Speculated reports whether init is an adopted Speculative.
func (c *Container) Speculated() bool { return c.speculated != nil }

// speculativePlan reports whether a speculative init can have the
// namespaces of plan: new pid and mount namespaces, others it can unshare
// itself, and none to join.
func speculativePlan(plan *nsPlan) bool {
	flags := plan.sys.Cloneflags
	return flags&speculatedFlags == speculatedFlags && flags&^(speculatedFlags|unshareableFlags) == 0 &&
		len(plan.joins) == 0 && len(plan.preRuntime) == 0 && !plan.newTime
}

// speculationFits reports whether nothing but the namespaces stands
// between cfg and a speculative init: it was forked from the shim, with
// no descriptor below its sync socket and with create's stdio.
func speculationFits(cfg *Config) bool {
	spec := cfg.Spec
	return !cfg.Supervised && len(cfg.ExtraFiles) == 0 && cfg.ConsoleSocket == "" &&
		(spec.Process == nil || !spec.Process.Terminal) && spec.Linux != nil
}

// sameBinary reports whether exe, a sealed copy (overlayExe), is the
// binary at path: the same size and modification time, as overlayExe
// checks its own.
func sameBinary(exe *os.File, path string) bool {
	var got, want unix.Stat_t
	if unix.Fstat(int(exe.Fd()), &got) != nil || unix.Stat(path, &want) != nil {
		return false
	}
	return exeSealKind(exe) == "overlayfs" && got.Mode&unix.S_IFMT == unix.S_IFREG &&
		got.Size == want.Size && got.Mtim == want.Mtim
}

// speculated is what a speculative init does first with its config
// (enterSpeculated): it was forked from wherever create ran, into new pid
// and mount namespaces only.
type speculated struct {
	unshare  uintptr
	dir      string
	specSent bool // config.json's bytes went ahead (SendSpec)
	// inOrder: the config goes only once init is in its cgroups, as to
	// any other init (placeSpeculated).
	inOrder bool
}

// enterSpeculated, in a speculative init, moves to the bundle, where
// relative paths in the config start, and unshares the namespaces that
// its clone did not make.
func enterSpeculated(cfg *initConfig) error {
	if cfg.Chdir != "" {
		if err := os.Chdir(cfg.Chdir); err != nil {
			return err
		}
	}
	if cfg.Unshare != 0 {
		if err := unix.Unshare(int(cfg.Unshare)); err != nil {
			return os.NewSyscallError("unshare", err)
		}
	}
	return nil
}

// placeSpeculated is Create's first step for an adopted speculative init,
// which has been waiting for its config since before the shim had read
// it: the config goes first, and init decodes it while its cgroups are
// made, it is moved into them and the early limits are set; then it may
// build the root filesystem (msgPlaced), and Create waits for that.
func (c *Container) placeSpeculated(res, early *specs.LinuxResources) error {
	if hasIDMappedMounts(c.Spec) {
		// Init asks for them while it mounts, on the socket that would
		// carry msgPlaced.
		c.speculated.inOrder = true
		c.closeSealMounts()
		if err := c.placeStaged(res, c.selfDirs()); err != nil {
			return err
		}
		if err := c.Cgroup.Limit(early); err != nil {
			return err
		}
		return c.mountRootfs()
	}
	if err := c.sendConfig(); err != nil { // with Placed (initConfig)
		return c.initError(err)
	}
	if err := c.placeStaged(res, c.selfDirs()); err != nil {
		return err
	}
	if err := c.Cgroup.Limit(early); err != nil {
		return err
	}
	if err := c.sync.send(message{Type: msgPlaced}); err != nil {
		// Init may have failed meanwhile, and said why.
		if werr := c.waitMounted(); werr != nil {
			return werr
		}
		return err
	}
	// Init builds the rootfs meanwhile.
	c.closeSealMounts()
	return c.waitMounted()
}

// closeSealMounts closes the detached mounts an adopted speculative init
// was sealed in (Speculative.Mounts): the wait their last close makes is
// best spent while init works.
func (c *Container) closeSealMounts() {
	closeFiles(c.sealMounts)
	c.sealMounts = nil
}

// hasIDMappedMounts reports whether any mount of spec asks to be
// idmapped (wantsIDMap).
func hasIDMappedMounts(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if wantsIDMap(m) {
			return true
		}
	}
	return false
}
