package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
)

// InitFDEnv names the environment variable that tells the init stage which
// descriptor is its sync socket.
const InitFDEnv = "_CRIER_INIT_FD"

// Config is what Create needs to make a container.
type Config struct {
	ID     string
	Bundle string // absolute
	// Untune, when set, runs before create forks an init itself (an init
	// forked ahead by the entry point is not): the forked create gives
	// its threads back what it tuned for create alone, which the init
	// would otherwise inherit from the throwaway thread that forks it
	// (prefork.RestoreTimerSlack); and before the prestart and
	// createRuntime hooks, which create forks from whichever thread it
	// runs on (the shim's goroutine is not locked to the main thread).
	// It may run more than once.
	Untune func()
	Spec   *specs.Spec
	// SpecJSON, when set, is Spec as JSON (LoadSpecJSON), sent to the init
	// stage as is.
	SpecJSON []byte
	// InitPath is the crier binary; the init stage runs as "InitPath init",
	// from a sealed copy of it.
	InitPath string
	// Stdio becomes the container process's stdin, stdout and stderr.
	Stdio [3]*os.File
	// ExtraFiles become descriptors 3, 4, ... of the container process.
	ExtraFiles []*os.File
	// ConsoleSocket receives the pty master when process.terminal is set.
	ConsoleSocket string
	// NoPivot makes init enter the rootfs with MS_MOVE and chroot rather
	// than pivot_root (runc's --no-pivot, for a rootfs that pivot_root
	// refuses, as on an initramfs); see moveRootInto.
	NoPivot bool
	// StartAtOnce: the caller starts the container as soon as it is
	// created (shim.Config.StartAtOnce), so init goes on from msgReady
	// to the start as if msgStart had come, rather than wait for it: the
	// process does not wait for the parent's bookkeeping of the create,
	// nor is init woken onto the parent's CPU by it. Not with a terminal,
	// which init gets after msgReady, nor a pid file, which the parent
	// writes after it and which must be there before the process runs.
	StartAtOnce bool
	// Supervised forks init with CLONE_PARENT: its parent is then the
	// shim's, a supervisor that reaps it (docs/supervisors.md); the shim
	// learns its exit from the pidfd. A two-stage init's stage two is
	// forked with CLONE_PARENT from stage one, so it gets the same parent.
	Supervised bool
	// Load, when set, is the config still being decoded: Spec is then its
	// Early part, enough to fork init, and Create takes the full config
	// from Load before it writes any limit or tells init anything. If
	// Load fails, its error is Create's, whatever else went wrong.
	Load *SpecLoad
	// Forked, when set, is init forked already (ForkAhead), from this
	// Config: Create goes on from there rather than fork.
	Forked *Forked
	// Speculative, when set, is an init started before the config was
	// read, which ForkAhead adopts if the container fits it and
	// discards otherwise (speculative_linux.go).
	Speculative *Speculative
}

// Container is a created container whose init stage is a child of the
// caller. The caller must reap Pid: Container never waits for it.
type Container struct {
	ID     string
	Bundle string
	Rootfs string
	Spec   *specs.Spec
	Pid    int
	// PidFD refers to the init process for as long as the caller holds it,
	// so signals never reach a recycled pid.
	PidFD  int
	Cgroup *cgroup.Cgroup
	// held are the container's own mount, network and IPC namespaces,
	// from HoldNamespaces until ReleaseNamespaces. Without them the
	// init's exit tears them down before its parent hears of it: the
	// mount namespace's teardown waits for an expedited RCU grace
	// period, the others' queue work that then competes for the CPUs.
	// On the fast machine of issue 14 a SIGKILL took 0.55 ms to reach a
	// pidfd, 0.24 with the mount namespace held.
	held []*os.File
	// ExeSeal says how the copy of the init binary that init runs from
	// is sealed: "overlayfs" or "memfd" (sealedexe_linux.go).
	ExeSeal string

	sync *syncConn
	// unshareCgroup tells init to make its cgroup namespace itself.
	unshareCgroup bool
	noPivot       bool
	// startAtOnce is Config.StartAtOnce, once initConfig has found that
	// the container can be started so.
	startAtOnce bool
	// specJSON is Config.SpecJSON.
	specJSON []byte
	// twoStage: init joins a user or time namespace and hands over to a
	// second stage (nsenter_linux.go).
	twoStage bool
	// exe is the sealed copy of the init binary: Create may start
	// helpers from it (idmap_linux.go), and it is kept until the start
	// (releaseExe).
	exe *os.File
	// speculated: init is an adopted Speculative, which has still to
	// move to the bundle and unshare these namespaces.
	speculated *speculated
	// sealMounts: an adopted Speculative's Mounts, until
	// closeSealMounts.
	sealMounts []*os.File
	// aborted: Abort has run.
	aborted bool
	// outside: init is in none of the container's cgroups yet, and
	// they, if they are there at all, may be another's (an adopted
	// Speculative, or a placement refused): Abort leaves them alone.
	outside bool
}

// Create forks the init stage into the container's namespaces and drives it
// to the created state: cgroups, root filesystem, and the prestart,
// createRuntime and createContainer hooks. On error it leaves nothing
// behind: the init process is killed and reaped and the cgroups removed.
func Create(cfg *Config) (_ *Container, err error) {
	c, res, err := forkWithSpec(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Abort()
		}
	}()
	// The sealed init binary stays open until the start (releaseExe), or
	// Abort.
	early, pids := splitPids(res)
	if c.speculated != nil {
		err = c.placeSpeculated(res, early)
	} else if err = c.Cgroup.Limit(early); err == nil {
		err = c.mountRootfs()
	}
	if err != nil {
		return nil, err
	}
	if err := c.Cgroup.Limit(pids); err != nil {
		return nil, err
	}
	if err := c.runCreateHooks(cfg.Untune); err != nil {
		return nil, err
	}
	if p := c.Spec.Process; p != nil && p.Terminal {
		if err := c.setupConsole(cfg.ConsoleSocket); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// HoldNamespaces takes hold of the init's mount, network and IPC
// namespaces (Container.held), those it has of its own, until
// ReleaseNamespaces: for a caller who tells others of the exit, and wants
// to sooner. Where the kernel cannot give them (before Linux 6.11), or the
// init is gone already, the container goes on without.
func (c *Container) HoldNamespaces() {
	if c.PidFD < 0 {
		return
	}
	for _, k := range []struct {
		t  specs.LinuxNamespaceType
		ns pidfd.Namespace
	}{
		{specs.MountNamespace, pidfd.MountNamespace},
		{specs.NetworkNamespace, pidfd.NetNamespace},
		{specs.IPCNamespace, pidfd.IPCNamespace},
	} {
		if !ownNamespace(c.Spec, k.t) {
			continue
		}
		if fd, err := pidfd.OpenNamespace(c.PidFD, k.ns); err == nil {
			c.held = append(c.held, os.NewFile(uintptr(fd), string(k.t)+"-ns"))
		}
	}
}

// ReleaseNamespaces lets the container's namespaces go: with the init
// gone, the kernel tears them down now, the mount namespace in this
// thread.
func (c *Container) ReleaseNamespaces() {
	for _, f := range c.held {
		f.Close()
	}
	c.held = nil
}

// forkWithSpec is forkInit, with the Container's Spec the full config once
// cfg.Load has decoded it. A config that turns out bad is the error to
// give, and init, if forked, is aborted.
func forkWithSpec(cfg *Config) (*Container, *specs.LinuxResources, error) {
	c, res, err := forkInit(cfg)
	if cfg.Load != nil {
		// Init's Go runtime has been starting up while the config was
		// decoded; it waits for its config, so nothing has run yet.
		spec, lerr := cfg.Load.Wait()
		if lerr != nil {
			if err == nil {
				c.Abort()
			}
			return nil, nil, lerr
		}
		if err == nil {
			c.Spec = spec
		}
	}
	if err != nil {
		return nil, nil, err
	}
	warnConfig(c.Spec)
	return c, res, nil
}

// warnConfig writes to stderr, create's while the shim creates, what of
// the config will not be applied, as runc warns of it.
func warnConfig(spec *specs.Spec) {
	for _, w := range CapabilityWarnings(spec.Process) {
		fmt.Fprintf(os.Stderr, "crier: warning: %s\n", w)
	}
}

// mountRootfs hands init its config, through stage two when there is one,
// and waits until it has built the root filesystem.
func (c *Container) mountRootfs() error {
	if c.twoStage {
		ic, err := c.initConfig()
		if err != nil {
			return err
		}
		if err := c.sync.send(message{Type: msgConfig, Config: ic}); err != nil {
			return err
		}
		if err := c.adoptStageTwo(); err != nil {
			return err
		}
	}
	// Stage two, when there is one, is the init that mounts.
	if err := c.sendConfig(); err != nil {
		return err
	}
	return c.waitMounted()
}

// waitMounted waits until init has built the root filesystem, mapping on
// the way the trees init asks for (msgIDMap).
func (c *Container) waitMounted() error {
	nss := usernsSource{initPid: c.Pid, label: c.Bundle, exe: c.exe}
	defer nss.close()
	for {
		m, err := c.sync.recv()
		switch {
		case err != nil:
			return c.initError(err)
		case m.Type == msgError:
			return errors.New(m.Message)
		case m.Type == msgMounted:
			return nil
		case m.Type != msgIDMap:
			return fmt.Errorf("sync: got %q, want %q", m.Type, msgMounted)
		}
		if err := c.idmapInitTree(m, &nss); err != nil {
			return err
		}
	}
}

// runCreateHooks runs the prestart and createRuntime hooks with the rootfs
// mounted, then lets init run the createContainer hooks and pivot, and
// waits until it is ready to start. untune, when set, runs before the
// first hook (Config.Untune).
func (c *Container) runCreateHooks(untune func()) error {
	st := c.HookState(protocol.StatusCreating)
	if untune != nil && len(hooksOf(c.Spec, HookPrestart))+len(hooksOf(c.Spec, HookCreateRuntime)) > 0 {
		untune()
	}
	for _, kind := range []string{HookPrestart, HookCreateRuntime} {
		if err := RunHooks(c.Spec, kind, st); err != nil {
			return err
		}
	}
	if err := c.sync.send(message{Type: msgContinue}); err != nil {
		return err
	}
	if _, err := c.sync.expect(msgReady); err != nil {
		return c.initError(err)
	}
	return nil
}

// forkInit makes the cgroups and forks init into them, from what
// Config.Spec has of the config (which may be only its Early part), or
// goes on with the init Config.Forked has forked. It returns the
// resources to limit the cgroups to. On error it leaves nothing behind.
//
// Init does nothing for the container before it has its config, which it
// gets once the cgroups are made, it is in them and the limits are all
// in place (but for the pids limit: splitPids); so neither its own work
// (device nodes, mounts) nor the user's process ever runs outside them or
// unconstrained. Where the cgroups take long to make (Cgroup.Staged) init
// is forked first (forkAhead), and its Go runtime starts up while they
// are made; else it is born in them (Cgroup.ForkInto).
func forkInit(cfg *Config) (*Container, *specs.LinuxResources, error) {
	f := cfg.Forked
	if f == nil {
		var err error
		if f, err = ForkAhead(cfg); err != nil {
			return nil, nil, err
		}
	}
	if f.c == nil {
		return forkIntoCgroup(cfg, f.cg)
	}
	c := f.c
	res := cgroup.Resources(c.Spec.Linux)
	if c.speculated != nil {
		// Placed once it has its config (placeSpeculated).
		return c, res, nil
	}
	if err := c.placeStaged(res, c.selfDirs()); err != nil {
		return nil, nil, err
	}
	return c, res, nil
}

// Forked is what Create does before the container's ID is claimed
// (ForkAhead): init forked, waiting for its config, where it is to be
// moved into its cgroups (Cgroup.Staged); else only the cgroups located.
type Forked struct {
	c  *Container     // nil: init is to be born in its cgroups
	cg *cgroup.Cgroup // the cgroups, when c is nil
}

// ForkAhead forks init from cfg, whose Spec may be only the early part
// of the config, where the host's cgroups let init be moved into them
// later (Cgroup.Staged): the caller claims the container's ID while
// init's Go runtime starts, and hands the Forked to Create in
// Config.Forked. Where init must be born in its cgroup, which must not
// be made before the ID is claimed (two creates of one ID would share
// it), it forks nothing; Create forks. On error it leaves nothing
// behind, and cfg.Load holds nothing made ahead.
func ForkAhead(cfg *Config) (*Forked, error) {
	// Not adopted below: killed and reaped.
	defer cfg.Speculative.Discard()
	spec := cfg.Spec
	if cfg.ConsoleSocket != "" && (spec.Process == nil || !spec.Process.Terminal) {
		cfg.releaseAhead()
		// As runc: a socket that would never get a pty is a mistake.
		return nil, errors.New("--console-socket was given but process.terminal is false")
	}
	cg, err := cgroup.New(cfg.ID, spec.Linux.CgroupsPath)
	if err != nil {
		cfg.releaseAhead()
		return nil, err
	}
	if !cg.Staged() {
		return &Forked{cg: cg}, nil
	}
	c := newContainer(cfg, cg)
	if adoptSpeculative(cfg, c) {
		cfg.releaseAhead()
		return &Forked{c: c}, nil
	}
	netns, exe := cfg.aheadOfFork()
	defer netns.close()
	if err := c.fork(cfg, netns, exe, false); err != nil {
		c.dropExe()
		return nil, err
	}
	return &Forked{c: c}, nil
}

// Abort kills and reaps the init ForkAhead forked, which is in none of
// the container's cgroups: the caller gives up before Create. It does
// nothing to a nil Forked, or one that forked nothing.
func (f *Forked) Abort() {
	if f != nil && f.c != nil {
		f.c.abortOutside()
	}
}

// releaseAhead drops what cfg.Load made ahead of the fork: create fails
// before it.
func (cfg *Config) releaseAhead() {
	if cfg.Load != nil {
		cfg.Load.Release()
	}
}

// aheadOfFork takes from cfg.Load the network namespace and the sealed
// init binary made ahead, or starts sealing the binary now.
func (cfg *Config) aheadOfFork() (*netNSAhead, exeAhead) {
	var netns *netNSAhead
	var exe exeAhead
	if cfg.Load != nil {
		netns = cfg.Load.takeNetNS()
		exe = cfg.Load.takeExe()
	}
	if exe == nil {
		exe = sealExeAhead(cfg.InitPath)
	}
	return netns, exe
}

func newContainer(cfg *Config, cg *cgroup.Cgroup) *Container {
	return &Container{
		ID: cfg.ID, Bundle: cfg.Bundle, Spec: cfg.Spec, Rootfs: RootfsPath(cfg.Bundle, cfg.Spec),
		PidFD: -1, Cgroup: cg, specJSON: cfg.SpecJSON, noPivot: cfg.NoPivot,
		startAtOnce: cfg.StartAtOnce,
	}
}

// refuseCgroup fails when the container's cgroup is one create must not
// use: one with processes of others in it, as runc refuses it, or a
// frozen one, in which init would never run and create would wait for
// it for good. It is checked before anything of the container's is in it.
func refuseCgroup(cg *cgroup.Cgroup) error {
	if err := cg.RefuseNotEmpty(); err != nil {
		return err
	}
	return cg.RefuseFrozen()
}

// forkIntoCgroup makes the cgroups and forks init into them
// (Cgroup.ForkInto). On error it leaves nothing behind.
func forkIntoCgroup(cfg *Config, cg *cgroup.Cgroup) (*Container, *specs.LinuxResources, error) {
	netns, exe := cfg.aheadOfFork()
	defer netns.close()
	if err := refuseCgroup(cg); err != nil {
		exe.drop()
		return nil, nil, err
	}
	c := newContainer(cfg, cg)
	res := cgroup.Resources(c.Spec.Linux)
	if err := c.Cgroup.Prepare(res); err != nil {
		exe.drop()
		return nil, nil, err
	}
	if err := c.fork(cfg, netns, exe, true); err != nil {
		c.dropExe()
		c.Cgroup.Destroy()
		return nil, nil, err
	}
	return c, res, nil
}

// placeStaged makes the cgroups of an init forked outside them and moves
// it into them (Cgroup.Staged), but for the directories in self, which
// init moves itself into (initConfig.MoveSelf). On error it leaves
// nothing behind.
func (c *Container) placeStaged(res *specs.LinuxResources, self []string) error {
	// A controller the host lacks, or a cgroup create must not use,
	// fails create before init is in any of the cgroups.
	err := refuseCgroup(c.Cgroup)
	if err == nil {
		err = c.Cgroup.Check(res)
	}
	if err == nil {
		err = c.Cgroup.Prepare(res)
	}
	if err != nil {
		// Prepare has removed what it made; a cgroup that was there
		// before is not create's to remove.
		c.abortOutside()
		return err
	}
	// The cgroups are create's now: an Abort removes them.
	c.outside = false
	if err := c.Cgroup.Adopt(c.Pid, self); err != nil {
		c.Abort()
		return err
	}
	return nil
}

// selfDirs are the cgroup directories init moves its main thread into
// itself, before it does anything of the container's (initConfig.MoveSelf),
// rather than be moved by pid (Cgroup.Adopt), whose kernel lock waits for
// an RCU grace period after a quiet spell: the v1 ones of an init forked
// before its cgroups were made (Cgroup.Staged) that can open their files.
// That is one that is root in the host's user namespace (no user
// namespace, made or joined, and no two-stage join) and in crier's mount
// namespace or a new one its clone copied from it (not one it joined), so
// that the host's cgroup paths are there until it pivots. An adopted
// speculative init always is. Any other is moved.
func (c *Container) selfDirs() []string {
	if c.Cgroup == nil || !c.Cgroup.Staged() || c.twoStage {
		return nil
	}
	for _, ns := range c.Spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace || ns.Type == specs.MountNamespace && ns.Path != "" {
			return nil
		}
	}
	return c.Cgroup.SelfDirs()
}

// abortOutside kills and reaps an init that is in none of the container's
// cgroups, and leaves the cgroups alone.
func (c *Container) abortOutside() {
	c.outside = true
	c.Abort()
}

// setupConsole opens the pty, sends its master to the console socket and
// has init make the slave its terminal and stdio: a created container's
// init holds its terminal, as runc's does, and nothing of crier's (the
// /dev/null of initStdio) is left in its descriptors.
func (c *Container) setupConsole(socket string) error {
	if socket == "" {
		return errors.New("process.terminal is true but no console socket was given (--console-socket)")
	}
	master, name, err := openPty(c.Pid, c.Spec.Process.User.UID)
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	defer master.Close()
	if err := setConsoleSize(master, c.Spec.Process.ConsoleSize); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	if err := sendConsole(socket, master); err != nil {
		return err
	}
	if err := c.sync.send(message{Type: msgTerminal, Pty: name}); err != nil {
		return err
	}
	if _, err := c.sync.expect(msgAttached); err != nil {
		return c.initError(err)
	}
	return nil
}

// HookState is the OCI state given to hooks.
func (c *Container) HookState(status protocol.Status) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          c.ID,
		Status:      specs.ContainerState(status),
		Pid:         c.Pid,
		Bundle:      c.Bundle,
		Annotations: c.Spec.Annotations,
	}
}

func (c *Container) initConfig() (*initConfig, error) {
	spec := initSpec(c.Spec)
	specJSON := c.specJSON
	if spec != c.Spec || specJSON == nil {
		var err error
		if specJSON, err = json.Marshal(spec); err != nil {
			return nil, fmt.Errorf("encode the config for init: %w", err)
		}
	}
	ic := &initConfig{
		ID:             c.ID,
		Pid:            c.Pid,
		Bundle:         c.Bundle,
		Rootfs:         c.Rootfs,
		Spec:           spec,
		SpecJSON:       specJSON,
		NewMountNS:     HasNamespace(c.Spec, specs.MountNamespace),
		NewCgroupNS:    c.unshareCgroup,
		NewUTSNS:       HasNamespace(c.Spec, specs.UTSNamespace),
		NoPivot:        c.noPivot,
		SeccompNoFlags: seccomp.NoFlags(c.Spec.Linux.Seccomp),
	}
	// The full config is known now: a terminal comes after msgReady.
	c.startAtOnce = c.startAtOnce && c.Spec.Process != nil && !c.Spec.Process.Terminal
	ic.StartAtOnce = c.startAtOnce
	ic.MoveSelf = c.selfDirs()
	if s := c.speculated; s != nil {
		ic.Chdir, ic.Unshare, ic.Placed = s.dir, s.unshare, !s.inOrder
		if s.specSent && spec == c.Spec && c.specJSON != nil {
			// The bytes init has decoded already.
			ic.SpecJSON, ic.SpecAhead = nil, true
		}
	}
	return ic, nil
}

// initError turns a sync failure into the best error: init's own message if
// it sent one, else how it died.
func (c *Container) initError(err error) error {
	if errors.Is(err, errSyncEOF) {
		return fmt.Errorf("container init exited before it was ready")
	}
	return err
}

// fork forks init from the sealed binary exe: into the cgroups with
// intoCgroup (Cgroup.ForkInto), else where this process is. With netns,
// init joins that network namespace rather than have the clone make one.
func (c *Container) fork(cfg *Config, netns *netNSAhead, exe exeAhead, intoCgroup bool) error {
	if cfg.Untune != nil {
		cfg.Untune()
	}
	// Init runs from a copy of InitPath that it cannot write, and
	// neither can anyone who reaches it through /proc (sealedexe_linux.go).
	var err error
	if c.exe, err = exe.wait(); err != nil {
		return err
	}
	c.ExeSeal = exeSealKind(c.exe)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer child.Close()

	files, closeNull, err := initStdio(c.Spec, cfg.Stdio)
	if err != nil {
		parent.Close()
		return err
	}
	defer closeNull()
	for _, f := range cfg.ExtraFiles {
		files = append(files, f.Fd())
	}
	files = append(files, child.Fd())
	plan, err := planNamespaces(c.Spec.Linux)
	if err != nil {
		parent.Close()
		return err
	}
	c.unshareCgroup = plan.unshareCgroup
	if netns != nil {
		netns.use(plan)
	}
	files, args, nsFiles, err := withPreRuntimeJoins(plan, files)
	if err != nil {
		parent.Close()
		return err
	}
	defer closeFiles(nsFiles)
	c.twoStage = len(nsFiles) > 0
	files = append(files, c.exe.Fd())
	initPath := execPathFor(len(files) - 1)
	if cfg.Supervised {
		plan.sys.Cloneflags |= unix.CLONE_PARENT
	}
	pidfd := -1
	plan.sys.PidFD = &pidfd
	attr := &syscall.ProcAttr{
		// Relative paths in the config are relative to the bundle.
		Dir:   cfg.Bundle,
		Env:   append(initEnv(len(cfg.ExtraFiles)+3), initExeEnv+"="+strconv.Itoa(len(files)-1)),
		Files: files,
		Sys:   plan.sys,
	}
	var pid int
	fork := func() (err error) {
		if !intoCgroup {
			pid, err = syscall.ForkExec(initPath, args, attr)
			return err
		}
		pid, err = c.Cgroup.ForkInto(plan.sys, func() (int, error) {
			return syscall.ForkExec(initPath, args, attr)
		})
		return err
	}
	if err := forkAsPlanned(plan, fork); err != nil {
		parent.Close()
		return fmt.Errorf("start init %s: %w", cfg.InitPath, err)
	}
	c.Pid, c.PidFD, c.sync = pid, pidfd, newSyncConn(parent)
	return nil
}

// initStdio returns init's descriptors 0 to 2. With a terminal they are
// /dev/null, as runc's are: the process's stdio is then the pty, which init
// takes only at start, and until then nothing may hold what create's caller
// gave it. `out=$(crier create ...)`, and containerd-shim reading create's
// output through a pipe, wait for that pipe's end of file; init, here the
// supervisor's child, would keep it open until the container exits. done
// closes what initStdio opened, once init is forked.
func initStdio(spec *specs.Spec, stdio [3]*os.File) (fds []uintptr, done func(), err error) {
	if spec.Process == nil || !spec.Process.Terminal {
		return []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()}, func() {}, nil
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	return []uintptr{null.Fd(), null.Fd(), null.Fd()}, func() { null.Close() }, nil
}

// withPreRuntimeJoins returns init's arguments and, added to files, the
// namespaces that its pre-runtime entry point must join (user and time:
// setns refuses them to a multi-threaded process), which make it a
// two-stage init. The caller closes nsFiles once init is forked.
func withPreRuntimeJoins(plan *nsPlan, files []uintptr) (_ []uintptr, args []string, nsFiles []*os.File, err error) {
	args = []string{"crier", "init"}
	if len(plan.preRuntime) == 0 {
		return files, args, nil, nil
	}
	if nsFiles, err = openNamespaces(plan.preRuntime); err != nil {
		return nil, nil, nil, fmt.Errorf("linux.namespaces: %w", err)
	}
	args = append(args, setnsArg(len(files), len(nsFiles)))
	for _, f := range nsFiles {
		files = append(files, f.Fd())
	}
	return files, args, nsFiles, nil
}

// forkAsPlanned runs fork on a thread in the namespaces that plan has the
// forking thread join or make.
func forkAsPlanned(plan *nsPlan, fork func() error) error {
	switch {
	case plan.newTime && len(plan.joins) > 0:
		// On inNamespaces' locked thread, after its setns calls.
		return inNamespaces(plan.joins, func() error {
			if err := unshareTimeNamespace(plan.timeOffsets); err != nil {
				return err
			}
			return fork()
		})
	case plan.newTime:
		return forkInNewTimeNamespace(plan.timeOffsets, fork)
	default:
		return inNamespaces(plan.joins, fork)
	}
}

// Abort undoes a Create: it kills and reaps the init process and removes
// the cgroups. Create calls it on failure; a caller calls it when it cannot
// go on with a container it created.
func (c *Container) Abort() {
	if c.aborted {
		// Once only: a cgroup left to its owner by abortOutside is not
		// to be killed or removed by a second Abort.
		return
	}
	c.aborted = true
	cg := c.Cgroup
	if c.outside {
		cg = nil
	}
	if cg != nil {
		c.Signal(unix.SIGKILL, true)
	}
	c.Signal(unix.SIGKILL, false)
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.Pid, &ws, 0, nil)
		if err == unix.ECHILD && c.PidFD >= 0 {
			// A supervisor's child (Config.Supervised): it reaps;
			// wait only for the exit, so the cgroup can go.
			pidfd.Wait(c.PidFD, -1)
		}
		if err != unix.EINTR {
			break
		}
	}
	c.Close()
	c.ReleaseNamespaces()
	if cg != nil {
		cg.Destroy()
	}
}

// dropExe closes the sealed init binary: init has exec'd it already.
func (c *Container) dropExe() {
	if c.exe != nil {
		c.exe.Close()
		c.exe = nil
	}
}

// Close releases the descriptors Container holds.
func (c *Container) Close() {
	c.dropExe()
	c.closeSealMounts()
	if c.sync != nil {
		c.sync.Close()
		c.sync = nil
	}
	if c.PidFD >= 0 {
		unix.Close(c.PidFD)
		c.PidFD = -1
	}
}

// ErrNoProcess is returned by Start for a config without a process.
var ErrNoProcess = errors.New("config has no process to start")

// Start runs the startContainer hooks in the container and execs the user's
// process. It returns once execve has succeeded, or with the reason it did
// not; in that case the init process exits on its own.
func (c *Container) Start() error {
	if c.Spec.Process == nil {
		return ErrNoProcess
	}
	if c.sync == nil {
		return errors.New("container init is gone")
	}
	defer func() { c.sync.Close(); c.sync = nil }()
	err := c.initError(c.sync.startInit(!c.startAtOnce, c.initListener))
	c.releaseExe()
	return err
}

// releaseExe closes the sealed init binary once init has exec'd the
// process (or failed to), off the caller's way. Where the seal is a
// private overlayfs (sealedexe_linux.go), whoever drops the last
// reference to it tears its superblock down, which waits for an
// expedited RCU grace period: the container's process did, as its exec
// dropped the init's image, for some 0.1-0.3 ms of its first steps,
// before it ran a line of its own. Kept open until now, the last
// reference is this one, closed on a goroutine of its own.
func (c *Container) releaseExe() {
	if exe := c.exe; exe != nil {
		c.exe = nil
		go exe.Close()
	}
}

// initListener sends the init's seccomp listener, its descriptor fd, to
// the agent (seccomp_agent_linux.go). If that fails, init is killed: it
// waits for the listener to be taken, and a call of its that the filter
// notifies would wait for good, the listener being its own.
func (c *Container) initListener(fd int) error {
	err := c.handListener(c.Pid, c.PidFD, fd, seccompStatusInit)
	if err != nil {
		c.Signal(unix.SIGKILL, false)
	}
	return err
}

// Signal sends sig to the container's init process, or with all to every
// process in its cgroup.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	if all && c.Cgroup != nil {
		pids, err := c.Cgroup.Pids()
		if err != nil {
			return err
		}
		for _, pid := range pids {
			// The thread that forked init is in the cgroups until it
			// has exited (Cgroup.ForkInto), and so is listed under
			// this process's pid for a moment.
			if pid != os.Getpid() {
				unix.Kill(pid, sig)
			}
		}
		return nil
	}
	if c.PidFD >= 0 {
		if err := unix.PidfdSendSignal(c.PidFD, sig, nil, 0); err != nil {
			return os.NewSyscallError("pidfd_send_signal", err)
		}
		return nil
	}
	if err := unix.Kill(c.Pid, sig); err != nil {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// splitPids returns res without its pids limit, and the pids limit alone
// (nil when there is none). Create writes the pids limit once init has
// mounted the rootfs, before any hook runs, which is where runc writes
// its limits: init's Go runtime makes threads as it starts, and stage two
// of a user namespace is a fork, so a limit below what init needs (runc's
// suite runs pids.limit 0, which is 1) would kill it before it has begun.
// Tasks already there when the limit comes are not counted against it.
func splitPids(res *specs.LinuxResources) (early, pids *specs.LinuxResources) {
	if res == nil || res.Pids == nil {
		return res, nil
	}
	e := *res
	e.Pids = nil
	return &e, &specs.LinuxResources{Pids: res.Pids}
}
