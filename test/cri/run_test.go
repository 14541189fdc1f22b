//go:build cri

package cri

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crier-runtime/crier/internal/clientsandbox"
)

// This file runs crictl, each command bounded by the step timeout, and
// makes what the images need.

// crictlCmd is a crictl command line against the sandbox's containerd.
// ctx may be nil.
func crictlCmd(ctx context.Context, args ...string) *exec.Cmd {
	all := append([]string{"--config", suite.dir + "/crictl.yaml"}, args...)
	var cmd *exec.Cmd
	if ctx == nil {
		cmd = exec.Command(suite.crictl, all...)
	} else {
		cmd = exec.CommandContext(ctx, suite.crictl, all...)
	}
	cmd.Dir = suite.dir
	return cmd
}

// result is what a finished command did.
type result struct {
	line   string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d\nstdout: %s\nstderr: %s", r.line, r.code, r.stdout, r.stderr)
}

// crictl runs crictl with stdin (may be "") and returns what it did; a
// command that hangs past the step timeout fails the test.
func crictl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), *stepFlag)
	defer cancel()
	cmd := crictlCmd(ctx, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	r := result{line: "crictl " + strings.Join(args, " "), stdout: out.String(), stderr: errb.String(), code: exitCode(err)}
	if ctx.Err() != nil {
		t.Fatalf("%s: no answer after %v (killed)\nstdout: %s\nstderr: %s", r.line, *stepFlag, r.stdout, r.stderr)
	}
	return r
}

// ok runs crictl and fails the test unless it succeeds; it returns
// stdout, trimmed.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := crictl(t, "", args...)
	if r.code != 0 {
		t.Fatal(r)
	}
	return strings.TrimSpace(r.stdout)
}

// inspectJSON runs a crictl command with -o json and decodes its output.
func inspectJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	// Flags go before the arguments: crictl takes anything after the
	// first argument as an argument.
	out := ok(t, append([]string{args[0], "-o", "json"}, args[1:]...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("crictl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// crictlTTY runs crictl with a new terminal as its stdin, stdout, stderr
// and controlling terminal, as a user at a shell would, and returns what
// the terminal showed.
func crictlTTY(t *testing.T, args ...string) result {
	t.Helper()
	master, slave, err := clientsandbox.OpenPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *stepFlag)
	defer cancel()
	cmd := crictlCmd(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	screen := make(chan string, 1)
	go func() {
		// Reading ends with EIO once every holder of the slave is gone.
		b, _ := io.ReadAll(master)
		screen <- string(b)
	}()
	err = cmd.Wait()
	r := result{line: "crictl " + strings.Join(args, " "), code: exitCode(err)}
	select {
	case r.stdout = <-screen:
	case <-time.After(5 * time.Second):
		master.Close()
		r.stdout = <-screen
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: no answer after %v (killed)\nterminal: %q", r.line, *stepFlag, r.stdout)
	}
	return r
}

// exitCode is the exit status of a finished command's error: -1 when it
// did not exit by itself.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// waitFor polls cond until it holds or the step timeout passes: CRI has
// no call that waits for a container's state, and the kubelet polls too.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(*stepFlag)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, *stepFlag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail is the end of a log file, for failure messages.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// busyboxTarball finds the busybox rootfs that the runtime-tools module
// ships (the integration tests use the same), fetching the module through
// the Go module proxy if it is not in the module cache yet. Its busybox
// applets are symlinks to one binary built without the standalone shell,
// as critest expects of its busybox image.
func busyboxTarball() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/opencontainers/runtime-tools@v0.9.0").Output()
	if err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download runtime-tools: %w", err)
	}
	p := mod.Dir + "/rootfs-amd64.tar.gz"
	_, err = os.Stat(p)
	return p, err
}

// writeRootfsLayer writes the one layer of every image: the busybox rootfs
// at base, with its applets made hardlinks of busybox instead of symlinks
// (masking /bin/ls must not mask busybox, and so sh, as critest expects of
// its busybox image), plus /tmp and /var/run, which it lacks, a web root
// for the web-server stand-ins, and the stand-in binary (test/cri/standin)
// as /pause and, hardlinked, /bin/nginx.
func writeRootfsLayer(base, standin, out string) error {
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("reading %s: %w", base, err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", base, err)
		}
		if h.Typeflag == tar.TypeSymlink && h.Linkname == "busybox" {
			// A hardlink's header carries the mode of the file: the
			// symlink's 0777 would make busybox writable by all.
			h.Typeflag, h.Linkname, h.Mode = tar.TypeLink, path.Dir(h.Name)+"/busybox", 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	standinBin, err := os.ReadFile(standin)
	if err != nil {
		return err
	}
	page := "<html><body>crier-cri stand-in web server</body></html>\n"
	files := []struct {
		h    tar.Header
		data string
	}{
		{tar.Header{Name: "./tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "./var/", Mode: 0o755, Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "./var/run/", Mode: 0o755, Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "./www/", Mode: 0o755, Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "./www/index.html", Mode: 0o644, Typeflag: tar.TypeReg}, page},
		{tar.Header{Name: "./pause", Mode: 0o755, Typeflag: tar.TypeReg}, string(standinBin)},
		{tar.Header{Name: "./bin/nginx", Mode: 0o755, Typeflag: tar.TypeLink, Linkname: "./pause"}, ""},
	}
	for _, fl := range files {
		h := fl.h
		h.ModTime, h.Size = time.Unix(0, 0), int64(len(fl.data))
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, fl.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
