package test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
)

// The host's crier-shim must be out of the container's reach (the class of
// CVE-2019-5736): the init stage runs from a sealed copy, and is
// non-dumpable until it execs the user's process.

// hostShim is the crier-shim binary under test, as the host has it.
type hostShim struct {
	path   string
	devIno string // "dev:ino", as busybox's stat -c %d:%i prints it
	sum    [32]byte
}

func readHostShim(t *testing.T) hostShim {
	t.Helper()
	h := hostShim{path: filepath.Join(filepath.Dir(suite.crier), "crier-shim")}
	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	h.sum = sha256.Sum256(b)
	var st unix.Stat_t
	if err := unix.Stat(h.path, &st); err != nil {
		t.Fatalf("stat %s: %v", h.path, err)
	}
	h.devIno = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	return h
}

// wantUnchanged checks that the host's binary still has its bytes.
func (h hostShim) wantUnchanged(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(b) != h.sum {
		t.Errorf("%s was modified by the container", h.path)
	}
}

// exeDevIno returns "dev:ino" of what /proc/PID/exe reaches.
func exeDevIno(t *testing.T, pid int) string {
	t.Helper()
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/exe", pid)
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// joinedUserNS makes the config join the user namespace of the process
// holder, which gives it a two-stage init (container/nsenter_linux.go).
func joinedUserNS(t *testing.T, b string, holder int) {
	editBundle(t, b, func(s *specs.Spec) {
		sfJoin(s, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", holder))
	})
	chownRootfs(t, b)
}

var devInoRE = regexp.MustCompile(`^[0-9]+:[0-9]+$`)

// evilScript is an entrypoint that has the kernel run init's own
// executable as the container's process: the interpreter is resolved while
// the exec'ing process is still init.
const evilScript = "#!/proc/self/exe init\n"

// TestSealedExeFromContainer performs CVE-2019-5736 on crier: container A's
// entrypoint is "#!/proc/self/exe init", and with the environment naming
// its stdin (a pipe nobody writes) as the sync socket, what runs stays
// blocked in "crier-shim init". Container B, in A's pid namespace and
// allowed to ptrace, opens /proc/1/exe to read it and to write it. What it
// reaches must not be the host's file, the write must be refused by the
// seal (not merely by "text file busy", which lasts only while something
// runs the file), and the host's binary must keep its bytes. The same with
// a two-stage init, whose stage two is exec'd by stage one.
func TestSealedExeFromContainer(t *testing.T) {
	t.Parallel()
	for _, joinUser := range []bool{false, true} {
		name := map[bool]string{false: "own namespaces", true: "joined user namespace"}[joinUser]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			host := readHostShim(t)
			a := e.bundle([]string{"/evil"}, func(s *specs.Spec) {
				s.Process.Env = append(s.Process.Env, container.InitFDEnv+"=0")
			})
			if err := os.WriteFile(filepath.Join(a, "rootfs", "evil"), []byte(evilScript), 0o755); err != nil {
				t.Fatal(err)
			}
			if joinUser {
				joinedUserNS(t, a, joinHolder(t, e))
			}
			pid := startBlockedEvil(t, e, a)
			kv := e.runScript(`exec 3</proc/1/exe && echo exe=$(stat -L -c %d:%i /proc/self/fd/3)
echo link=$(readlink /proc/1/exe)
err=$( (echo pwned >>/proc/1/exe) 2>&1 ) && echo write=ok || echo "write=refused: $err"`,
				func(s *specs.Spec) {
					sfJoin(s, specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", pid))
					addCapability(s, "CAP_SYS_PTRACE")
				})
			if !devInoRE.MatchString(kv["exe"]) {
				t.Fatalf("the second container did not reach /proc/1/exe: exe=%q", kv["exe"])
			}
			if kv["exe"] == host.devIno {
				t.Errorf("/proc/1/exe (-> %s) is the host's %s (dev:ino %s)", kv["link"], host.path, host.devIno)
			}
			if w := kv["write"]; !strings.HasPrefix(w, "refused") {
				t.Errorf("write to /proc/1/exe: %q, want it refused", w)
			} else if strings.Contains(strings.ToLower(w), "text file busy") {
				t.Errorf("write to /proc/1/exe %s: only the running process kept the file from being written", w)
			}
			host.wantUnchanged(t)
		})
	}
}

// startBlockedEvil creates and starts the container in bundle, whose
// process is "crier-shim init" reading its stdin: a socket (as its sync
// socket must be) that stays open and silent until the test ends. It
// returns the container's pid.
func startBlockedEvil(t *testing.T, e *env, bundle string) int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "evil-stdin"), os.NewFile(uintptr(fds[1]), "evil-peer")
	t.Cleanup(func() { w.Close() })
	defer r.Close()
	out, err := os.Create(filepath.Join(e.dir, "evil.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	id := e.id()
	e.cliStart(func(c *exec.Cmd) { c.Stdin, c.Stdout, c.Stderr = r, out, out },
		"create", "--bundle", bundle, id).waitOK()
	// start returns once execve has succeeded: the script's interpreter
	// is then what runs.
	e.cliOK("start", id)
	return e.state(id).Pid
}

func addCapability(s *specs.Spec, c string) {
	caps := s.Process.Capabilities
	caps.Bounding = append(caps.Bounding, c)
	caps.Effective = append(caps.Effective, c)
	caps.Permitted = append(caps.Permitted, c)
}

// withoutPtrace makes a command run with CAP_SYS_PTRACE out of its
// bounding set, so that as root it has every capability but that one.
func withoutPtrace(t *testing.T) func(*exec.Cmd) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	return func(c *exec.Cmd) {
		c.Args = append([]string{setpriv, "--bounding-set", "-sys_ptrace", c.Path}, c.Args[1:]...)
		c.Path = setpriv
	}
}

// TestSealedExeInitStage checks the init stage itself while it waits for
// start: /proc/PID/exe is not the host's crier-shim, with one stage and
// with two (stage two is exec'd from stage one's /proc/self/exe), and init
// is non-dumpable. The runtime and a probe both run without CAP_SYS_PTRACE
// and otherwise with every capability: the kernel then lets the probe,
// root too, read a dumpable init's /proc/PID/exe (its capabilities are a
// superset of init's) but not a non-dumpable one's. Once started, the
// user's process is dumpable again: the same probe reads it.
func TestSealedExeInitStage(t *testing.T) {
	t.Parallel()
	for _, joinUser := range []bool{false, true} {
		name := map[bool]string{false: "own namespaces", true: "joined user namespace"}[joinUser]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			host := readHostShim(t)
			b := e.bundle([]string{"sleep", "1000"}, nil)
			if joinUser {
				joinedUserNS(t, b, joinHolder(t, e))
			}
			id := e.id()
			noPtrace := withoutPtrace(t)
			out, err := os.Create(filepath.Join(e.dir, id+".out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			e.cliStart(func(c *exec.Cmd) { noPtrace(c); c.Stdout, c.Stderr = out, out },
				"create", "--bundle", b, id).waitOK()
			pid := e.state(id).Pid
			if got := exeDevIno(t, pid); got == host.devIno {
				t.Errorf("the init stage runs the host's %s (dev:ino %s)", host.path, got)
			}
			if !joinUser {
				// Root of the host's user namespace owns the joined
				// one: it may read that init whatever its dumpability.
				if probe := probeExe(t, noPtrace, pid); probe.err == nil {
					t.Errorf("a root process without CAP_SYS_PTRACE read the waiting init's /proc/%d/exe (-> %s): init is dumpable", pid, probe.out)
				}
			}
			e.cliOK("start", id)
			if probe := probeExe(t, noPtrace, pid); probe.err != nil {
				t.Errorf("the probe could not read the started process's /proc/%d/exe either: %v: %s", pid, probe.err, probe.out)
			}
			e.cliOK("delete", "--force", id)
		})
	}
}

type probeResult struct {
	out string
	err error
}

// probeExe reads /proc/PID/exe as root with every capability but
// CAP_SYS_PTRACE.
func probeExe(t *testing.T, noPtrace func(*exec.Cmd), pid int) probeResult {
	t.Helper()
	cmd := exec.Command("readlink", "-v", fmt.Sprintf("/proc/%d/exe", pid))
	noPtrace(cmd)
	out, err := cmd.CombinedOutput()
	return probeResult{strings.TrimSpace(string(out)), err}
}
