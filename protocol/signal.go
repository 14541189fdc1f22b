package protocol

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SignalName returns the conventional name of sig, such as "SIGKILL", or
// "SIGRTMIN+3" for real-time signals.
func SignalName(sig unix.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	if sig >= sigRTMin && sig <= sigRTMax {
		return fmt.Sprintf("SIGRTMIN+%d", sig-sigRTMin)
	}
	return "signal " + strconv.Itoa(int(sig))
}

// The kernel's real-time signal range; glibc reserves the first two, but a
// container may use them all.
const (
	sigRTMin = unix.Signal(34)
	sigRTMax = unix.Signal(64)
)

// ParseSignal accepts a signal number, or a name with or without the SIG
// prefix in any case ("KILL", "sigterm", "SIGRTMIN+2").
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > int(sigRTMax) {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	switch name {
	case "SIGRTMIN":
		return sigRTMin, nil
	case "SIGRTMAX":
		return sigRTMax, nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && sigRTMin+unix.Signal(n) <= sigRTMax {
			return sigRTMin + unix.Signal(n), nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX-"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && sigRTMax-unix.Signal(n) >= sigRTMin {
			return sigRTMax - unix.Signal(n), nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
