package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/internal/pidfd"
)

// Joining user and time namespaces.
//
// setns(2) into a user or a time namespace wants a single-threaded caller,
// and a Go program is never single-threaded once its runtime runs. So
// crier-shim has a second ELF entry point, preRuntimeEntry, a few lines of
// assembly that run before the runtime starts: for "crier-shim init
// --setns=FD,..." it joins those namespaces, then jumps to the runtime's own
// entry. That is the same moment runc's cgo constructor (nsexec) uses,
// without cgo: the binary stays static.
//
// A config that joins either namespace gets a two-stage init:
//
//	shim     forks stage one with no new namespaces (it joins the other
//	         "path" namespaces on the forking thread, as always), puts it
//	         in the cgroups and sends msgConfig
//	stage 1  (pre-runtime) setns time, then user; (Go) forks stage two
//	         with CLONE_PARENT and the clone flags of the new namespaces,
//	         as root of the joined user namespace; sends msgChild with a
//	         pidfd for it over the sync socket (SCM_RIGHTS) and exits 0
//	shim     reaps stage one, adopts stage two and sends msgConfig again
//	stage 2  is the ordinary init
//
// Stage two's new namespaces are then owned by the joined user namespace,
// and it is the shim's own child, so the shim reaps the container as usual.

// initSetnsArg prefixes init's second argument in stage one: the
// descriptors to join, in order. preRuntimeEntry matches it byte for byte.
const initSetnsArg = "--setns="

// preRuntimeJoin is where preRuntimeEntry reports, before the Go runtime
// starts (so this is not ordinary package state: nothing in Go writes it).
// It lives in zero-filled memory the runtime never clears.
var preRuntimeJoin struct {
	ran   int32 // 1 once the entry point has seen --setns=
	index int32 // the descriptor that failed, counting from 0
	errno int32 // its setns error, 0 when all were joined
}

// msgChild, from stage one, carries a pidfd for stage two.
const msgChild = "child"

// preRuntimeNamespaces returns the namespaces of l joined by the pre-runtime
// entry, in the order it must join them: time first, while the process is
// still root of the user namespace that owns it, then user.
func preRuntimeNamespaces(l *specs.Linux) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.TimeNamespace, specs.UserNamespace} {
		for _, ns := range l.Namespaces {
			if ns.Type == t && ns.Path != "" {
				out = append(out, ns)
			}
		}
	}
	return out
}

// nsTypes maps a namespace type to what ioctl(NS_GET_NSTYPE) returns.
var nsTypes = map[specs.LinuxNamespaceType]int{
	specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// openNamespaces opens the namespaces for stage one to join and checks that
// each is one, of the right type: the entry point can report only an errno.
func openNamespaces(nss []specs.LinuxNamespace) ([]*os.File, error) {
	var files []*os.File
	for _, ns := range nss {
		f, err := os.Open(ns.Path)
		if err == nil {
			var t int
			t, err = unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
			switch {
			case err != nil:
				err = fmt.Errorf("not a namespace: %w", err)
			case t != nsTypes[ns.Type]:
				err = fmt.Errorf("not a %s namespace", ns.Type)
			}
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("%s namespace %s: %w", ns.Type, ns.Path, err)
		}
		files = append(files, f)
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// setnsArg is init's --setns= argument for descriptors first, first+1, ...
func setnsArg(first, n int) string {
	fds := make([]string, n)
	for i := range fds {
		fds[i] = strconv.Itoa(first + i)
	}
	return initSetnsArg + strings.Join(fds, ",")
}

// joinStage is stage one of a two-stage init (see above). syncFD is the
// sync socket; the descriptors below it are the container's.
func joinStage(conn *syncConn, syncFD int) error {
	m, err := conn.expect(msgConfig)
	if err != nil {
		return err
	}
	if m.Config == nil || m.Config.Spec == nil || m.Config.Spec.Linux == nil {
		return errors.New("init: config message without a spec")
	}
	plan, err := planNamespaces(m.Config.Spec.Linux)
	if err != nil {
		return err
	}
	if err := preRuntimeResult(plan.preRuntime); err != nil {
		return err
	}
	files := make([]uintptr, syncFD+1)
	for i := range files {
		files[i] = uintptr(i)
	}
	pidfd := -1
	plan.stage2.PidFD = &pidfd
	// /proc/self/exe names this binary whatever the mount namespace: the
	// sealed copy stage one was exec'd from (sealedexe_linux.go), so
	// stage two is not the host's file either.
	_, err = syscall.ForkExec("/proc/self/exe", []string{"crier", "init"}, &syscall.ProcAttr{
		Env:   initEnv(syncFD),
		Files: files,
		Sys:   plan.stage2,
	})
	if err != nil {
		return fmt.Errorf("init: fork into the joined namespaces: %w", err)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	return conn.sendFiles(message{Type: msgChild}, []*os.File{f})
}

// preRuntimeResult turns what the entry point reported into an error.
func preRuntimeResult(nss []specs.LinuxNamespace) error {
	r := preRuntimeJoin
	switch {
	case r.ran != 1:
		return errors.New("joining a user or time namespace needs crier-shim linked with its pre-runtime entry point (build it with make, on amd64)")
	case r.errno != 0 && int(r.index) < len(nss):
		ns := nss[r.index]
		return fmt.Errorf("linux.namespaces: %s namespace %s: setns: %w", ns.Type, ns.Path, syscall.Errno(r.errno))
	case r.errno != 0:
		return fmt.Errorf("linux.namespaces: setns: %w", syscall.Errno(r.errno))
	}
	return nil
}

// adoptStageTwo receives stage two's pidfd from stage one, reaps stage one
// and makes stage two the container's init process.
func (c *Container) adoptStageTwo() error {
	_, err := c.sync.expect(msgChild)
	files := c.sync.takeFiles()
	if err != nil {
		closeFiles(files)
		return c.initError(err)
	}
	if len(files) != 1 {
		closeFiles(files)
		return fmt.Errorf("sync: %q came with %d descriptors, want a pidfd", msgChild, len(files))
	}
	// A descriptor of our own: the *os.File would close it when collected.
	pidfd, err := unix.FcntlInt(files[0].Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		killChild(int(files[0].Fd()))
		files[0].Close()
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	files[0].Close()
	pid, err := pidfdPid(pidfd)
	if err != nil {
		killChild(pidfd)
		unix.Close(pidfd)
		return err
	}
	// Stage one exits as soon as it has sent the pidfd. A supervisor's
	// child (Config.Supervised) is the supervisor's to reap: ECHILD.
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(c.Pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	unix.Close(c.PidFD)
	c.Pid, c.PidFD = pid, pidfd
	return nil
}

// pidfdPid returns the pid, in our pid namespace, of the process pidfd
// refers to.
func pidfdPid(pidfd int) (int, error) {
	path := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%s: bad Pid line %q", path, line)
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%s: no Pid line", path)
}

// killChild kills and reaps stage two through its pidfd. It is our child
// (CLONE_PARENT), and Abort only knows stage one; or, supervised, the
// supervisor's, and then we wait only for its exit.
// Cleanup on a path that already failed: the first error is the one to
// report, so these are not.
func killChild(fd int) {
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if pidfd.Reap(fd) != nil {
		pidfd.Wait(fd, -1)
	}
}
