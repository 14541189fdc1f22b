package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container/seccomp"
)

// defaultPath is searched when the process environment has no PATH, so
// that a config without one still runs "sh" the way a shell would.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultUmask matches what other runtimes give containers whose config
// sets none, so images behave the same under crier.
const defaultUmask = 0o022

// validateProcess rejects configs that could only fail later, deep inside
// the init stage, where errors are harder to read.
func validateProcess(p *specs.Process) error {
	if p == nil {
		return errors.New("missing")
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return errors.New("args must not be empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("cwd %q is not an absolute path", p.Cwd)
	}
	if err := checkEnv(p.Env); err != nil {
		return err
	}
	if v := p.OOMScoreAdj; v != nil && (*v < -1000 || *v > 1000) {
		return fmt.Errorf("oomScoreAdj %d outside [-1000, 1000]", *v)
	}
	seen := make(map[string]bool, len(p.Rlimits))
	for _, rl := range p.Rlimits {
		if _, err := rlimitResource(rl.Type); err != nil {
			return err
		}
		if seen[rl.Type] {
			return fmt.Errorf("duplicate rlimit type %q", rl.Type)
		}
		seen[rl.Type] = true
		if rl.Soft > rl.Hard {
			return fmt.Errorf("rlimit %s soft limit %d above hard limit %d", rl.Type, rl.Soft, rl.Hard)
		}
	}
	return nil
}

// rlimitResource maps a spec rlimit type to its resource number.
func rlimitResource(name string) (int, error) {
	switch name {
	case "RLIMIT_AS":
		return unix.RLIMIT_AS, nil
	case "RLIMIT_CORE":
		return unix.RLIMIT_CORE, nil
	case "RLIMIT_CPU":
		return unix.RLIMIT_CPU, nil
	case "RLIMIT_DATA":
		return unix.RLIMIT_DATA, nil
	case "RLIMIT_FSIZE":
		return unix.RLIMIT_FSIZE, nil
	case "RLIMIT_LOCKS":
		return unix.RLIMIT_LOCKS, nil
	case "RLIMIT_MEMLOCK":
		return unix.RLIMIT_MEMLOCK, nil
	case "RLIMIT_MSGQUEUE":
		return unix.RLIMIT_MSGQUEUE, nil
	case "RLIMIT_NICE":
		return unix.RLIMIT_NICE, nil
	case "RLIMIT_NOFILE":
		return unix.RLIMIT_NOFILE, nil
	case "RLIMIT_NPROC":
		return unix.RLIMIT_NPROC, nil
	case "RLIMIT_RSS":
		return unix.RLIMIT_RSS, nil
	case "RLIMIT_RTPRIO":
		return unix.RLIMIT_RTPRIO, nil
	case "RLIMIT_RTTIME":
		return unix.RLIMIT_RTTIME, nil
	case "RLIMIT_SIGPENDING":
		return unix.RLIMIT_SIGPENDING, nil
	case "RLIMIT_STACK":
		return unix.RLIMIT_STACK, nil
	}
	return 0, fmt.Errorf("unknown rlimit type %q", name)
}

// setupProcessEarly applies the process settings that must be in place
// while init still runs as root: raising hard limits and lowering
// oom_score_adj both need privileges the user's process may not have.
func setupProcessEarly(p *specs.Process) error {
	for _, rl := range p.Rlimits {
		res, err := rlimitResource(rl.Type)
		if err != nil {
			return err
		}
		// unix.Setrlimit goes through syscall.Setrlimit, which also makes
		// Go forget the RLIMIT_NOFILE it raised at startup; otherwise
		// syscall.Exec would put the old soft limit back over ours.
		lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := unix.Setrlimit(res, &lim); err != nil {
			return fmt.Errorf("setrlimit %s soft %d hard %d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	if p.OOMScoreAdj != nil {
		if err := writeOOMScoreAdj(*p.OOMScoreAdj); err != nil {
			return err
		}
	}
	return nil
}

func writeOOMScoreAdj(v int) error {
	const path = "/proc/self/oom_score_adj"
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(v))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %d to %s: %w", v, path, err)
	}
	return nil
}

// execProcess turns the init stage into the user's process. Credentials,
// capabilities and no_new_privs are per thread, so every change here is
// made with raw syscalls on the calling thread, which the caller keeps
// locked; execve from it then replaces the whole process with this
// thread's state. handoff takes the listener of a filter that notifies
// (seccomp.Handoff).
func execProcess(p *specs.Process, filter *seccomp.Program, handoff seccomp.Handoff, beforeExec func() error) error {
	path, caps, err := prepareExec(p)
	if err != nil {
		return err
	}
	if err := takeIdentity(p, caps, filter, handoff); err != nil {
		return err
	}
	if beforeExec != nil {
		if err := beforeExec(); err != nil {
			return fmt.Errorf("before exec: %w", err)
		}
	}
	return &execveError{path: path, err: unix.Exec(path, p.Args, p.Env)}
}

// execveError is the failure of the execve that would have made the
// process: `exec PATH: REASON`, as runc words it.
type execveError struct {
	path string
	err  error
}

func (e *execveError) Error() string { return "exec " + e.path + ": " + e.err.Error() }
func (e *execveError) Unwrap() error { return e.err }

// prepareExec checks the process's arguments and capabilities, moves to
// its cwd, finds its program and sets its umask.
func prepareExec(p *specs.Process) (string, processCaps, error) {
	if len(p.Args) == 0 {
		return "", processCaps{}, errors.New("args must not be empty")
	}
	caps := parseProcessCaps(p.Capabilities)
	// Chdir first so that relative PATH entries and "./prog" resolve
	// against the cwd the process will run in.
	if err := os.Chdir(p.Cwd); err != nil {
		return "", processCaps{}, err
	}
	path, err := lookPath(p.Args[0], filepath.SplitList(envPath(p.Env)), "")
	if err != nil {
		return "", processCaps{}, err
	}
	umask := defaultUmask
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	return path, caps, nil
}

// takeIdentity gives the thread the process's LSM labels, user,
// capabilities, no_new_privs and seccomp filter, each at the point where
// what comes before and after allows it.
func takeIdentity(p *specs.Process, caps processCaps, filter *seccomp.Program, handoff seccomp.Handoff) error {
	lastCap, err := kernelLastCap()
	if err != nil {
		return err
	}
	// The LSM labels take effect at the execve. They are written
	// while init is still root and unfiltered, as runc does.
	if err := defaultLSMHost().setExecLabels(p); err != nil {
		return err
	}
	// Without no_new_privs, loading a seccomp filter needs CAP_SYS_ADMIN,
	// which the switch below may drop: load it while we still have it.
	if !p.NoNewPrivileges {
		if err := filter.Install(handoff); err != nil {
			return err
		}
	}
	// Shrinking the bounding set needs CAP_SETPCAP in the effective set,
	// which a switch away from uid 0 clears.
	if err := dropBoundingSet(caps.bounding); err != nil {
		return err
	}
	if err := switchUser(p.User); err != nil {
		return err
	}
	if err := applyCaps(caps, lastCap); err != nil {
		return err
	}
	return lockPrivileges(p.NoNewPrivileges, filter, handoff)
}

// lockPrivileges ends the keeping of capabilities across the user switch
// and, with no_new_privs, sets it and loads the filter, as late as
// possible so that it sees only the user's program and not our set-up.
func lockPrivileges(noNewPrivs bool, filter *seccomp.Program, handoff seccomp.Handoff) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_KEEPCAPS 0", err)
	}
	if !noNewPrivs {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
	}
	return filter.Install(handoff)
}

// switchUser sets the thread's groups and ids. PR_SET_KEEPCAPS keeps the
// permitted set across the switch from uid 0 so that applyCaps can still
// grant the configured capabilities afterwards.
func switchUser(u specs.User) error {
	if err := setgroups(u.AdditionalGids); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_KEEPCAPS 1", err)
	}
	gid, uid := uintptr(u.GID), uintptr(u.UID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	return nil
}

// setgroups replaces the thread's supplementary groups; an empty list
// clears the ones inherited from whoever started crier.
func setgroups(gids []uint32) error {
	var e unix.Errno
	if len(gids) == 0 {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
	} else {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(unsafe.Pointer(&gids[0])), 0)
	}
	if e == 0 {
		return nil
	}
	if e == unix.EPERM && setgroupsDenied() {
		// In a user namespace whose setgroups is "deny" the groups cannot
		// be cleared; that is only fatal when the config asked for some.
		if len(gids) == 0 {
			return nil
		}
		return fmt.Errorf("setgroups %v: %w (/proc/self/setgroups is \"deny\")", gids, e)
	}
	return fmt.Errorf("setgroups %v: %w", gids, e)
}

func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// envPath returns the PATH the process will see. The last entry wins, as
// later entries in a config override earlier ones.
func envPath(env []string) string {
	path, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path, found = v, true
		}
	}
	if !found {
		return defaultPath
	}
	return path
}

// lookPath finds file in dirs the way execvp does, and checks a name with
// a slash as Go's exec.LookPath does in runc, with runc's words for what
// is wrong. It runs after pivot_root, so dirs are plain paths inside the
// container's root. An empty entry means the current directory, as POSIX
// specifies. Relative names are looked up from cwd, or from the current
// directory when cwd is "".
func lookPath(file string, dirs []string, cwd string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file, cwd); err != nil {
			return "", fmt.Errorf("exec: %q: %w", file, err)
		}
		return file, nil
	}
	if file != "" {
		for _, dir := range dirs {
			if dir == "" {
				dir = "."
			}
			path := strings.TrimRight(dir, "/") + "/" + file
			if isExecutable(fromCwd(path, cwd)) {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

// checkExecutable says why file cannot be run: it is missing, a
// directory, or has no execute bit.
func checkExecutable(file, cwd string) error {
	fi, err := os.Stat(fromCwd(file, cwd))
	if err != nil {
		return &os.PathError{Op: "stat", Path: file, Err: errors.Unwrap(err)}
	}
	if fi.IsDir() {
		return unix.EISDIR
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

func fromCwd(path, cwd string) string {
	if cwd == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(cwd, path)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// checkProgram finds the process's program before the container is
// reported created, as runc does: a missing program then fails create,
// where tools (docker, podman) look for it, rather than start. Init has
// not moved to the process's cwd yet, so relative names are looked up
// from it. execProcess looks again at start.
func checkProgram(p *specs.Process) error {
	_, err := lookPath(p.Args[0], filepath.SplitList(envPath(p.Env)), p.Cwd)
	return err
}
