package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// Config is what Serve needs to create and serve one container.
type Config struct {
	Root     string
	ID       string
	Bundle   string // absolute
	InitPath string // the binary whose "init" command is the init stage
	PidFile  string // absolute, or empty
	// ConsoleSocket receives the pty master when process.terminal is set.
	ConsoleSocket string
	// NoPivot: init enters the rootfs with MS_MOVE and chroot
	// (container.Config.NoPivot).
	NoPivot bool
	// Buffer says which event types the shim replays to new subscribers;
	// nil keeps every type.
	Buffer map[string]bool
	// Stdio and ExtraFiles go to the container process; Serve closes
	// them once the container has them.
	Stdio      [3]*os.File
	ExtraFiles []*os.File
	// Report receives one line of JSON: {"pid":N} once the container is
	// created, or {"error":"..."}. Serve closes it.
	Report io.WriteCloser
	Log    *log.Logger
	// LogPath is where Log writes, for the re-executed image.
	LogPath string
	// Debug adds debug messages to Log.
	Debug bool
	// StartAtOnce, when set, has the loop start the container as soon as
	// it is created, as a start request would, and send that request's
	// reply here (the channel needs room for it): a run whose fork runs
	// it alone (cmd/runtime/run_alone.go) saves a client's round trip.
	StartAtOnce chan protocol.Reply
	// DeleteWhenStopped, when set, has the loop delete the container as
	// soon as it has stopped (the stopped event published), as a delete
	// request would, and send that request's reply here (the channel
	// needs room for it): a foreground run whose fork runs it alone saves
	// its driver the dial and the round trip. The reply carries the
	// init's exit status (ExitStatus), when known. When another delete
	// comes first, the loop makes none, and sends the same reply once
	// that one is done.
	DeleteWhenStopped chan protocol.Reply
	// Reexec makes Serve re-execute the shim once the container is
	// created and the shim idle (idle.go), into ReexecPath's serve mode
	// (default: this executable, /proc/self/exe).
	Reexec     bool
	ReexecPath string
	// HealPath, when set, is the CLI binary, which the serving image
	// brings back into the page cache in 2 MB folios if the kernel
	// dropped it and read it back in 4 kB pages (internal/pagecache):
	// the create image that execs the serving one was its last user.
	// HealSelf names the create image's own binary, looked up only when
	// the re-exec comes, off create's path.
	HealPath string
	// Supervised: a supervisor that reaps parents the container
	// (container.Config.Supervised); the shim watches its pidfd.
	Supervised bool
	// InitExe, when the caller started it, is the sealed copy of
	// InitPath being made (container.SealExeAhead), which Serve takes
	// over; else Serve starts it first thing.
	InitExe *container.ExeAhead
	// Speculative, when the caller has one, is an init started before
	// the config was read: create adopts it if the container fits it,
	// else kills it (container.Speculative).
	Speculative *container.Speculative
	// Untune, when set, runs before the shim starts anything that may
	// outlive create: before create forks an init itself
	// (container.Config.Untune), and once the container is created,
	// once create has reported. The forked create undoes there what it
	// tuned for create alone (prefork.RestoreTimerSlack).
	Untune func()
}

// HealSelf is Config.HealPath for the create image's own binary.
const HealSelf = "/proc/self/exe"

// Report is the line Serve writes to Config.Report.
type Report struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Shim is the shim's pid, which is not the one its starter forked
	// when the shim detached itself (crier-shim --detach).
	Shim int `json:"shim,omitempty"`
	// Seal, with --debug, is how init's binary was sealed
	// (container.Container.ExeSeal), for create's debug lines.
	Seal string `json:"seal,omitempty"`
	// Ahead, with --debug: init was started before the config was read,
	// and adopted (container.Speculative).
	Ahead bool `json:"ahead,omitempty"`
}

// Serve creates the container and serves it until it is deleted. It
// returns when the container is gone, with an error only when creating it
// failed (that error has also been reported).
func Serve(cfg Config) error { return serve(&cfg, containerOps) }

// serve is Serve with the loop's ops made by newOps (the unit tests give
// their own).
//
// It runs the shim, create included, on a goroutine of its own, and keeps
// the calling one for what must run on its thread: the create image's
// main goroutine is locked to the main thread, from which the re-exec
// must come (cmd/shim), and runs the exec when the loop asks (reexecNow).
// A locked goroutine crosses threads at every wait: each time it blocks,
// its thread must hand the one P to another, and when it is readied the
// thread running must hand the P back and wake the locked one. Through a
// create the main goroutine blocked three times, and a goroutine ending
// handed the P back twice (futex traces, about 14 wake and wait calls a
// create); the loop met the same at every wake-up (the init's pidfd, a
// connection), four hand-offs between an exit's pidfd and the
// subscriber's line. Unlocked, the shim runs where it was woken.
func serve(cfg *Config, newOps func(*server) ops) error {
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	onMain := make(chan func())
	done := make(chan error, 1)
	go func() { done <- serveBesideMain(cfg, newOps, onMain) }()
	for {
		select {
		case fn := <-onMain:
			fn()
		case err := <-done:
			return err
		}
	}
}

// serveBesideMain creates the container and serves it; onMain runs a
// function on the main goroutine (serve).
func serveBesideMain(cfg *Config, newOps func(*server) ops, onMain chan func()) error {
	s, ccfg, err := newServer(cfg, newOps)
	if err != nil {
		cfg.closeStdio()
		report(cfg.Report, Report{Error: err.Error()})
		return err
	}
	s.onMain = onMain
	if err := s.create(ccfg); err != nil {
		return err
	}
	// Once idle, not at once: a start or a state that comes right after
	// create would otherwise wait for the new image (idle.go).
	s.reexec = cfg.Reexec
	return s.loop()
}

// create makes the container cfg says (newServer). Connections wait in
// the listen backlog meanwhile: there is nothing to tell them before
// created.
func (s *server) create(cfg *container.Config) error {
	c, err := s.ops.create(cfg)
	// The container has its copies of stdio; the shim must not keep
	// create's, or `out=$(crier create ...)` would never see EOF.
	s.cfg.closeStdio()
	s.ops.detachStdio()
	if err == nil {
		if err = writePidFile(s.cfg.PidFile, c.Pid); err != nil {
			c.Abort()
		}
	}
	if err != nil {
		refusal := fmt.Errorf("create failed: %w", err)
		s.refuseWaiting(refusal)
		s.ln.Close()
		s.dir.Remove()
		s.deliverRefusal(refusal)
		report(s.cfg.Report, Report{Error: err.Error()})
		return err
	}
	s.c = c
	s.spec = c.Spec // the full config, where s.spec was its early part
	s.noteLabels()
	// A supervisor is a subreaper already, and the container's orphans
	// are its to collect, as with runc.
	s.rec.Supervised = s.cfg.Supervised
	s.rec.Subreaper = !s.rec.Supervised && !container.HasNamespace(s.spec, specs.PIDNamespace)
	s.rec.SharedPidNS = !container.OwnPidNamespace(s.spec)
	if s.rec.Subreaper {
		// Without a pid namespace the container's orphans would go to
		// the host's init; keep them so their exits are collected here.
		s.ops.becomeSubreaper()
	}
	s.rec.PidStart, _ = container.StartTime(c.Pid)
	s.step(inCreated, nil)
	rep := Report{Pid: c.Pid}
	if s.cfg.Debug {
		rep.Seal, rep.Ahead = c.ExeSeal, c.Speculated()
	}
	report(s.cfg.Report, rep)
	// The init's namespaces are held from here until the stopped event
	// is out (releaseNamespaces), so that their teardown is not on the
	// exit's way; after the report, which create returns on. Not for a
	// container deleted as it stops (a foreground run): their teardown
	// is on its way either way.
	if s.cfg.DeleteWhenStopped == nil {
		c.HoldNamespaces()
	}
	// After the report, which `crier create` returns on: nothing is
	// started before the loop runs.
	if s.cfg.Untune != nil {
		s.cfg.Untune()
	}
	return nil
}

func (cfg *Config) closeStdio() {
	for _, f := range cfg.Stdio {
		if f != nil {
			f.Close()
		}
	}
	for _, f := range cfg.ExtraFiles {
		f.Close()
	}
}

func report(w io.WriteCloser, r Report) {
	if w == nil {
		return
	}
	r.Shim = os.Getpid()
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
	w.Close()
}

// newServer forks the container's init where that may come first
// (container.ForkAhead) and claims the container ID: it builds the state
// directory under a temporary name, with the socket listening and the
// state file written, and renames it into place only if no container has
// the ID. A watcher on the root therefore never sees a directory without
// its socket. It returns the server and what create is to make.
//
// The config is still being decoded when newServer returns (create waits
// for it): forking init and the state file need only its early part.
// Init is forked before the ID is claimed, so that its Go runtime starts
// meanwhile; it does nothing before it has its config, and is killed if
// the claim fails. The ID is claimed before any cgroup is made, as two
// creates of one ID would otherwise share (and the loser destroy) the
// winner's cgroup. A config that turns out bad still fails with its own
// error, and leaves nothing behind.
func newServer(cfg *Config, newOps func(*server) ops) (*server, *container.Config, error) {
	exe := cfg.InitExe
	cfg.InitExe = nil
	if exe == nil && cfg.Speculative == nil {
		exe = container.SealExeAhead(cfg.InitPath)
	}
	// Adopted or killed by forkAhead; killed on any error before it.
	defer cfg.Speculative.Discard()
	root, err := statedir.CreateRoot(cfg.Root)
	if err != nil {
		exe.Drop()
		return nil, nil, err
	}
	// The root's descriptor is only for claiming the ID; the serving
	// image opens the directory again by name (statedir.At), checked.
	defer root.Close()
	if root.Exists(cfg.ID) {
		exe.Drop()
		return nil, nil, fmt.Errorf("container %q %w", cfg.ID, protocol.ErrExist)
	}
	load, err := container.StartLoadSpec(cfg.Bundle, cfg.Speculative)
	if err != nil {
		exe.Drop()
		return nil, nil, err
	}
	if exe != nil {
		load.UseExe(exe)
	}
	spec := load.Early
	if spec == nil {
		// Only the full decode can say what is wrong.
		if spec, err = load.Wait(); err != nil {
			return nil, nil, err
		}
	}
	s := &server{
		cfg: cfg, log: cfg.Log, spec: spec, phase: phaseCreating,
		rec: record{Root: cfg.Root, ID: cfg.ID, Bundle: cfg.Bundle, LogPath: cfg.LogPath, Buffer: cfg.Buffer},
	}
	s.ops = newOps(s)
	ccfg := s.containerConfig(load)
	forked, err := s.ops.forkAhead(ccfg)
	if err == nil {
		ccfg.Forked = forked
		if err = s.claim(root, load); err != nil {
			forked.Abort()
		}
	}
	if err != nil {
		// A bad config's error is the one to give, as when the config
		// was loaded before anything else.
		load.Release()
		if _, lerr := load.Wait(); lerr != nil {
			return nil, nil, lerr
		}
		return nil, nil, err
	}
	return s, ccfg, nil
}

// containerConfig is what create makes, from the config being decoded.
func (s *server) containerConfig(load *container.SpecLoad) *container.Config {
	return &container.Config{
		ID:            s.cfg.ID,
		Bundle:        s.cfg.Bundle,
		Spec:          s.spec,
		SpecJSON:      load.JSON,
		Load:          load,
		InitPath:      s.cfg.InitPath,
		Stdio:         s.cfg.Stdio,
		ExtraFiles:    s.cfg.ExtraFiles,
		ConsoleSocket: s.cfg.ConsoleSocket,
		NoPivot:       s.cfg.NoPivot,
		StartAtOnce:   s.cfg.StartAtOnce != nil && s.cfg.PidFile == "",
		Supervised:    s.cfg.Supervised,
		Speculative:   s.cfg.Speculative,
		Untune:        s.cfg.Untune,
	}
}

// claim makes the container's state directory in root under a temporary
// name and publishes it under the ID (newServer). On error it leaves
// nothing behind.
func (s *server) claim(root *statedir.Root, load *container.SpecLoad) error {
	// The temporary directory's name holds our start time: if we are
	// killed before we publish it, a later delete can tell that its maker
	// is gone (statedir.Root.SweepAbandoned).
	shimStart, err := container.StartTime(os.Getpid())
	if err != nil {
		return err
	}
	s.rec.ShimStart = shimStart
	dir, err := root.NewTemp(shimStart)
	if err != nil {
		return err
	}
	s.dir = dir
	if err := s.prepare(); err != nil {
		dir.Remove()
		return err
	}
	// What exec takes from the config is the container's, not what
	// the bundle says later (statedir.ConfigFile).
	err = dir.WriteConfig(load.JSON)
	if err == nil {
		err = dir.Publish(s.cfg.ID)
	}
	if err != nil {
		s.ln.Close()
		dir.Remove()
		return err
	}
	// From here on the directory is reached through its root by name.
	dir.Close()
	s.dir = statedir.At(s.cfg.Root, s.cfg.ID)
	return nil
}

func (s *server) prepare() error {
	sock, err := s.dir.SocketPath()
	if err != nil {
		return err
	}
	ln, err := protocol.Listen(sock)
	if err != nil {
		return err
	}
	s.ln = ln
	s.rec.CreatedAt = time.Now()
	s.rec.Owner = strconv.Itoa(os.Getuid())
	if u, err := user.LookupId(s.rec.Owner); err == nil {
		s.rec.Owner = u.Username
	}
	if err := s.dir.WriteState(s.state()); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// noteLabels says at debug level what became of the config's LSM labels:
// applied where the LSM is active, ignored where it is off. A label for an
// LSM the host does not run means nothing here, and failing the container
// over it (as runc does) helps nobody.
func (s *server) noteLabels() {
	if !s.cfg.Debug {
		return
	}
	on := container.EnabledLSMs()
	note := func(field, label, lsm string, enabled bool) {
		switch {
		case label == "":
		case enabled:
			s.log.Printf("debug: %s %q applied (%s is enabled)", field, label, lsm)
		default:
			s.log.Printf("debug: %s %q ignored (%s is not enabled on this host)", field, label, lsm)
		}
	}
	if p := s.spec.Process; p != nil {
		note("apparmorProfile", p.ApparmorProfile, "apparmor", on.AppArmor)
		note("selinuxLabel", p.SelinuxLabel, "selinux", on.SELinux)
	}
	if l := s.spec.Linux; l != nil {
		note("mountLabel", l.MountLabel, "selinux", on.SELinux)
	}
}

// refuseWaiting answers the clients that connected while the container was
// being created, and so wait in the listen backlog, with why it failed:
// a `crier event` waiting for created must not take the vanished state
// directory for one still to come.
func (s *server) refuseWaiting(err error) {
	line, _ := protocol.Marshal(protocol.ErrorReply(err))
	// A deadline already past would skip even the pending ones.
	s.ln.SetDeadline(time.Now().Add(10 * time.Millisecond))
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		// Read the request first: closing with it unread would reset
		// the connection before the client reads the answer.
		conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
		protocol.NewDecoder(conn).Line()
		conn.Write(line)
		conn.Close()
	}
}

// writePidFile writes the pid with no trailing newline, atomically, so a
// reader never sees an empty file. The pid file's directory may be one
// another user can write (a home directory, /tmp): the file is written
// under an unpredictable temporary name created with O_EXCL|O_NOFOLLOW and
// renamed over the pid file, so no link planted there is ever followed,
// and a link at the pid file's own name is replaced, as runc's rename
// replaces it too.
func writePidFile(path string, pid int) error {
	if path == "" {
		return nil
	}
	if err := statedir.WriteFile(path, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// accept hands every permitted connection to its own reader goroutine, as
// long as fewer than maxConns are being served (limits.go). A failed accept
// (out of descriptors) is retried with back-off, logged once per episode,
// while the loop goes on serving the container and its subscribers.
func (s *server) accept() {
	var backoff acceptBackoff
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && s.parking.Load() {
				s.park()
				continue
			}
			backoff.failed(s.log, err)
			continue
		}
		backoff.succeeded(s.log)
		if err := checkPeer(conn); err != nil {
			line, _ := protocol.Marshal(protocol.ErrorReply(err))
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write(line)
			conn.Close()
			continue
		}
		release, ok := s.takeSlot()
		if !ok {
			s.slots.refuse(conn)
			continue
		}
		go s.serveConn(conn, release, nil)
	}
}

// takeSlot reserves a connection slot (limits.go) and counts the
// connection among those served until release.
func (s *server) takeSlot() (release func(), ok bool) {
	free, ok := s.slots.take()
	if !ok {
		return nil, false
	}
	s.conns.Add(1)
	return func() { s.conns.Add(-1); free() }, true
}

// checkPeer admits root and the user the shim runs as (the one who created
// the container); the socket's 0600 mode says the same, this makes sure.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return protocol.Errorf(protocol.ErrPermission, "uid %d may not use this container", cred.Uid)
	}
	return nil
}

// SupervisedBy is the supervisor-mode rule (docs/supervisors.md): mode is
// on, off or auto; in auto a supervisor is there when the shim, an orphan
// since birth (detached), was reparented to the parent of the process
// that ran create (callerParent). Init adopts every orphan whether or not
// it waits for them, so a caller that is its pid namespace's init is not
// taken for one (`--supervisor on` is).
func SupervisedBy(mode string, detached bool, ppid, callerParent int) bool {
	if mode == "on" {
		return true
	}
	return mode == "auto" && detached && callerParent > 1 && ppid == callerParent
}
