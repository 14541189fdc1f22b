package main

import (
	"bufio"
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
	"golang.org/x/sys/unix"
)

// conmon supervising runc, as podman drives it: conmon runs `runc create`,
// reports the container's pid on the _OCI_SYNCPIPE and stays as the
// container's parent, writing the exit status to --exit-dir.

func (b *B) haveConmon() bool {
	_, err := exec.LookPath("conmon")
	return err == nil
}

func (b *B) conmonDir(sub string) string { return filepath.Join(b.work, "conmon", sub) }

// conmonCreate creates container id from bundle under conmon and returns
// conmon's pid once the container is created.
func (b *B) conmonCreate(id, bundle string) (int, error) {
	for _, d := range []string{"exits", "persist", "sock", "logs", "pids"} {
		os.MkdirAll(b.conmonDir(d), 0o755)
	}
	pidFile := filepath.Join(b.conmonDir("pids"), id+".pid")
	conmonPidFile := filepath.Join(b.conmonDir("pids"), id+".conmon")
	persist := filepath.Join(b.conmonDir("persist"), id)
	os.MkdirAll(persist, 0o755)
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command("conmon", "--api-version", "1",
		"-c", id, "-u", id, "-n", id,
		"-r", b.runcConmon.bin, "--runtime-arg", "--root", "--runtime-arg", b.runcConmon.root,
		"-b", bundle, "-p", pidFile, "-P", conmonPidFile,
		"--exit-dir", b.conmonDir("exits"), "--persist-dir", persist,
		"--socket-dir-path", b.conmonDir("sock"),
		"-l", "k8s-file:"+filepath.Join(b.conmonDir("logs"), id+".log"),
		"--log-level", "error")
	cmd.Env = append(append([]string{}, b.env...), "_OCI_SYNCPIPE=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin, cmd.Stdout = b.devnull, b.devnull
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b.track(b.runcConmon, id)
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, err
	}
	w.Close()
	// The first conmon forks the supervisor and exits.
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("conmon: %v: %s", err, stderr.String())
	}
	r.SetReadDeadline(time.Now().Add(30 * time.Second))
	var msg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(r).Decode(&msg); err != nil {
		return 0, fmt.Errorf("conmon %s: no sync message: %v", id, err)
	}
	raw, _ := os.ReadFile(conmonPidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if pid > 0 {
		b.mu.Lock()
		b.conmons[pid] = true
		b.mu.Unlock()
	}
	if msg.Data <= 0 {
		return pid, fmt.Errorf("conmon %s: runc create failed: %s", id, msg.Message)
	}
	return pid, nil
}

// conmonForget drops pid from the conmons to kill once it has exited.
func (b *B) conmonForget(pid int) {
	for i := 0; i < 200; i++ {
		if unix.Kill(pid, 0) != nil {
			break
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || isZombie(st) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.mu.Lock()
	delete(b.conmons, pid)
	b.mu.Unlock()
}

// conmonStamp reads what the container wrote to stdout from conmon's
// k8s-file log: "TIME stdout F TEXT".
func (b *B) conmonStamp(id string) (int64, error) {
	raw, err := os.ReadFile(filepath.Join(b.conmonDir("logs"), id+".log"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0, fmt.Errorf("conmon log of %s is empty", id)
	}
	return strconv.ParseInt(f[len(f)-1], 10, 64)
}

// containerd with its own config (test/clients' one), root, state and
// socket under the work directory; the memory section makes containers
// with `ctr run --rootfs` (no image), the clients section from an
// imported image, each supervised by its containerd-shim-runc-v2.

func (b *B) haveContainerd() bool {
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			return false
		}
	}
	return true
}

func (b *B) startContainerd() error {
	if b.containerd != nil {
		return nil
	}
	dir := filepath.Join(b.work, "containerd")
	os.MkdirAll(dir, 0o755)
	b.ctrSock = filepath.Join(dir, "c.sock")
	cfg := clientsandbox.ContainerdConf(dir, b.ctrSock)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = b.devnull, log, log
	cmd.Env = b.env
	if err := cmd.Start(); err != nil {
		return err
	}
	b.containerd = cmd
	s := b.newScratch()
	defer s.close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(b.ctrSock); err == nil {
			if r := b.ctr(s, "version"); r.err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.stopContainerd()
	return fmt.Errorf("containerd did not come up (see its log)")
}

func (b *B) ctr(s *scratch, args ...string) result {
	argv := append([]string{"ctr", "-a", b.ctrSock, "-n", b.prefix}, args...)
	return b.exec(s, argv, nil, 30*time.Second)
}

// ctrRun starts a container running args, its stdout and stderr going to
// the file stdout (or nowhere).
func (b *B) ctrRun(s *scratch, id, stdout string, args ...string) result {
	a := []string{"run", "-d"}
	if stdout != "" {
		a = append(a, "--log-uri", "file://"+stdout)
	} else {
		a = append(a, "--null-io")
	}
	a = append(a, "--rootfs", filepath.Join(b.work, "rootfs"), id)
	return b.ctr(s, append(a, args...)...)
}

// ctrRemove kills (if needed) and removes task and container id.
func (b *B) ctrRemove(s *scratch, id string) {
	b.ctr(s, "task", "rm", "-f", id)
	b.ctr(s, "container", "rm", id)
}

// containerdShims returns the pids of the shims of this run's containerd.
func (b *B) containerdShims() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(raw, []byte("containerd-shim-runc-v2")) && bytes.Contains(raw, []byte(b.ctrSock)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (b *B) stopContainerd() {
	if b.containerd == nil {
		return
	}
	s := b.newScratch()
	defer s.close()
	if r := b.ctr(s, "task", "ls", "-q"); r.err == nil {
		sc := bufio.NewScanner(bytes.NewReader(r.out))
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				b.ctrRemove(s, id)
			}
		}
	}
	if r := b.ctr(s, "container", "ls", "-q"); r.err == nil {
		sc := bufio.NewScanner(bytes.NewReader(r.out))
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				b.ctr(s, "container", "rm", id)
			}
		}
	}
	b.containerd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { b.containerd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.containerd.Process.Kill()
		<-done
	}
	for _, pid := range b.containerdShims() {
		unix.Kill(pid, unix.SIGKILL)
	}
	b.containerd = nil
}
