package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crier-runtime/crier/internal/clientsandbox"
	"github.com/crier-runtime/crier/internal/pidfd"
	"golang.org/x/sys/unix"
)

// The clients section: what a user of podman or containerd feels of the
// runtime. `podman run --rm` and `ctr run --rm` of /bin/true with crier
// and with runc, interleaved run by run, and the memory of the
// supervisors (conmon, containerd-shim-runc-v2) beside crier's shim with
// containers running under each. Each client runs in a sandbox of its own
// under the work directory, with an image made offline from the busybox
// rootfs (internal/clientsandbox, the same as test/clients).

// busyboxTarball is the rootfs tarball in the work directory (prepare).
const busyboxTarball = "busybox.tar.gz"

// A client is podman or containerd (through ctr) in its sandbox.
type client interface {
	name() string
	supervisor() string
	// run runs args in container id with runtime rt: attached and removed
	// at the end (--rm), or detached.
	run(s *scratch, rt *runtime, id string, detach bool, args ...string) result
	remove(s *scratch, rt *runtime, id string)
	// pids returns the supervisor of container id and, for crier, the path
	// of its state.json.
	pids(s *scratch, rt *runtime, id string) (supervisor int, crierState string, err error)
	stop()
}

// clients times the two clients' run of /bin/true with each runtime and
// measures their supervisors' memory.
func (b *B) clients(sec *section) {
	n, warm, k := *flagClientsN, 2, 5
	if b.quick {
		n, warm, k = min(n, 5), 1, 2
	}
	t0, load0 := time.Now(), loadavg()
	// Rootful podman gives the runtime no --root (crier and runc keep
	// their state in /run/crier and /run/runc) and containerd puts its
	// shims' sockets in /run/containerd: with a tmpfs on /run in this
	// private mount namespace, all of it is this run's alone, on a tmpfs as
	// on a real host, and goes with the namespace whatever happens.
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		b.rep.fail("clients: mount a tmpfs on /run: %v", err)
		return
	}
	defer unix.Unmount("/run", unix.MNT_DETACH)
	s := b.newScratch()
	defer s.close()

	var cls []client
	for _, start := range []func(*scratch) (client, error){b.startPodman, b.startCtr} {
		c, err := start(s)
		if err != nil {
			sec.para("%v: its rows are missing.", err)
			continue
		}
		defer c.stop()
		cls = append(cls, c)
	}
	if len(cls) == 0 {
		return
	}
	floor := b.timeClients(sec, cls, n, warm)
	b.supervisedMemory(sec, cls, k)
	sec.para("Measured %s; load average (1 min) %s at the start of this section, %s at its end; the section took %s. The exec floor of this machine, fork+exec+wait of /bin/true from Go's os/exec, interleaved with the runs: %s ms (median, p10–p90 in brackets).",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), load0, loadavg(), time.Since(t0).Round(time.Second), floor.cell())
}

// timeClients runs /bin/true with each client and runtime n times after
// warm rounds, rotating the order each round, and tables the wall times.
// It returns the exec floor, measured in the same rounds.
func (b *B) timeClients(sec *section, cls []client, n, warm int) dist {
	type pair struct {
		c      client
		rt     *runtime
		ms     []float64
		failed int
	}
	var pairs []*pair
	for _, c := range cls {
		for _, rt := range []*runtime{b.crier, b.runc} {
			pairs = append(pairs, &pair{c: c, rt: rt})
		}
	}
	s := b.newScratch()
	defer s.close()
	var floor []float64
	for it := -warm; it < n && !b.stopping.Load(); it++ {
		if r := b.exec(s, []string{"/bin/true"}, nil, 10*time.Second); r.err == nil && it >= 0 {
			floor = append(floor, r.ms())
		}
		for j := range pairs {
			p := pairs[(it+warm+j)%len(pairs)]
			if p.failed >= 3 {
				continue
			}
			id := b.newID("e" + p.c.name()[:1])
			r := p.c.run(s, p.rt, id, false, "/bin/true")
			if r.err != nil {
				p.failed++
				b.rep.fail("clients: %s with %s: %v", p.c.name(), p.rt.name, r.err)
				p.c.remove(s, p.rt, id)
				continue
			}
			if it >= 0 {
				p.ms = append(p.ms, r.ms())
			}
		}
	}
	sec.para("Wall time in ms of the client's command, from fork to reaping it, with crier and with runc as the runtime:")
	t := sec.table("command", "crier", "runc", "crier ÷ runc")
	for i := 0; i+1 < len(pairs); i += 2 {
		cr, rc := summarize(pairs[i].ms), summarize(pairs[i+1].ms)
		c := pairs[i].c
		t.add(fmt.Sprintf("`%s run --rm` /bin/true", c.name()), cr.cell(), rc.cell(), ratio(cr, rc))
		b.rep.key["e2e."+c.name()+".crier"] = cr.p50
		b.rep.key["e2e."+c.name()+".runc"] = rc.p50
	}
	fl := summarize(floor)
	t.add("fork+exec+wait of /bin/true (the floor)", fl.cell(), "", "")
	sec.para("%d runs of each client with each runtime after %d warm-up rounds; each round runs the four in a rotating order, so that machine noise hits them alike. podman %s; containerd through `ctr run --rm --runc-binary RUNTIME --runc-root DIR` of an image imported from an OCI layout. Both run attached, as a user does, and both include the clients' own work (podman's storage and its cleanup process, containerd's snapshots and its shim's start), which is the same whichever the runtime. crier is in supervisor mode under both, with no configuration: each supervisor passes `--pid-file` and is a child subreaper (docs/supervisors.md).",
		n, warm, podmanLine)
	return fl
}

const podmanLine = "`run --rm` of an image made by `podman import` of the rootfs tarball (overlay storage, cgroupfs, no network, in its own root, run root and tmp directory)"

// supervisedMemory runs k `sleep 1000` containers under each client with
// each runtime in turn and tables the memory of their supervisors, and of
// crier's shims beside them.
func (b *B) supervisedMemory(sec *section, cls []client, k int) {
	s := b.newScratch()
	defer s.close()
	mt := &table{head: []string{"process (client + runtime)", "containers", "processes", "RSS (kB)", "PSS (kB)", "**USS (kB)**", "USS range", "USS total (MB)"}}
	tt := &table{head: []string{"client", "with runc: supervisor (USS kB)", "with crier: supervisor + crier-shim", "crier ÷ runc"}}
	for _, c := range cls {
		per := map[*runtime]float64{}
		for _, rt := range []*runtime{b.runc, b.crier} {
			b.underClient(s, c, rt, k, func(sup, shims []int) {
				label := c.name() + " + " + rt.name + ": "
				u := memRow(mt, label+c.supervisor(), k, sup)
				if rt == b.crier {
					shim := memRow(mt, label+"crier-shim", k, shims)
					if shim == 0 {
						return
					}
					u += shim
				}
				per[rt] = u
			})
		}
		if per[b.runc] > 0 && per[b.crier] > 0 {
			tt.add(c.name(), num(per[b.runc]), num(per[b.crier]), fmt.Sprintf("%.2f×", per[b.crier]/per[b.runc]))
			b.rep.key["e2emem."+c.name()+".runc"] = per[b.runc]
			b.rep.key["e2emem."+c.name()+".crier"] = per[b.crier]
		}
	}
	sec.para("Memory per container under a supervisor, in kB of USS (Private_Clean + Private_Dirty from /proc/PID/smaps_rollup) at the median: with runc the supervisor alone stays beside the container, with crier the supervisor and crier's shim, which serves the container's socket and events. The supervisor costs the same whichever the runtime; crier's shim is the difference.")
	sec.parts = append(sec.parts, tt)
	sec.para("The processes one by one, while %d containers run `sleep 1000` under each client with each runtime in turn (RSS, PSS and USS of the median process; measured after 1 s idle):", k)
	sec.parts = append(sec.parts, mt)
}

// underClient starts k `sleep 1000` containers under c with rt, and once
// they are idle calls measure with their supervisors' and crier's shims'
// pids; then it removes them. measure is not called if something failed.
func (b *B) underClient(s *scratch, c client, rt *runtime, k int, measure func(sup, shims []int)) {
	var ids []string
	var sup, shims []int
	defer func() {
		for _, id := range ids {
			c.remove(s, rt, id)
		}
	}()
	for i := 0; i < k; i++ {
		id := b.newID("m" + c.name()[:1])
		ids = append(ids, id)
		if r := c.run(s, rt, id, true, "/bin/sleep", "1000"); r.err != nil {
			b.rep.fail("clients memory: %s with %s: %v", c.name(), rt.name, r.err)
			return
		}
	}
	time.Sleep(time.Second) // idle, as in the shim memory section
	for _, id := range ids {
		pid, state, err := c.pids(s, rt, id)
		if err != nil {
			b.rep.fail("clients memory: %s with %s: %v", c.name(), rt.name, err)
			return
		}
		sup = append(sup, pid)
		if rt != b.crier {
			continue
		}
		shim, supervised, err := crierShim(state)
		if err != nil {
			b.rep.fail("clients memory: %s with crier: %v", c.name(), err)
			return
		}
		if !supervised {
			b.rep.fail("clients memory: %s with crier: %s says crier is not in supervisor mode", c.name(), state)
		}
		shims = append(shims, shim)
	}
	measure(sup, shims)
}

// crierShim reads the shim's pid and the mode from crier's state.json.
func crierShim(path string) (pid int, supervised bool, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	var st struct {
		ShimPid    int  `json:"shimPid"`
		Supervised bool `json:"supervised"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	return st.ShimPid, st.Supervised, nil
}

// podmanBox is rootful podman with conmon in a sandbox of its own:
// private configuration, storage, run and tmp directories, no network.
type podmanBox struct {
	b                  *B
	dir, image, parent string
	args, env          []string
}

func (b *B) startPodman(s *scratch) (client, error) {
	for _, bin := range []string{"podman", "conmon"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("podman: %s is not installed", bin)
		}
	}
	dir := filepath.Join(b.work, "podman")
	p := &podmanBox{b: b, dir: dir, image: "localhost/crier-bench:busybox",
		// Its containers' cgroups, and conmon's, go under a parent the
		// sweep knows by the run's prefix.
		parent: "/" + b.prefix + "-podman"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf, storage := filepath.Join(dir, "containers.conf"), filepath.Join(dir, "storage.conf")
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "runroot")
	// overlay, as on a real host: a container's root is a mount, not a copy.
	storageConf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", root, runroot)
	if err := os.WriteFile(conf, []byte(clientsandbox.PodmanConf(dir)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(storage, []byte(storageConf), 0o644); err != nil {
		return nil, err
	}
	p.env = []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage}
	p.args = []string{"--root", root, "--runroot", runroot, "--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	if r := p.podman(s, "import", "--change", "ENV PATH=/bin:/sbin:/usr/bin", filepath.Join(b.work, busyboxTarball), p.image); r.err != nil {
		p.stop()
		return nil, fmt.Errorf("podman: importing the image: %w", r.err)
	}
	return p, nil
}

func (p *podmanBox) podman(s *scratch, args ...string) result {
	argv := append(append([]string{"podman"}, p.args...), args...)
	return p.b.execEnv(s, argv, p.env, nil, time.Minute)
}

func (p *podmanBox) name() string       { return "podman" }
func (p *podmanBox) supervisor() string { return "conmon" }

func (p *podmanBox) run(s *scratch, rt *runtime, id string, detach bool, args ...string) result {
	mode := "--rm"
	if detach {
		mode = "-d"
	}
	line := []string{"--runtime", rt.bin, "run", mode, "--name", id, "--cgroup-parent", p.parent, p.image}
	return p.podman(s, append(line, args...)...)
}

func (p *podmanBox) remove(s *scratch, rt *runtime, id string) {
	p.podman(s, "--runtime", rt.bin, "rm", "-f", "-t", "0", id)
}

func (p *podmanBox) pids(s *scratch, rt *runtime, id string) (int, string, error) {
	r := p.podman(s, "inspect", "--format", "{{.State.ConmonPid}} {{.Id}}", id)
	if r.err != nil {
		return 0, "", r.err
	}
	f := strings.Fields(string(r.out))
	if len(f) != 2 {
		return 0, "", fmt.Errorf("podman inspect %s: %q", id, r.out)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, "", fmt.Errorf("podman inspect %s: conmon pid %q", id, f[0])
	}
	// Rootful podman passes no --root: crier's default.
	return pid, filepath.Join("/run/crier", f[1], "state.json"), nil
}

// stop removes every container and image of the sandbox, waits for the
// processes podman leaves behind (conmon, `podman container cleanup`) to
// finish, and removes the sandbox, its overlay mounts first.
func (p *podmanBox) stop() {
	s := p.b.newScratch()
	defer s.close()
	p.podman(s, "rm", "-a", "-f", "-t", "0")
	p.podman(s, "system", "reset", "-f")
	waitGone(p.dir, 20*time.Second)
	unmountUnder(p.dir)
	if err := os.RemoveAll(p.dir); err != nil {
		p.b.rep.fail("clients: removing podman's sandbox: %v", err)
	}
}

// ctrBox is the benchmark's containerd (startContainerd), with the busybox
// image imported from an OCI layout, driven by ctr.
type ctrBox struct {
	b     *B
	image string
}

func (b *B) startCtr(s *scratch) (client, error) {
	if !b.haveContainerd() {
		return nil, fmt.Errorf("containerd: not installed")
	}
	if err := b.startContainerd(); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	c := &ctrBox{b: b, image: "localhost/crier-bench:busybox"}
	archive := filepath.Join(b.work, "containerd", "busybox-oci.tar")
	if err := clientsandbox.WriteOCIArchive(archive, filepath.Join(b.work, busyboxTarball), c.image); err != nil {
		b.stopContainerd()
		return nil, fmt.Errorf("containerd: writing the OCI image %s: %w", archive, err)
	}
	if r := b.ctr(s, "image", "import", archive); r.err != nil {
		b.stopContainerd()
		return nil, fmt.Errorf("containerd: importing the image: %w", r.err)
	}
	return c, nil
}

func (c *ctrBox) name() string       { return "ctr" }
func (c *ctrBox) supervisor() string { return "containerd-shim-runc-v2" }

// runcRoot is the --runc-root of rt's containers, on the state tmpfs.
func (c *ctrBox) runcRoot(rt *runtime) string {
	return filepath.Join(c.b.work, "state", "ctr-"+rt.name)
}

func (c *ctrBox) run(s *scratch, rt *runtime, id string, detach bool, args ...string) result {
	line := []string{"run", "--rm"}
	if detach {
		line = []string{"run", "-d", "--null-io"}
	}
	line = append(line, "--runc-binary", rt.bin, "--runc-root", c.runcRoot(rt), c.image, id)
	return c.b.ctr(s, append(line, args...)...)
}

func (c *ctrBox) remove(s *scratch, rt *runtime, id string) { c.b.ctrRemove(s, id) }

// pids finds the container's shim by its command line: containerd
// starts one per container, `containerd-shim-runc-v2 -namespace NS -id ID
// -address SOCKET`.
func (c *ctrBox) pids(s *scratch, rt *runtime, id string) (int, string, error) {
	state := filepath.Join(c.runcRoot(rt), c.b.prefix, id, "state.json")
	want := []byte("\x00-id\x00" + id + "\x00")
	for _, pid := range c.b.containerdShims() {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(raw, want) {
			return pid, state, nil
		}
	}
	return 0, "", fmt.Errorf("no containerd-shim-runc-v2 for %s", id)
}

func (c *ctrBox) stop() { c.b.stopContainerd() }

// waitGone waits for every process whose command line names dir to exit,
// on pidfds, and kills those still there after timeout.
func waitGone(dir string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for round := 0; round < 10; round++ {
		pids := processesNaming(dir)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			// Never negative: that would be no limit.
			if pidfd.Wait(fd, max(time.Until(deadline), time.Millisecond)) != nil {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				pidfd.Wait(fd, 5*time.Second)
			}
			unix.Close(fd)
		}
	}
}

// processesNaming lists the live processes, other than this one and its
// parent, with s in their command line.
func processesNaming(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !bytes.Contains(raw, []byte(s)) {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !isZombie(st) {
			pids = append(pids, pid)
		}
	}
	return pids
}
