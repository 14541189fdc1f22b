package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// execOptions are exec's flags, runc's.
type execOptions struct {
	process       string
	tty           bool
	consoleSocket string
	detach        bool
	pidFile       string
	cwd           string
	env           []string
	user          string
	gids          []int64
	caps          []string
	noNewPrivs    bool
	apparmor      string
	label         string
	preserveFDs   int
	ignorePaused  bool
	execID        string
	pidfdSocket   string
	cgroups       []string
	// subCgroups is cgroups parsed (cgroup.ParseSubCgroups).
	subCgroups map[string]string
	// pidfd is the connection to pidfdSocket, once dialled.
	pidfd *pidfdSocket
}

func (a *app) execCommand() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec [flags] ID [COMMAND [ARG...]]",
		Short: "run a process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.exec(cmd, args[0], args[1:], &o)
		},
	}
	f := cmd.Flags()
	// Everything after the command is its own: `exec ID sh -c 'x'`.
	f.SetInterspersed(false)
	f.StringVarP(&o.process, "process", "p", "", "path to a process.json (the runtime-spec's process) to run instead of COMMAND")
	f.BoolVarP(&o.tty, "tty", "t", false, "give the process a pseudo-terminal")
	f.StringVar(&o.consoleSocket, "console-socket", "", "with --tty --detach: AF_UNIX socket that receives the pty master")
	f.BoolVarP(&o.detach, "detach", "d", false, "return once the process runs")
	f.StringVar(&o.pidFile, "pid-file", "", "write the process's pid to this file")
	f.StringVar(&o.cwd, "cwd", "", "the process's working directory, in the container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable (KEY=VALUE; repeatable)")
	f.StringVarP(&o.user, "user", "u", "", "UID[:GID] to run as")
	f.Int64SliceVarP(&o.gids, "additional-gids", "g", nil, "additional group ids (repeatable)")
	f.StringArrayVarP(&o.caps, "cap", "c", nil, "add a capability to the bounding, effective and permitted sets (repeatable)")
	f.BoolVar(&o.noNewPrivs, "no-new-privs", false, "set no_new_privs for the process")
	f.StringVar(&o.apparmor, "apparmor", "", "AppArmor profile for the process")
	f.StringVar(&o.label, "process-label", "", "SELinux label for the process")
	f.IntVar(&o.preserveFDs, "preserve-fds", 0, "pass this many descriptors after stdio through to the process")
	f.BoolVar(&o.ignorePaused, "ignore-paused", false, "run the process in a paused container too (it starts once the container is resumed)")
	f.StringVar(&o.pidfdSocket, "pidfd-socket", "", "AF_UNIX socket that receives a pidfd of the process")
	f.StringVar(&o.execID, "exec-id", "", "name the process in its exec-started and exec-stopped events (default: the shim makes one up)")
	f.StringArrayVar(&o.cgroups, "cgroup", nil, "run the process in a sub-cgroup of the container's: CONTROLLER[,CONTROLLER...]:PATH (repeatable), or PATH for every hierarchy")
	return cmd
}

// execFailed is the exit code of an exec that did not run the process, as
// runc's.
const execFailed = 255

func (a *app) exec(cmd *cobra.Command, id string, args []string, o *execOptions) error {
	status, err := a.execProcess(cmd, id, args, o)
	if err != nil {
		return &codedError{err: err, code: execFailed}
	}
	if status != 0 {
		return &exitError{code: status}
	}
	return nil
}

func (a *app) execProcess(cmd *cobra.Command, id string, args []string, o *execOptions) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	if o.execID != "" {
		if err := container.ValidateID(o.execID); err != nil {
			return 0, fmt.Errorf("--exec-id: %w", err)
		}
	}
	sub, err := cgroup.ParseSubCgroups(o.cgroups)
	if err != nil {
		return 0, err
	}
	o.subCgroups = sub
	st, spec, err := a.execState(id)
	if err != nil {
		return 0, err
	}
	forks, err := a.execForks(st)
	if err != nil {
		return 0, err
	}
	p, err := o.buildProcess(cmd, spec, args)
	if err != nil {
		return 0, err
	}
	if err := o.checkConsole(p.Terminal); err != nil {
		return 0, err
	}
	if o.pidfd, err = dialPidfdSocket(o.pidfdSocket); err != nil {
		return 0, err
	}
	defer o.pidfd.Close()
	// Only --preserve-fds: LISTEN_FDS is for a container's init, and a
	// supervisor's may be in our environment without its descriptors.
	if o.preserveFDs < 0 {
		return 0, fmt.Errorf("--preserve-fds: %d is negative", o.preserveFDs)
	}
	extra, err := inheritedFDs(o.preserveFDs)
	if err != nil {
		return 0, err
	}
	cfg, err := container.NewExecConfig(spec, p, len(extra))
	if err != nil {
		return 0, err
	}
	for _, w := range container.CapabilityWarnings(p) {
		fmt.Fprintf(os.Stderr, "crier: warning: %s\n", w)
	}
	a.debugExecAffinity(p)
	// Our own console socket: the stage clears ONLCR before the process
	// can print anything (proxy would come too late).
	cfg.ClearONLCR = p.Terminal && !o.detach && !stdoutIsTerminal()
	e, err := newExecFiles(cfg, extra, o)
	if err != nil {
		return 0, err
	}
	defer e.close()
	var sigs chan os.Signal
	if !o.detach {
		sigs = catchSignals(p.Terminal)
		defer signal.Stop(sigs)
	}
	if forks {
		return a.forkExec(id, st, spec, e, o, sigs)
	}
	return a.runExec(id, e, o, sigs)
}

// announce tells the caller where the process is: the pid file and the
// pidfd socket.
func (o *execOptions) announce(pid int) error {
	if o.pidFile != "" {
		if err := writeExecPidFile(o.pidFile, pid); err != nil {
			return err
		}
	}
	return o.pidfd.send(pid)
}

// announceFD is announce with a pidfd of the process at hand.
func (o *execOptions) announceFD(pid, fd int) error {
	if o.pidFile != "" {
		if err := writeExecPidFile(o.pidFile, pid); err != nil {
			return err
		}
	}
	return o.pidfd.sendFD(fd, pid)
}

// debugExecAffinity logs the exec stage's initial CPU mask, in the words
// of runc's nsexec debug line (cpu_affinity.bats reads them).
func (a *app) debugExecAffinity(p *specs.Process) {
	if !a.debug || p.ExecCPUAffinity == nil || p.ExecCPUAffinity.Initial == "" {
		return
	}
	// NewExecConfig has checked the list.
	if set, err := container.ParseCPUList(p.ExecCPUAffinity.Initial); err == nil {
		a.debugf("exec stage (runc's nsexec): initial CPU list %s: affinity: %s", p.ExecCPUAffinity.Initial, container.CPUMaskString(set))
	}
}

// debugExeced logs, in the words of runc's setns init that exec.bats
// reads, that the exec stage has joined the container and exec'd the
// process. The lines come once the shim (or ExecFrom) reports the execve
// done, which is when crier learns of it.
func (a *app) debugExeced(id string, e *execFiles, pid int) {
	if !a.debug {
		return
	}
	a.debugf("child process in init(): the exec stage joined the namespaces and cgroups of container %s", id)
	a.debugf("setns_init: about to exec %q: exec'd, pid %d", e.prog, pid)
}

// execState returns the state of container id and the config it was
// created from, as the shim recorded it: never the bundle's config.json,
// which may have been changed since (a looser seccomp filter, more
// capabilities) by whoever can write the bundle.
func (a *app) execState(id string) (*statedir.State, *specs.Spec, error) {
	d, st, _, err := a.openState(id)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	if st.Status == protocol.StatusStopped {
		return nil, nil, errors.New("cannot exec in a stopped container")
	}
	b, err := d.ReadConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("exec: the config container %q was created from: %w", id, err)
	}
	spec, err := container.ParseSpec(b, filepath.Join(d.Path(), statedir.ConfigFile))
	if err != nil {
		return nil, nil, err
	}
	return st, spec, nil
}

// runExec sends the exec request, writes the pid file and, in the
// foreground, proxies the terminal, forwards signals and waits for the exit.
func (a *app) runExec(id string, e *execFiles, o *execOptions, sigs chan os.Signal) (int, error) {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dialRecovering(ctx, id)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	a.debugf("nsexec container setup: the shim of container %s forks the exec stage", id)
	pid, err := c.Exec(ctx, e.send, protocol.ExecOptions{Wait: !o.detach, IgnorePaused: o.ignorePaused, ExecID: o.execID, Cgroup: o.cgroups})
	e.closeSent()
	if err != nil {
		return 0, requestError(err)
	}
	a.debugExeced(id, e, pid)
	if err := o.announce(pid); err != nil {
		// Nobody could find it to wait for it: it must not run.
		// The shim is its parent and reaps it.
		if fd, perr := unix.PidfdOpen(pid, 0); perr == nil {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		}
		return 0, err
	}
	if o.detach {
		return 0, nil
	}
	stop, err := e.proxyTerminal()
	if err != nil {
		return 0, err
	}
	forwardSignals(pid, sigs)
	status, _, err := c.ExecExit(context.Background())
	if stop != nil {
		stop()
	}
	return status, requestError(err)
}

// buildProcess is the process to run: --process's, or the container's
// with the command and the flags applied, as runc builds it.
func (o *execOptions) buildProcess(cmd *cobra.Command, spec *specs.Spec, args []string) (*specs.Process, error) {
	if o.process != "" {
		b, err := os.ReadFile(o.process)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("--process %s: %w", o.process, err)
		}
		return &p, nil
	}
	if len(args) == 0 {
		return nil, errors.New("exec: no command: give COMMAND or --process")
	}
	if spec.Process == nil {
		return nil, errors.New("exec: the container's config has no process to take defaults from; use --process")
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = o.tty
	if o.cwd != "" {
		p.Cwd = o.cwd
	}
	if o.apparmor != "" {
		p.ApparmorProfile = o.apparmor
	}
	if o.label != "" {
		p.SelinuxLabel = o.label
	}
	if cmd.Flags().Changed("no-new-privs") {
		p.NoNewPrivileges = o.noNewPrivs
	}
	p.Env = mergeEnv(p.Env, o.env)
	if err := o.applyUser(&p.User); err != nil {
		return nil, err
	}
	if len(o.caps) > 0 {
		p.Capabilities = withCaps(p.Capabilities, o.caps)
	}
	return &p, nil
}

func (o *execOptions) applyUser(u *specs.User) error {
	if o.user != "" {
		uid, gid, hasGID := strings.Cut(o.user, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return fmt.Errorf("--user %q: uid %q is not a number", o.user, uid)
		}
		u.UID = uint32(n)
		if hasGID {
			n, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return fmt.Errorf("--user %q: gid %q is not a number", o.user, gid)
			}
			u.GID = uint32(n)
		}
	}
	u.AdditionalGids = append([]uint32(nil), u.AdditionalGids...)
	for _, g := range o.gids {
		if g < 0 || g > 1<<32-1 {
			return fmt.Errorf("--additional-gids: %d is not a gid", g)
		}
		u.AdditionalGids = append(u.AdditionalGids, uint32(g))
	}
	return nil
}

// withCaps adds caps to the bounding, effective and permitted sets (not
// the inheritable or ambient ones, as runc since CVE-2022-29162).
func withCaps(c *specs.LinuxCapabilities, caps []string) *specs.LinuxCapabilities {
	out := &specs.LinuxCapabilities{}
	if c != nil {
		*out = *c
	}
	for _, name := range caps {
		name = strings.ToUpper(name)
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		out.Bounding = append(append([]string(nil), out.Bounding...), name)
		out.Effective = append(append([]string(nil), out.Effective...), name)
		out.Permitted = append(append([]string(nil), out.Permitted...), name)
		// As runc: ambient too when the config lets the process
		// inherit it, so that it survives the execve of a program
		// without file capabilities.
		if slices.Contains(out.Inheritable, name) {
			out.Ambient = append(append([]string(nil), out.Ambient...), name)
		}
	}
	return out
}

// mergeEnv appends add to env; a later value of a variable replaces the
// earlier one in its place.
func mergeEnv(env, add []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range add {
		key, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if k, _, _ := strings.Cut(old, "="); k == key {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// checkConsole checks --tty, --detach and --console-socket together, as
// runc does.
func (o *execOptions) checkConsole(terminal bool) error {
	switch {
	case o.detach && terminal && o.consoleSocket == "":
		return errors.New("cannot allocate tty if crier will detach without setting console socket")
	case o.consoleSocket != "" && (!o.detach || !terminal):
		return errors.New("cannot use console socket if crier will not detach or allocate tty")
	}
	return nil
}

func writeExecPidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := statedir.WriteFile(abs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// forwardSignals sends what sigs catches to the process, through a pidfd:
// it is the shim's child or ours, so its pid stays its own until reaped.
func forwardSignals(pid int, sigs chan os.Signal) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // it has exited already
	}
	go func() {
		defer unix.Close(fd)
		for s := range sigs {
			unix.PidfdSendSignal(fd, s.(unix.Signal), nil, 0)
		}
	}()
}

// execFiles are the descriptors an exec sends, and the console's end
// that crier keeps in the foreground.
type execFiles struct {
	send    []*os.File // the config, stdio, the preserved, the console
	owned   []*os.File // those of send that are ours to close
	console *net.UnixConn
	prog    string // the process's args[0], for --debug
}

func newExecFiles(cfg *container.ExecConfig, extra []*os.File, o *execOptions) (*execFiles, error) {
	e := &execFiles{prog: cfg.Process.Args[0]}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	mem, err := configMemfd(b)
	if err != nil {
		return nil, err
	}
	e.owned = append(e.owned, mem)
	e.send = append([]*os.File{mem, os.Stdin, os.Stdout, os.Stderr}, extra...)
	if !cfg.Console {
		return e, nil
	}
	sock, err := e.consoleFile(o)
	if err != nil {
		e.close()
		return nil, err
	}
	e.owned = append(e.owned, sock)
	e.send = append(e.send, sock)
	return e, nil
}

// consoleFile returns the descriptor the exec stage sends the pty master
// on: a connection to --console-socket, or in the foreground one end of a
// socket pair whose other end crier reads.
func (e *execFiles) consoleFile(o *execOptions) (*os.File, error) {
	if o.detach {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: o.consoleSocket, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		defer conn.Close()
		return conn.File()
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "console")
	defer ours.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		unix.Close(fds[1])
		return nil, err
	}
	e.console = conn.(*net.UnixConn)
	return os.NewFile(uintptr(fds[1]), "console-peer"), nil
}

func configMemfd(b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("crier-exec", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "crier-exec")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("exec config: %w", err)
	}
	// The stage reads from the shared offset.
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("exec config: %w", err)
	}
	return f, nil
}

// closeSent closes our copies once the shim has its own.
func (e *execFiles) closeSent() {
	for _, f := range e.owned {
		f.Close()
	}
	e.owned = nil
}

func (e *execFiles) close() {
	e.closeSent()
	if e.console != nil {
		e.console.Close()
	}
}

// proxyTerminal, in the foreground with a terminal, receives the pty
// master and proxies it; stop waits for its output to drain.
func (e *execFiles) proxyTerminal() (stop func(), err error) {
	if e.console == nil {
		return nil, nil
	}
	master, err := recvMaster(e.console)
	if err != nil {
		return nil, err
	}
	cl := &consoleListener{master: make(chan *os.File, 1), err: make(chan error, 1)}
	cl.master <- master
	stop, err = cl.proxy()
	if err != nil {
		master.Close()
	}
	return stop, err
}
