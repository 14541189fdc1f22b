package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Hook kinds, named as in config.json.
const (
	HookPrestart        = "prestart"
	HookCreateRuntime   = "createRuntime"
	HookCreateContainer = "createContainer"
	HookStartContainer  = "startContainer"
	HookPoststart       = "poststart"
	HookPoststop        = "poststop"
)

// hooksOf returns the hooks of one kind from spec.
func hooksOf(spec *specs.Spec, kind string) []specs.Hook {
	h := spec.Hooks
	if h == nil {
		return nil
	}
	switch kind {
	case HookPrestart:
		return h.Prestart //nolint:staticcheck // deprecated in the spec, still run
	case HookCreateRuntime:
		return h.CreateRuntime
	case HookCreateContainer:
		return h.CreateContainer
	case HookStartContainer:
		return h.StartContainer
	case HookPoststart:
		return h.Poststart
	case HookPoststop:
		return h.Poststop
	}
	return nil
}

// RunHooks runs the hooks of one kind in order, each with state as JSON on
// its stdin. For the kinds that can still stop the container it stops at the
// first that fails. A failing poststart or poststop hook is only a warning
// (the spec's word) and the rest still run: their errors come back joined.
func RunHooks(spec *specs.Spec, kind string, state *specs.State) error {
	hooks := hooksOf(spec, kind)
	if len(hooks) == 0 {
		return nil
	}
	input, err := json.Marshal(state)
	if err != nil {
		return err
	}
	// A hook gets its state on stdin and its output pipes, and nothing
	// else. os/exec only adds descriptors, so anything this process holds
	// without close-on-exec would reach the hook too: in init, the
	// descriptors passed with --preserve-fds, which are the container's;
	// in the CLI, whatever its caller left open. Init makes its passed
	// descriptors inheritable again just before it execs the container's
	// process (inheritPassedFDs); no other caller needs any.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("%s hooks: close_range: %w", kind, err)
	}
	// A failed poststop hook is a warning and the others run; any other
	// failure stops the hooks of its kind (runtime-spec 1.3, runtime.md's
	// lifecycle; a failed poststart fails start, as in runc).
	keepGoing := kind == HookPoststop
	var errs []error
	for i, h := range hooks {
		if kind == HookStartContainer && len(h.Env) == 0 && spec.Process != nil {
			// As runc: a startContainer hook with no env of its own
			// gets the process's, HOME included (tools rely on it,
			// though the spec does not say so).
			h.Env = spec.Process.Env
		}
		if err := runHook(h, input); err != nil {
			err = fmt.Errorf("error running %s hook #%d: %w", kind, i, err) // runc's words, which tools match
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runHook(h specs.Hook, input []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("%s: timeout must be positive, got %d", h.Path, *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = h.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Hooks are not the container: keep their output off its stdout.
	cmd.Stdout = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: timed out after %ds", h.Path, *h.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", h.Path, err, firstLine(msg))
		}
		return fmt.Errorf("%s: %w", h.Path, err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
