package container

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// numCaps is one past the highest capability this runtime knows by name.
// Kernels may know more; those are only ever dropped, never granted.
const numCaps = unix.CAP_CHECKPOINT_RESTORE + 1

// capabilityNames maps capability numbers to their spec names. It is a
// function returning an array value rather than a package variable so that
// nobody can modify the table.
func capabilityNames() [numCaps]string {
	return [numCaps]string{
		unix.CAP_CHOWN:              "CAP_CHOWN",
		unix.CAP_DAC_OVERRIDE:       "CAP_DAC_OVERRIDE",
		unix.CAP_DAC_READ_SEARCH:    "CAP_DAC_READ_SEARCH",
		unix.CAP_FOWNER:             "CAP_FOWNER",
		unix.CAP_FSETID:             "CAP_FSETID",
		unix.CAP_KILL:               "CAP_KILL",
		unix.CAP_SETGID:             "CAP_SETGID",
		unix.CAP_SETUID:             "CAP_SETUID",
		unix.CAP_SETPCAP:            "CAP_SETPCAP",
		unix.CAP_LINUX_IMMUTABLE:    "CAP_LINUX_IMMUTABLE",
		unix.CAP_NET_BIND_SERVICE:   "CAP_NET_BIND_SERVICE",
		unix.CAP_NET_BROADCAST:      "CAP_NET_BROADCAST",
		unix.CAP_NET_ADMIN:          "CAP_NET_ADMIN",
		unix.CAP_NET_RAW:            "CAP_NET_RAW",
		unix.CAP_IPC_LOCK:           "CAP_IPC_LOCK",
		unix.CAP_IPC_OWNER:          "CAP_IPC_OWNER",
		unix.CAP_SYS_MODULE:         "CAP_SYS_MODULE",
		unix.CAP_SYS_RAWIO:          "CAP_SYS_RAWIO",
		unix.CAP_SYS_CHROOT:         "CAP_SYS_CHROOT",
		unix.CAP_SYS_PTRACE:         "CAP_SYS_PTRACE",
		unix.CAP_SYS_PACCT:          "CAP_SYS_PACCT",
		unix.CAP_SYS_ADMIN:          "CAP_SYS_ADMIN",
		unix.CAP_SYS_BOOT:           "CAP_SYS_BOOT",
		unix.CAP_SYS_NICE:           "CAP_SYS_NICE",
		unix.CAP_SYS_RESOURCE:       "CAP_SYS_RESOURCE",
		unix.CAP_SYS_TIME:           "CAP_SYS_TIME",
		unix.CAP_SYS_TTY_CONFIG:     "CAP_SYS_TTY_CONFIG",
		unix.CAP_MKNOD:              "CAP_MKNOD",
		unix.CAP_LEASE:              "CAP_LEASE",
		unix.CAP_AUDIT_WRITE:        "CAP_AUDIT_WRITE",
		unix.CAP_AUDIT_CONTROL:      "CAP_AUDIT_CONTROL",
		unix.CAP_SETFCAP:            "CAP_SETFCAP",
		unix.CAP_MAC_OVERRIDE:       "CAP_MAC_OVERRIDE",
		unix.CAP_MAC_ADMIN:          "CAP_MAC_ADMIN",
		unix.CAP_SYSLOG:             "CAP_SYSLOG",
		unix.CAP_WAKE_ALARM:         "CAP_WAKE_ALARM",
		unix.CAP_BLOCK_SUSPEND:      "CAP_BLOCK_SUSPEND",
		unix.CAP_AUDIT_READ:         "CAP_AUDIT_READ",
		unix.CAP_PERFMON:            "CAP_PERFMON",
		unix.CAP_BPF:                "CAP_BPF",
		unix.CAP_CHECKPOINT_RESTORE: "CAP_CHECKPOINT_RESTORE",
	}
}

// parseCaps turns spec capability names into numbers, in order and without
// duplicates, leaving out the names it does not know. Names are matched
// exactly: the spec spells them "CAP_" plus upper case.
func parseCaps(names []string) []int {
	table := capabilityNames()
	caps := make([]int, 0, len(names))
	var seen [numCaps]bool
	for _, name := range names {
		n := -1
		for i, known := range table {
			if known == name {
				n = i
				break
			}
		}
		if n < 0 {
			// As runc: a name this runtime does not know (a newer
			// kernel's, or a typo) is left out, with a warning at
			// create (CapabilityWarnings), not an error.
			continue
		}
		if !seen[n] {
			seen[n] = true
			caps = append(caps, n)
		}
	}
	return caps
}

// CapabilityWarnings says what of p's capabilities will not be granted,
// in runc's words: names this runtime does not know (ignored), and
// ambient capabilities that are not both inheritable and permitted
// (which the kernel refuses to raise).
func CapabilityWarnings(p *specs.Process) []string {
	if p == nil || p.Capabilities == nil {
		return nil
	}
	c := p.Capabilities
	var unknown, warnings []string
	table := capabilityNames()
	for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
		for _, name := range set {
			if !slices.Contains(table[:], name) && !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		}
	}
	if len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("ignoring unknown or unavailable capabilities: [%s]", strings.Join(unknown, " ")))
	}
	for _, name := range c.Ambient {
		if slices.Contains(table[:], name) && (!slices.Contains(c.Inheritable, name) || !slices.Contains(c.Permitted, name)) {
			warnings = append(warnings, fmt.Sprintf("can't raise ambient capability %s: it is not both inheritable and permitted", name))
		}
	}
	return warnings
}

// capWords builds the two 32-bit words of a capability set as capset(2)
// version 3 wants them. Capabilities above lastCap are left out because
// the kernel refuses to grant what it does not know.
func capWords(caps []int, lastCap int) [2]uint32 {
	var w [2]uint32
	for _, c := range caps {
		if c < 0 || c > lastCap || c >= 64 {
			continue
		}
		w[c/32] |= 1 << (c % 32)
	}
	return w
}

// capSetData builds the capset(2) payload for the three sets capset
// controls.
func capSetData(effective, permitted, inheritable []int, lastCap int) [2]unix.CapUserData {
	e := capWords(effective, lastCap)
	p := capWords(permitted, lastCap)
	i := capWords(inheritable, lastCap)
	var data [2]unix.CapUserData
	for k := range data {
		data[k] = unix.CapUserData{Effective: e[k], Permitted: p[k], Inheritable: i[k]}
	}
	return data
}

// processCaps holds the parsed capability sets of a process.
type processCaps struct {
	bounding, effective, inheritable, permitted, ambient []int
}

// parseProcessCaps parses all five sets; a nil spec means every set is
// empty, as the spec treats absence as "none".
func parseProcessCaps(c *specs.LinuxCapabilities) processCaps {
	var pc processCaps
	if c == nil {
		return pc
	}
	for _, s := range []struct {
		names []string
		dst   *[]int
	}{
		{c.Bounding, &pc.bounding},
		{c.Effective, &pc.effective},
		{c.Inheritable, &pc.inheritable},
		{c.Permitted, &pc.permitted},
		{c.Ambient, &pc.ambient},
	} {
		*s.dst = parseCaps(s.names)
	}
	return pc
}

// maxCapIndex is the highest capability number capset(2) version 3 can
// express (two 32-bit words).
const maxCapIndex = 63

// kernelLastCap returns the highest capability number the running kernel
// knows, by asking the kernel about the calling thread's bounding set:
// PR_CAPBSET_READ answers EINVAL past the last capability. It never reads
// /proc/sys/kernel/cap_last_cap: init calls it inside the container, whose
// /proc the image and its mounts could fake, and a last capability of 0
// would leave the whole bounding set in place.
func kernelLastCap() (int, error) {
	last := -1
	for c := 0; c <= maxCapIndex; c++ {
		_, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return 0, os.NewSyscallError("prctl PR_CAPBSET_READ", err)
		}
		last = c
	}
	if last < 0 {
		return 0, errors.New("prctl PR_CAPBSET_READ: the kernel knows no capability")
	}
	return last, nil
}

// dropBoundingSet removes from the calling thread's bounding set every
// capability that keep does not list. It needs CAP_SETPCAP in the
// effective set, so it must run before the switch away from root.
//
// It goes up until the kernel itself answers EINVAL (a capability it does
// not have, which cannot be held anyway), not up to a number learned
// beforehand: the bounding set is what stops the container regaining a
// capability, so it must not depend on anyone's idea of the last one.
func dropBoundingSet(keep []int) error {
	kept := make(map[int]bool, len(keep))
	for _, c := range keep {
		kept[c] = true
	}
	for c := 0; c <= maxCapIndex; c++ {
		if kept[c] {
			if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); errors.Is(err, unix.EINVAL) {
				return nil
			}
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("prctl PR_CAPBSET_DROP %s: %w", capName(c), err)
		}
	}
	return nil
}

// applyCaps sets the permitted, effective and inheritable sets of the
// calling thread, then its ambient set, which the kernel only accepts for
// capabilities already permitted and inheritable.
func applyCaps(pc processCaps, lastCap int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := capSetData(pc.effective, pc.permitted, pc.inheritable, lastCap)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if err != nil {
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	for _, c := range pc.ambient {
		if c > lastCap {
			continue
		}
		// The kernel refuses an ambient capability that is not also
		// permitted and inheritable. runc's own default spec asks for
		// exactly that (ambient without inheritable), and runc and crun
		// skip such a capability rather than fail: so do we.
		if !contains(pc.permitted, c) || !contains(pc.inheritable, c) {
			continue
		}
		err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0)
		if err != nil {
			return fmt.Errorf("prctl PR_CAP_AMBIENT_RAISE %s: %w", capName(c), err)
		}
	}
	return nil
}

func contains(list []int, c int) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// capName names capability c for error messages, including ones newer
// than this runtime.
func capName(c int) string {
	if c >= 0 && c < numCaps {
		return capabilityNames()[c]
	}
	return "capability " + strconv.Itoa(c)
}
