package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/shim"
)

// Helpers of security_audit_test.go.

// ---------------------------------------------------------------------------
// What a container and its hooks were given.

// auditHookKinds lists every kind of hook, in the order they run.
func auditHookKinds() []string {
	return []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
}

// auditHookEnv is the env a probe hook of kind declares: some declare a
// variable, some nothing, which must then mean an empty environment.
func auditHookEnv(kind string) []string {
	if kind == "createContainer" || kind == "poststart" {
		return nil
	}
	return []string{"AUDIT_HOOK=" + kind}
}

// The probe hooks are cat of a FIFO: exec'd by crier directly, with no
// shell to add descriptors or variables of its own, and held open until
// the test, the FIFO's writer, has read their descriptors and environment
// from /proc. The FIFO is then the one descriptor a hook has beyond stdio.

// probeHook is the hook of kind that waits on dir/name.
func probeHook(kind, dir, name string) specs.Hook {
	timeout := 20
	return specs.Hook{Path: "/bin/cat", Args: []string{"cat", filepath.Join(dir, name)}, Env: auditHookEnv(kind), Timeout: &timeout}
}

// probed is what leakProbe saw: descriptors (number -> readlink) and
// the initial environment (NUL-separated), of the container's process and
// of each kind of hook.
type probed struct {
	process    map[string]string
	processEnv string
	hookFDs    map[string]map[string]string
	hookEnv    map[string]string
}

// leakProbe runs a container (sleep) with a probe hook of every kind,
// every CLI run changed by setup, create given flags, and returns what the
// process and the hooks were given. edit, when not nil, sees the config.
func (e *env) leakProbe(setup func(*exec.Cmd), flags []string, edit func(*specs.Spec)) probed {
	t := e.t
	t.Helper()
	id := e.id()
	hd := e.hostDir("probe")
	fifo := func(kind string) string { return id + "-" + kind + ".fifo" }
	for _, kind := range auditHookKinds() {
		if err := unix.Mkfifo(filepath.Join(hd, fifo(kind)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := e.bundle([]string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/hooks", Type: "bind", Source: hd, Options: []string{"rbind", "rw"}})
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{probeHook("prestart", hd, fifo("prestart"))}, //nolint:staticcheck // still part of the spec
			CreateRuntime:   []specs.Hook{probeHook("createRuntime", hd, fifo("createRuntime"))},
			CreateContainer: []specs.Hook{probeHook("createContainer", hd, fifo("createContainer"))},
			StartContainer:  []specs.Hook{probeHook("startContainer", "/hooks", fifo("startContainer"))},
			Poststart:       []specs.Hook{probeHook("poststart", hd, fifo("poststart"))},
			Poststop:        []specs.Hook{probeHook("poststop", hd, fifo("poststop"))},
		}
		if edit != nil {
			edit(s)
		}
	})
	got := probed{hookFDs: map[string]map[string]string{}, hookEnv: map[string]string{}}
	hooks := func(p *cliProc, kinds ...string) {
		t.Helper()
		for _, kind := range kinds {
			got.hookFDs[kind], got.hookEnv[kind] = e.holdHook(filepath.Join(hd, fifo(kind)))
		}
		p.waitOK()
	}
	hooks(e.cliStart(setup, append(append([]string{"create", "--bundle", b}, flags...), id)...),
		"prestart", "createRuntime", "createContainer")
	sub := e.subscribe(id, true)
	hooks(e.cliStart(setup, "start", id), "startContainer", "poststart")
	pid := e.shimState(id).Pid
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); string(cmdline) != "sleep\x001000\x00" {
		t.Errorf("pid %d runs %q after start, want the container's sleep", pid, cmdline)
	} else {
		got.process, got.processEnv = fdsOf(t, pid), environOf(t, pid)
	}
	e.cliStart(setup, "kill", id, "KILL").waitOK()
	next(t, sub, protocol.EventStopped)
	hooks(e.cliStart(setup, "delete", id), "poststop")
	t.Logf("the container's descriptors: %v; the hooks': %v", got.process, got.hookFDs)
	return got
}

// holdHook waits for the probe hook to open fifo, reads its descriptors
// and environment, and lets it finish. The FIFO's own descriptor is left
// out of what it returns.
func (e *env) holdHook(fifo string) (map[string]string, string) {
	t := e.t
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the hook reads
		opened <- f
	}()
	var w *os.File
	select {
	case w = <-opened:
	case <-time.After(hangDeadline):
		// Open the reading end ourselves to free the goroutine.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		if f := <-opened; f != nil {
			f.Close()
		}
		t.Fatalf("no hook opened %s", fifo)
	}
	defer w.Close()
	pid := hookPid(t, filepath.Base(fifo))
	fds := fdsOf(t, pid)
	for fd, target := range fds {
		if filepath.Base(target) == filepath.Base(fifo) {
			delete(fds, fd)
		}
	}
	return fds, environOf(t, pid)
}

// hookPid finds the probe hook (cat of the FIFO named name) among the
// processes.
func hookPid(t *testing.T, name string) int {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(readProc(pid, "cmdline"), "\x00"), "\x00")
		if len(args) == 2 && args[0] == "cat" && filepath.Base(args[1]) == name {
			return pid
		}
	}
	t.Fatalf("no process is the hook of %s", name)
	return 0
}

func readProc(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	return string(b)
}

// environOf returns pid's initial environment as the kernel keeps it.
func environOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fdsOf returns the open descriptors of pid and what they point at.
func fdsOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, ent := range ents {
		fds[ent.Name()], _ = os.Readlink(filepath.Join(dir, ent.Name()))
	}
	return fds
}

// ---------------------------------------------------------------------------
// Tiny static binaries that call mkdir under a chosen ABI. There is no
// 32-bit or x32 toolchain to rely on, and the calls are a few instructions:
// each binary is an x86_64 ELF header, one program header, the code and the
// path. It exits with -(mkdir's return value): 0 is success, 1 EPERM.
// The i386 call is int $0x80 from 64-bit code: the kernel takes it as the
// i386 ABI (AUDIT_ARCH_I386, i386 numbers), the classic way around a
// filter that checks only x86_64 numbers, and needs no 32-bit binary.

// writeMkdirBinaries puts /native-mkdir, /i386-mkdir and /x32-mkdir in
// rootfs; each makes /tmp/<its ABI>.
func writeMkdirBinaries(t *testing.T, rootfs string) {
	t.Helper()
	bins := map[string][]byte{
		"native-mkdir": elfMkdir(unix.SYS_MKDIR, false, "/tmp/native"),
		"x32-mkdir":    elfMkdir(0x40000000|unix.SYS_MKDIR, false, "/tmp/x32"), // __X32_SYSCALL_BIT
		"i386-mkdir":   elfMkdir(39, true, "/tmp/i386"),                        // mkdir in syscall_32.tbl
	}
	for name, b := range bins {
		if err := os.WriteFile(filepath.Join(rootfs, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// elfMkdir is a static x86_64 program: system call nr with (path, 0755),
// through int $0x80 when int80 is set, else through syscall; then
// exit(-result).
func elfMkdir(nr uint32, int80 bool, path string) []byte {
	const base, headers = 0x400000, 64 + 56
	code := func(pathAddr uint32) []byte {
		c := le32([]byte{0xb8}, nr) // mov eax, nr
		if int80 {
			c = le32(append(c, 0xbb), pathAddr) // mov ebx, path
			c = le32(append(c, 0xb9), 0o755)    // mov ecx, 0755
			c = append(c, 0xcd, 0x80)           // int 0x80
		} else {
			c = le32(append(c, 0xbf), pathAddr) // mov edi, path
			c = le32(append(c, 0xbe), 0o755)    // mov esi, 0755
			c = append(c, 0x0f, 0x05)           // syscall
		}
		c = append(c, 0xf7, 0xd8, 0x89, 0xc7) // neg eax; mov edi, eax
		c = le32(append(c, 0xb8), 60)         // mov eax, __NR_exit
		return append(c, 0x0f, 0x05)          // syscall
	}
	body := code(uint32(base + headers + len(code(0))))
	body = append(append(body, path...), 0)
	size := uint64(headers + len(body))
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, struct {
		Ident                                      [16]byte
		Type, Machine                              uint16
		Version                                    uint32
		Entry, Phoff, Shoff                        uint64
		Flags                                      uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum uint16
		Shstrndx                                   uint16
	}{Ident: [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}, Type: 2, Machine: 62, Version: 1, Entry: base + headers,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1})
	binary.Write(&b, binary.LittleEndian, struct {
		Type, Flags                                uint32
		Offset, Vaddr, Paddr, Filesz, Memsz, Align uint64
	}{1, 5, 0, base, base, size, size, 0x1000}) // PT_LOAD, R+X
	b.Write(body)
	return b.Bytes()
}

// ---------------------------------------------------------------------------
// pid reuse, for real, in a pid namespace the test owns.
//
// On the host the test cannot make a given pid come back: other processes
// take pids all the time, and a dead container whose shim is gone is
// reparented to pid 1, which on some machines never reaps it. So the test
// binary re-runs itself as pid 1 of a new pid and mount namespace with its
// own /proc. There it runs the CLI, kills the shim and the container's
// process and reaps both (orphans come to it), then sets ns_last_pid so that
// the next process it starts, an unrelated sleep, gets the container's old
// pid. Nothing else allocates pids in that namespace but the child's own
// threads, so a few tries suffice. When the child exits, the kernel kills
// whatever is left in its namespace.

// pidReuseEnv, when set, makes the test binary that child (see init).
const pidReuseEnv = "CRIER_TEST_AUDIT_PID_REUSE"

func init() {
	if in := os.Getenv(pidReuseEnv); in != "" {
		os.Exit(pidReuseChild(in))
	}
}

type pidReuseInput struct {
	Crier, Root, Bundle, ID, Dir string
}

type cmdResult struct {
	Code           int
	Stdout, Stderr string
}

type pidReuseResult struct {
	Error                 string
	OldPid, ReusedPid     int
	OldStart, ReusedStart uint64
	Attempts              int
	Kill, KillAll, Delete cmdResult
	SignaledBy            string // how the unrelated process ended, if it did
	AliveAfter            bool
}

// runPidReuse runs the child for container id from bundle b.
func runPidReuse(t *testing.T, e *env, id, b string) pidReuseResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(pidReuseInput{Crier: suite.crier, Root: e.root, Bundle: b, ID: id, Dir: e.dir})
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), pidReuseEnv+"="+string(in))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pid reuse child: %v\nstdout: %s\nstderr: %s", err, out, stderr.Bytes())
	}
	var res pidReuseResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pid reuse child printed %q: %v", out, err)
	}
	return res
}

func pidReuseChild(input string) int {
	var in pidReuseInput
	res := pidReuseResult{}
	err := json.Unmarshal([]byte(input), &in)
	if err == nil {
		err = pidReuse(&in, &res)
	}
	if err != nil {
		res.Error = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// pidReuse is the child's work; see the comment above pidReuseEnv.
func pidReuse(in *pidReuseInput, res *pidReuseResult) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("pid %d, want 1 in a new pid namespace", os.Getpid())
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	crier := func(args ...string) cmdResult { return runCLIIn(in, args...) }
	for _, args := range [][]string{{"create", "--bundle", in.Bundle, in.ID}, {"start", in.ID}} {
		if r := crier(args...); r.Code != 0 {
			return fmt.Errorf("%s: exit %d: %s", args[0], r.Code, r.Stderr)
		}
	}
	st, err := shim.ReadState(shim.Dir(in.Root, in.ID))
	if err != nil {
		return err
	}
	res.OldPid, res.OldStart = st.Pid, st.PidStart
	// The shim first, so that the container's process is orphaned to us.
	for _, pid := range []int{st.ShimPid, st.Pid} {
		if err := killAndReap(pid); err != nil {
			return err
		}
	}
	sleep, err := spawnWithPid(st.Pid, st.PidStart, res)
	if err != nil {
		return err
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
	}()
	res.Kill = crier("kill", in.ID, "KILL")
	res.KillAll = crier("kill", "--all", in.ID, "KILL")
	res.Delete = crier("delete", "--force", in.ID)
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(sleep.Process.Pid, &ws, unix.WNOHANG, nil); err != nil {
		return fmt.Errorf("wait4 %d: %w", sleep.Process.Pid, err)
	} else if pid != 0 {
		res.SignaledBy = fmt.Sprintf("wait status %#x (signal %v)", uint32(ws), ws.Signal())
		return nil
	}
	res.AliveAfter = processAlive(sleep.Process.Pid)
	return nil
}

// killAndReap SIGKILLs pid, a child of ours, and reaps it.
func killAndReap(pid int) error {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return fmt.Errorf("reap %d: %w", pid, err)
	}
	return nil
}

// spawnWithPid starts an unrelated sleep with pid, and a start time other
// than oldStart (start times count clock ticks: a reuse within the same
// tick would look like the same process to any start-time check).
func spawnWithPid(pid int, oldStart uint64, res *pidReuseResult) (*exec.Cmd, error) {
	for res.Attempts < 500 {
		res.Attempts++
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return nil, err
		}
		cmd := exec.Command("/bin/sleep", "1000")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		res.ReusedPid = cmd.Process.Pid
		if start, err := container.StartTime(cmd.Process.Pid); err == nil && cmd.Process.Pid == pid && start != oldStart {
			res.ReusedStart = start
			return cmd, nil
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	return nil, errors.New("could not give an unrelated process the container's old pid")
}

// runCLIIn runs the CLI with in's root; its output and the container's
// stdio go to files, which a container cannot hold open against us.
func runCLIIn(in *pidReuseInput, args ...string) cmdResult {
	out, err := os.CreateTemp(in.Dir, "reuse-out-")
	if err != nil {
		return cmdResult{Code: -1, Stderr: err.Error()}
	}
	defer os.Remove(out.Name())
	defer out.Close()
	errf, err := os.CreateTemp(in.Dir, "reuse-err-")
	if err != nil {
		return cmdResult{Code: -1, Stderr: err.Error()}
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	cmd := exec.Command(in.Crier, append([]string{"--root", in.Root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	r := cmdResult{Code: exitCode(cmd.Run())}
	b, _ := os.ReadFile(out.Name())
	r.Stdout = string(b)
	b, _ = os.ReadFile(errf.Name())
	r.Stderr = string(b)
	return r
}
