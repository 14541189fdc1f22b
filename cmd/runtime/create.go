package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/internal/prefork"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

type createOptions struct {
	bundle        string
	pidFile       string
	consoleSocket string
	preserveFDs   int
	eventBuffer   string
	pidfdSocket   string
	// noPivot enters the rootfs with MS_MOVE and chroot, not pivot_root.
	noPivot bool
	// callerParent is the parent of the process that ran create, for the
	// supervisor detection (supervisor.go); run leaves it 0.
	callerParent int
}

func (o *createOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.bundle, "bundle", "b", "", "bundle directory (default: the current directory)")
	f.StringVar(&o.pidFile, "pid-file", "", "write the container process's pid to this file")
	f.StringVar(&o.consoleSocket, "console-socket", "", "Unix socket to send the pty master to when process.terminal is true")
	f.IntVar(&o.preserveFDs, "preserve-fds", 0, "pass this many descriptors after stdio through to the container")
	f.StringVar(&o.pidfdSocket, "pidfd-socket", "", "AF_UNIX socket that receives a pidfd of the container's process")
	f.StringVar(&o.eventBuffer, "event-buffer", "all", "event types the shim keeps for late subscribers: a comma-separated list, all or none")
	f.BoolVar(&o.noPivot, "no-pivot", false, "enter the root filesystem with MS_MOVE and chroot rather than pivot_root (for a rootfs on a ramdisk), as runc's --no-pivot")
}

func (a *app) createCommand() *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "create a container from a bundle; it waits for start",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only a caller that asks for the pid can reap the
			// container: conmon and containerd-shim always pass
			// --pid-file. Without one, auto skips the detection
			// and its fork (docs/supervisors.md).
			if o.pidFile != "" {
				o.callerParent = os.Getppid()
				if prefork.Child() {
					o.callerParent = prefork.CallerParent()
				}
			}
			_, err := a.create(args[0], &o)
			return err
		},
	}
	o.flags(cmd)
	return cmd
}

// exactID is the argument rule of every verb that takes one container ID.
func exactID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: expects exactly one container ID, got %d arguments", cmd.Name(), len(args))
	}
	return checkID(args[0])
}

// create starts a shim for the container and returns once the shim reports
// the container created, with its pid.
func (a *app) create(id string, o *createOptions) (int, error) {
	sa, mode, err := a.createArgs(id, o)
	if err != nil {
		return 0, err
	}
	if forkedCreate(o) {
		return 0, a.serveShim(sa, mode, o.callerParent)
	}
	pidfdSock, err := dialPidfdSocket(o.pidfdSocket)
	if err != nil {
		return 0, err
	}
	defer pidfdSock.Close()
	sa.supervisor = supervisorArgs(mode, o.callerParent)
	pid, err := a.startShim(sa)
	if err == nil {
		if err = pidfdSock.send(pid); err != nil {
			a.delete(id, true)
		}
	}
	return pid, err
}

// createArgs checks what create was given and returns what the shim is
// to be given, and the supervisor mode.
func (a *app) createArgs(id string, o *createOptions) (shimArgs, string, error) {
	bundle, pidFile, err := o.paths()
	if err != nil {
		return shimArgs{}, "", err
	}
	if err := checkEventBuffer(o.eventBuffer); err != nil {
		return shimArgs{}, "", err
	}
	mode, err := a.supervisorMode()
	if err != nil {
		return shimArgs{}, "", err
	}
	consoleSocket := o.consoleSocket
	if consoleSocket != "" {
		if consoleSocket, err = filepath.Abs(consoleSocket); err != nil {
			return shimArgs{}, "", fmt.Errorf("--console-socket: %w", err)
		}
	}
	if err := a.checkNew(id); err != nil {
		return shimArgs{}, "", err
	}
	shimPath, err := a.findShim()
	if err != nil {
		return shimArgs{}, "", err
	}
	extra, err := passedFDs(o.preserveFDs)
	if err != nil {
		return shimArgs{}, "", err
	}
	return shimArgs{
		shim: shimPath, id: id, bundle: bundle, pidFile: pidFile,
		consoleSocket: consoleSocket, buffer: o.eventBuffer, extra: extra,
		noPivot: o.noPivot,
	}, mode, nil
}

// checkNew refuses early an ID that is taken or a state root that is not
// safe to use; the shim checks both again as it claims the ID.
func (a *app) checkNew(id string) error {
	r, err := statedir.OpenRoot(a.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the shim makes it
	}
	if err != nil {
		return err
	}
	defer r.Close()
	if r.Exists(id) {
		return fmt.Errorf("container %q %w", id, protocol.ErrExist)
	}
	return nil
}

func (o *createOptions) paths() (bundle, pidFile string, err error) {
	bundle = o.bundle
	if bundle == "" {
		bundle = "."
	}
	if bundle, err = filepath.Abs(bundle); err != nil {
		return "", "", fmt.Errorf("--bundle: %w", err)
	}
	if fi, err := os.Stat(bundle); err != nil {
		return "", "", fmt.Errorf("bundle: %w", err)
	} else if !fi.IsDir() {
		return "", "", fmt.Errorf("bundle %s is not a directory", bundle)
	}
	if o.pidFile != "" {
		if pidFile, err = filepath.Abs(o.pidFile); err != nil {
			return "", "", fmt.Errorf("--pid-file: %w", err)
		}
	}
	return bundle, pidFile, nil
}

func checkEventBuffer(list string) error {
	if list == "all" || list == "none" {
		return nil
	}
	known := map[string]bool{}
	for _, t := range protocol.EventTypes() {
		known[t] = true
	}
	for _, t := range strings.Split(list, ",") {
		if !known[strings.TrimSpace(t)] {
			return fmt.Errorf("--event-buffer: unknown event type %q (want %s, all or none)", t, strings.Join(protocol.EventTypes(), ", "))
		}
	}
	return nil
}

// passedFDs returns the descriptors after stdio that go to the container:
// the systemd socket-activation ones (LISTEN_FDS) and --preserve-fds.
func passedFDs(preserve int) ([]*os.File, error) {
	if preserve < 0 {
		return nil, fmt.Errorf("--preserve-fds: %d is negative", preserve)
	}
	n := preserve
	if s := os.Getenv("LISTEN_FDS"); s != "" {
		if l, err := strconv.Atoi(s); err == nil && l > 0 {
			n += l
		}
	}
	return inheritedFDs(n)
}

// inheritedFDs returns descriptors 3 to 3+n-1, which crier's caller must
// have passed to it.
func inheritedFDs(n int) ([]*os.File, error) {
	files := make([]*os.File, n)
	for i := range files {
		fd := 3 + i
		// A descriptor our caller passed survived exec, so it is not
		// close-on-exec; one that is was opened by crier itself (the Go
		// runtime keeps cgroup files open) and is not the caller's.
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			return nil, fmt.Errorf("--preserve-fds: descriptor %d was not passed to crier", fd)
		}
		files[i] = os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
	}
	return files, nil
}

func (a *app) findShim() (string, error) {
	if a.shimPath != "" {
		return a.shimPath, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "crier-shim")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("crier-shim")
	if err != nil {
		return "", errors.New("crier-shim not found next to crier or in $PATH (use --shim)")
	}
	return p, nil
}

// shimArgs is what create hands to the shim.
type shimArgs struct {
	shim, id, bundle, pidFile, consoleSocket, buffer string
	extra                                            []*os.File
	noPivot                                          bool
	// supervisor are the shim's supervisor arguments (supervisorArgs),
	// "--detach" first when it has them.
	supervisor []string
}

func (a *app) startShim(sa shimArgs) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// Whatever our caller leaked to us (a shell's descriptors) must not
	// reach the long-lived shim and the container: only stdio and the
	// passed descriptors do.
	unix.CloseRange(uint(3+len(sa.extra)), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	files := []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()}
	for _, f := range append(sa.extra, w) {
		files = append(files, f.Fd())
	}
	// syscall.ForkExec rather than os/exec: os.StartProcess first checks,
	// once per process, that pidfds work, by forking a child that exits
	// at once, which is one more process on create's path for nothing.
	// Its own session: the shim outlives create and must not get the
	// terminal's signals.
	pid, err := syscall.ForkExec(sa.shim, append([]string{sa.shim}, a.shimFlags(sa)...), &syscall.ProcAttr{
		Env:   []string{},
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start shim: %w", err)
	}
	// The debug lines of create and start carry the words of runc's that
	// its suite and scripts look for, at the step of crier's that matches.
	a.debugf("nsexec container setup: crier-shim %d makes container %s", pid, sa.id)
	cpid, seal, err := awaitReport(pid, r)
	if err == nil {
		a.debugExeSeal(seal)
		a.debugf("child process in init(): the init of %s is pid %d, created", sa.id, cpid)
	}
	return cpid, err
}

// debugExeSeal says how the binary init runs from was sealed against
// being overwritten from the container (CVE-2019-5736), in the words of
// runc's exeseal lines that run.bats reads: crier's counterpart of runc's
// /proc/self/exe clone is its sealed copy of crier-shim.
func (a *app) debugExeSeal(seal string) {
	if seal == "" {
		return
	}
	a.debugf("sealed init binary (as runc exeseal: using /proc/self/exe clone): init runs from a copy of crier-shim")
	switch seal {
	case "overlayfs":
		a.debugf("sealed init binary (as runc exeseal: using overlayfs for sealed /proc/self/exe): the copy is a file of a private read-only overlayfs")
	default:
		a.debugf("sealed init binary: the copy is a sealed %s", seal)
	}
}

// shimFlags is the shim's command line for sa.
func (a *app) shimFlags(sa shimArgs) []string {
	args := append(append([]string{}, sa.supervisor...),
		"--root", a.root, "--id", sa.id, "--bundle", sa.bundle,
		"--event-buffer", sa.buffer, "--preserve-fds", strconv.Itoa(len(sa.extra)),
	)
	if sa.pidFile != "" {
		args = append(args, "--pid-file", sa.pidFile)
	}
	if sa.consoleSocket != "" {
		args = append(args, "--console-socket", sa.consoleSocket)
	}
	if sa.noPivot {
		args = append(args, "--no-pivot")
	}
	if a.debug {
		args = append(args, "--debug")
	}
	if a.logPath != "" {
		args = append(args, "--log", a.logPath)
	}
	if cli := cliPath(); cli != "" {
		args = append(args, "--heal", cli)
	}
	return args
}

// awaitReport reads the shim's one line from r, {"pid":N,"shim":S} (with
// "seal" under --debug) or {"error":"...","shim":S}, and returns the
// container's pid and how its init's binary was sealed, or the error.
// child is the shim process create started. On error it returns only once
// the shim has exited, so that nothing of the failed create outlives
// create.
func awaitReport(child int, r io.Reader) (pid int, seal string, err error) {
	var rep struct {
		Pid   int    `json:"pid"`
		Error string `json:"error"`
		Shim  int    `json:"shim"`
		Seal  string `json:"seal"`
	}
	reap := func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(child, &ws, 0, nil); err != unix.EINTR {
				return
			}
		}
	}
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		reap()
		return 0, "", fmt.Errorf("shim %d exited without reporting the outcome of create", child)
	}
	// A shim that detached itself (--detach) is the child of the process
	// we started, which has exited: reap that one, and it is the shim no
	// more.
	detached := rep.Shim != 0 && rep.Shim != child
	if detached {
		reap()
	}
	if rep.Error != "" {
		if detached {
			waitExit(rep.Shim)
		} else {
			reap()
		}
		return 0, "", errors.New(rep.Error)
	}
	return rep.Pid, rep.Seal, nil
}

// waitExit waits for process pid, which is not our child, to exit. The
// shim exits right after its report and nobody but it reuses its pid
// before then: pid_max would have to wrap in between.
func waitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone already
	}
	defer unix.Close(fd)
	pidfd.Wait(fd, -1)
}

// cliPath is this binary's path, for the serving image of a crier-shim
// that create starts to heal (shim.Config.HealPath), or "" if it cannot
// be told.
func cliPath() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}
