package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/internal/sysmon"
	"github.com/crier-runtime/crier/protocol"
)

// initEnv is the init stage's whole environment: where its sync socket is,
// and one P for the Go runtime. Init does one thing at a time on one
// locked thread, and every runtime thread it does not start is one fewer
// for execve to tear down when the user's process replaces it. (Hooks
// and the user's process get the environment their config gives them.)
func initEnv(syncFD int) []string {
	return []string{InitFDEnv + "=" + strconv.Itoa(syncFD), "GOMAXPROCS=1"}
}

// initExeEnv names the descriptor of the sealed binary init was exec'd
// from (sealedexe_linux.go), which init closes at once: a created
// container's init holds no more than runc's does (create.bats reads its
// descriptors), and nothing in init needs it again (stage two of a
// two-stage init is exec'd as /proc/self/exe).
const initExeEnv = "_CRIER_INIT_EXE"

// ErrNotInit is returned by Init when it was not started by Create.
var ErrNotInit = errors.New("crier-shim init is started by crier create, not by hand")

// Init is the init stage: the first process in the container's namespaces,
// started by Create as "crier-shim init". It returns only on error, after
// reporting it to the parent, which reports it to the user; the caller
// should exit non-zero without printing it again (the container's stderr is
// create's). The exception is stage one of a two-stage init
// (nsenter_linux.go), which returns nil once stage two has taken over.
//
// Credentials, capabilities and the cgroup namespace are per thread, so Init
// locks itself to one thread and execs from it.
func Init() error {
	// Non-dumpable until execve makes the user's process: no ptrace, no
	// /proc/PID/{exe,fd,mem,environ} for the container's processes while
	// init still holds the host's side. (On amd64 the entry point already
	// did this, before the runtime started and before any setns.)
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	runtime.LockOSThread()
	if v, ok := os.LookupEnv(ExecEnv); ok {
		return execStage(v) // crier exec (exec_linux.go)
	}
	fd, err := strconv.Atoi(os.Getenv(InitFDEnv))
	if err != nil {
		return ErrNotInit
	}
	os.Unsetenv(InitFDEnv)
	if exe, err := strconv.Atoi(os.Getenv(initExeEnv)); err == nil && exe > fd {
		unix.Close(exe)
	}
	os.Unsetenv(initExeEnv)
	// The parent learns that execve succeeded when this socket closes,
	// so the user's process must not inherit it.
	unix.CloseOnExec(fd)
	// Nor anything else the shim's own parents leaked to it: the
	// container gets stdio, the passed descriptors (below fd) and no more.
	unix.CloseRange(uint(fd+1), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	conn := newSyncConn(os.NewFile(uintptr(fd), "sync"))
	if len(os.Args) > 2 && strings.HasPrefix(os.Args[2], initSetnsArg) {
		err = joinStage(conn, fd)
		if err == nil {
			return nil
		}
	} else {
		err = initStage(conn, fd)
	}
	if errors.Is(err, errSyncEOF) {
		// The parent gave up (create failed, or the shim died before
		// start): nothing to report to.
		return err
	}
	typ := msgError
	if _, ok := errors.AsType[*execveError](err); ok {
		typ = msgExecFailed
	}
	conn.send(message{Type: typ, Message: err.Error()})
	return err
}

// initStage runs the steps of the sync sequence in order (sync.go has the
// diagram). syncFD is the sync socket's descriptor: the ones below it,
// after stdio, are the container's passed descriptors.
func initStage(conn *syncConn, syncFD int) error {
	// Init has one P and makes one system call after another until it
	// runs the first hook: its runtime's monitor thread would wake every
	// 90 µs beside it all along (package sysmon).
	tuning := sysmon.Slow()
	cfg, err := receiveConfig(conn)
	if err != nil {
		return err
	}
	if err := enterSpeculated(cfg); err != nil {
		return err
	}
	trees, err := mountTreesFor(cfg, conn.takeFiles())
	if err != nil {
		return err
	}
	// Received close-on-exec: neither hooks nor the container get them.
	defer closeFiles(trees)
	filter, err := seccomp.Compile(cfg.Spec.Linux.Seccomp)
	if err != nil {
		return err
	}
	if err := buildRootfs(conn, cfg, trees); err != nil {
		return err
	}
	if err := finishCreate(conn, cfg, tuning); err != nil {
		return err
	}
	return startProcess(conn, cfg, syncFD, filter)
}

// receiveConfig waits for the parent's config, decoding on the way the
// spec a speculative init may be sent ahead of it (msgSpec).
func receiveConfig(conn *syncConn) (*initConfig, error) {
	m, err := conn.recv()
	var ahead *specs.Spec
	if err == nil && m.Type == msgSpec {
		// A spec that does not decode is no error here: the parent,
		// which validates the config, says what is wrong with it.
		ahead, _ = decodeWireSpec(m.SpecJSON)
		m, err = conn.recv()
	}
	if err == nil && m.Type == msgError {
		err = errors.New(m.Message)
	} else if err == nil && m.Type != msgConfig {
		err = fmt.Errorf("sync: got %q, want %q", m.Type, msgConfig)
	}
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	if cfg != nil && cfg.SpecAhead {
		if ahead == nil {
			return nil, errors.New("init: config message without its spec")
		}
		cfg.useSpec(ahead)
	}
	if cfg == nil || cfg.Spec == nil || cfg.Spec.Linux == nil {
		return nil, errors.New("init: config message without a spec")
	}
	return cfg, nil
}

// buildRootfs sets up the namespaces init made and the root filesystem,
// applies the sysctls, and tells the parent, which then runs the prestart
// and createRuntime hooks.
func buildRootfs(conn *syncConn, cfg *initConfig, trees []*os.File) error {
	spec := cfg.Spec
	// Init's cgroup namespace is rooted where init is when it is made: in
	// the container's cgroups, which a speculative init is moved into
	// while it builds the rest (msgPlaced), and moves itself into the v1
	// ones of (MoveSelf).
	placed := func() error {
		if cfg.Placed {
			if _, err := conn.expect(msgPlaced); err != nil {
				return err
			}
		}
		if err := cgroup.MoveSelf(cfg.MoveSelf); err != nil {
			return err
		}
		return unshareCgroupNS(cfg)
	}
	if !cfg.Placed {
		if err := placed(); err != nil {
			return err
		}
		placed = nil
	}
	if err := setupNamespaces(cfg); err != nil {
		return err
	}
	idmap := func(i int, tree *os.File) error { return requestIDMap(conn, i, tree) }
	destinationsInRootfs(spec.Mounts, cfg.Rootfs)
	if err := prepareRootfs(spec, cfg.Rootfs, initMountSources(cfg, trees, idmap), !cfg.NewMountNS, placed); err != nil {
		if _, ok := errors.AsType[*cgroup.MoveError](err); ok {
			return err // the cgroups', not the rootfs's it was called amid
		}
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := applySysctls(spec.Linux.Sysctl); err != nil {
		return err
	}
	return conn.send(message{Type: msgMounted})
}

// finishCreate, once the parent's hooks have run, runs the createContainer
// hooks, enters the new root and reports the container created. It first
// undoes tuning: nothing init starts, nor the container's process, keeps
// what was tuned for building the container.
func finishCreate(conn *syncConn, cfg *initConfig, tuning sysmon.Tuning) error {
	spec := cfg.Spec
	if _, err := conn.expect(msgContinue); err != nil {
		return err
	}
	tuning.Restore()
	// On every CPU of its cpuset rather than those of crier's caller,
	// or the one CPU create kept init on while both started (prefork's
	// spread), from here on: the hooks init runs inherit it too.
	if err := resetAffinity(); err != nil {
		return err
	}
	st := initHookState(cfg, protocol.StatusCreating)
	if err := RunHooks(spec, HookCreateContainer, st); err != nil {
		return err
	}
	if err := enterRootfs(cfg); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	// Where the process runs: on the NUMA nodes of its policy.
	if err := applyMemoryPolicy(spec.Linux.MemoryPolicy); err != nil {
		return err
	}
	if p := spec.Process; p != nil {
		if err := setupProcessEarly(p); err != nil {
			return fmt.Errorf("process: %w", err)
		}
		// Inside the container's root now: its /etc/passwd gives HOME,
		// and a program that is not there fails create, as in runc.
		p.Env = processEnv(p.Env, p.User.UID)
		if err := checkProgram(p); err != nil {
			return err
		}
	}
	return conn.send(message{Type: msgReady})
}

// startProcess waits for `start` (unless told to start at once), runs the
// startContainer hooks and execs the user's process.
func startProcess(conn *syncConn, cfg *initConfig, syncFD int, filter *seccomp.Program) error {
	spec := cfg.Spec
	if !cfg.StartAtOnce {
		if err := awaitStart(conn); err != nil {
			return err
		}
	}
	if err := RunHooks(spec, HookStartContainer, initHookState(cfg, protocol.StatusCreated)); err != nil {
		return err
	}
	if err := applyProcessExtras(spec); err != nil {
		return err
	}
	// The hooks have all run, with the passed descriptors hidden.
	if err := inheritPassedFDs(syncFD); err != nil {
		return err
	}
	if err := conn.send(message{Type: msgExec}); err != nil {
		return err
	}
	handoff := func(listener int) error { return conn.handListener(syncFD, listener) }
	return execProcess(spec.Process, filter, handoff, nil)
}

// awaitStart waits for msgStart, attaching the terminal first if it comes.
func awaitStart(conn *syncConn) error {
	start, err := conn.recv()
	if err == nil && start.Type == msgTerminal {
		if err := attachTerminal(start.Pty); err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		if err := conn.send(message{Type: msgAttached}); err != nil {
			return err
		}
		start, err = conn.recv()
	}
	if err == nil && start.Type != msgStart {
		err = fmt.Errorf("sync: got %q, want %q", start.Type, msgStart)
	}
	return err
}

// unshareCgroupNS makes init's cgroup namespace, if it is to make one.
func unshareCgroupNS(cfg *initConfig) error {
	if cfg.NewCgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return os.NewSyscallError("unshare cgroup namespace", err)
		}
	}
	return nil
}

// setupNamespaces sets the host and domain names of a new UTS namespace.
func setupNamespaces(cfg *initConfig) error {
	if cfg.NewUTSNS && cfg.Spec.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Spec.Hostname)); err != nil {
			return os.NewSyscallError("sethostname", err)
		}
	}
	if cfg.NewUTSNS && cfg.Spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(cfg.Spec.Domainname)); err != nil {
			return os.NewSyscallError("setdomainname", err)
		}
	}
	return nil
}

// enterRootfs makes the container's root the process's root: pivot_root in
// a new mount namespace, a plain chroot without one (there is nothing to
// pivot away from that would not be the host's), as runc.
func enterRootfs(cfg *initConfig) error {
	if cfg.NewMountNS {
		return pivotRootfs(cfg.Spec, cfg.Rootfs, cfg.NoPivot)
	}
	if err := unix.Chroot(cfg.Rootfs); err != nil {
		return &os.PathError{Op: "chroot", Path: cfg.Rootfs, Err: err}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	return finishRootfs(cfg.Spec)
}

func initHookState(cfg *initConfig, status protocol.Status) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          cfg.ID,
		Status:      specs.ContainerState(status),
		Pid:         cfg.Pid,
		Bundle:      cfg.Bundle,
		Annotations: cfg.Spec.Annotations,
	}
}
