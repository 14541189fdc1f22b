package cgroup

// Device rules on cgroup v2.
//
// Cgroup v2 has no devices controller: the kernel asks a
// BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup (and to each
// of its ancestors; all must allow) whether an open or mknod of a block or
// character device may go ahead. crier compiles linux.resources.devices,
// with its default rules appended (Resources), into such a program.
//
// Semantics. The same config must give the same result as on v1, where
// each rule is written in order to devices.allow or devices.deny. That is
// not "the last matching rule wins": the v1 controller keeps a default
// (allow or deny) and a list of exceptions to it, and a rule edits that
// state:
//
//   - A rule of type "a" (or no type) sets the default to its own verdict
//     and drops every exception. Its major, minor and access are ignored,
//     as the kernel ignores them: "deny a 1:3 r" denies everything.
//   - A "b" or "c" rule whose verdict differs from the default adds an
//     exception, or ORs its access into the exception with the same type,
//     major and minor (a wildcard is only the same as a wildcard).
//   - A "b" or "c" rule whose verdict is the default's clears its access
//     from the exception with exactly the same type, major and minor (and
//     drops it when no access is left). It does nothing to any other
//     exception, so with a deny-all default "allow c 1:* rwm" then
//     "deny c 1:3 rwm" still allows c 1:3, and with an allow-all default
//     "deny c 1:3 rwm" then "allow c 1:* rwm" still denies c 1:3.
//
// The state starts as allow-all with no exceptions: that is what a new v1
// cgroup under an unrestricted parent starts with, and on v2 the parents'
// own programs still apply on top of ours. An access is then decided as
// the v1 controller decides it:
//
//   - default deny: allowed when one exception of the device's type whose
//     major and minor match (a wildcard matches all) grants every access
//     bit asked for (reading and writing at once needs one exception with
//     both);
//   - default allow: denied when an exception of the device's type whose
//     major and minor match shares any access bit with the request.
//
// So a deny-all rule followed by specific allows denies everything but
// those allows, as on v1. devEmulate computes the final state and
// devProgram turns it into instructions.
//
// Detaching. Limit attaches with BPF_F_ALLOW_MULTI and keeps no file
// descriptor: the attachment holds the program. When Destroy removes the
// cgroup directory the kernel releases the cgroup's programs with it
// (cgroup_bpf_release), so Destroy needs nothing more; the test checks that
// the program's ID is gone after rmdir.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// devAny is the kernel's wildcard major or minor (~0), so that a
// literal 4294967295 behaves as it does on v1.
const devAny = math.MaxUint32

// devAccessAll is read, write and mknod.
const devAccessAll = unix.BPF_DEVCG_ACC_MKNOD | unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE

// devException is one entry of the v1 controller's exception list.
type devException struct {
	typ          uint32 // unix.BPF_DEVCG_DEV_BLOCK or unix.BPF_DEVCG_DEV_CHAR
	major, minor uint32 // devAny for any
	access       uint32 // unix.BPF_DEVCG_ACC_* bits
}

// devState is what the v1 devices controller keeps for a cgroup: a
// default verdict and the exceptions to it.
type devState struct {
	allow      bool
	exceptions []devException
}

// devEmulate applies rules in order to a fresh allow-all state, as
// the v1 controller would if they were written to devices.allow and
// devices.deny one by one. Rules the v1 controller would refuse are an
// error naming the rule.
func devEmulate(rules []specs.LinuxDeviceCgroup) (devState, error) {
	s := devState{allow: true}
	for i, r := range rules {
		ex, all, err := devParse(r)
		if err != nil {
			return devState{}, fmt.Errorf("cgroup: device rule %d: %w", i, err)
		}
		switch {
		case all:
			s = devState{allow: r.Allow}
		case r.Allow != s.allow:
			s.add(ex)
		default:
			s.remove(ex)
		}
	}
	return s, nil
}

// devParse converts r. all reports a rule of type "a" (or no type),
// whose other fields do not matter.
func devParse(r specs.LinuxDeviceCgroup) (ex devException, all bool, err error) {
	switch r.Type {
	case "", "a":
		return devException{}, true, nil
	case "b":
		ex.typ = unix.BPF_DEVCG_DEV_BLOCK
	case "c":
		ex.typ = unix.BPF_DEVCG_DEV_CHAR
	default:
		return ex, false, fmt.Errorf("invalid device type %q", r.Type)
	}
	num := func(what string, n *int64) (uint32, error) {
		switch {
		case n == nil || *n < 0:
			return devAny, nil
		case *n > math.MaxUint32:
			return 0, fmt.Errorf("%s number %d is out of range", what, *n)
		}
		return uint32(*n), nil
	}
	if ex.major, err = num("major", r.Major); err != nil {
		return ex, false, err
	}
	if ex.minor, err = num("minor", r.Minor); err != nil {
		return ex, false, err
	}
	// As on v1 (deviceAccess): other letters are ignored, and a rule
	// left with no access changes nothing (add and remove skip it).
	for _, c := range deviceAccess(r.Access) {
		switch c {
		case 'r':
			ex.access |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			ex.access |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			ex.access |= unix.BPF_DEVCG_ACC_MKNOD
		}
	}
	return ex, false, nil
}

// same reports whether e and o are the same exception but for access.
func (e devException) same(o devException) bool {
	return e.typ == o.typ && e.major == o.major && e.minor == o.minor
}

func (s *devState) add(ex devException) {
	if ex.access == 0 {
		return
	}
	for i := range s.exceptions {
		if s.exceptions[i].same(ex) {
			s.exceptions[i].access |= ex.access
			return
		}
	}
	s.exceptions = append(s.exceptions, ex)
}

func (s *devState) remove(ex devException) {
	for i := range s.exceptions {
		if s.exceptions[i].same(ex) {
			s.exceptions[i].access &^= ex.access
		}
	}
	s.exceptions = slices.DeleteFunc(s.exceptions, func(e devException) bool { return e.access == 0 })
}

// bpfInsn is struct bpf_insn.
type bpfInsn struct {
	Code uint8
	Regs uint8 // destination register in the low nibble, source in the high one
	Off  int16
	Imm  int32
}

// The registers of the device program.
const (
	bpfR0     = 0 // verdict
	bpfR1     = 1 // the context on entry, then scratch
	bpfRType  = 2 // unix.BPF_DEVCG_DEV_*
	bpfRAcc   = 3 // unix.BPF_DEVCG_ACC_* bits
	bpfRMajor = 4
	bpfRMinor = 5
)

func bpfOp(code uint8, dst, src uint8, off int16, imm int32) bpfInsn {
	return bpfInsn{Code: code, Regs: dst | src<<4, Off: off, Imm: imm}
}

// devSkip marks, in the Off of a jump, "to the next exception"; it
// is resolved once the exception's instructions are complete.
const devSkip = math.MinInt16

// Instruction codes the device program uses more than once.
const (
	bpfLdxW  = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W
	bpfMov64 = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
	bpfMov32 = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K
	bpfJneK  = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
	bpfExit  = unix.BPF_JMP | unix.BPF_EXIT
)

// devProgram compiles s: for each exception, the instructions that
// return the exception's verdict when it matches, then the default.
func devProgram(s devState) []bpfInsn {
	prog := devPrologue()
	for _, ex := range s.exceptions {
		prog = append(prog, devExceptionBlock(ex, s.allow)...)
	}
	return append(prog, devVerdict(s.allow)...)
}

// devPrologue loads the request into registers. The context is struct
// bpf_cgroup_dev_ctx: u32 access_type (type | access<<16), u32 major,
// u32 minor.
func devPrologue() []bpfInsn {
	return []bpfInsn{
		bpfOp(bpfLdxW, bpfRType, bpfR1, 0, 0),
		bpfOp(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_X, bpfRAcc, bpfRType, 0, 0),
		bpfOp(unix.BPF_ALU64|unix.BPF_RSH|unix.BPF_K, bpfRAcc, 0, 0, 16),
		bpfOp(unix.BPF_ALU64|unix.BPF_AND|unix.BPF_K, bpfRType, 0, 0, 0xffff),
		bpfOp(bpfLdxW, bpfRMajor, bpfR1, 4, 0),
		bpfOp(bpfLdxW, bpfRMinor, bpfR1, 8, 0),
	}
}

// devVerdict returns allow (1) or deny (0).
func devVerdict(allow bool) []bpfInsn {
	v := int32(0)
	if allow {
		v = 1
	}
	return []bpfInsn{bpfOp(bpfMov64, bpfR0, 0, 0, v), bpfOp(bpfExit, 0, 0, 0, 0)}
}

// devExceptionBlock returns the instructions that return ex's verdict (the
// opposite of the default, defaultAllow) when ex applies to the request,
// and otherwise go on to the instructions that follow them.
func devExceptionBlock(ex devException, defaultAllow bool) []bpfInsn {
	block := []bpfInsn{bpfOp(bpfJneK, bpfRType, 0, devSkip, int32(ex.typ))}
	block = append(block, devNumberTest(bpfRMajor, ex.major)...)
	block = append(block, devNumberTest(bpfRMinor, ex.minor)...)
	block = append(block, devAccessTest(ex.access, defaultAllow)...)
	block = append(block, devVerdict(!defaultAllow)...)
	for i := range block {
		if block[i].Off == devSkip {
			block[i].Off = int16(len(block) - i - 1)
		}
	}
	return block
}

// devNumberTest skips the exception unless register reg (the major or the
// minor) is v; a wildcard needs no test.
func devNumberTest(reg uint8, v uint32) []bpfInsn {
	switch {
	case v == devAny:
		return nil
	case v <= math.MaxInt32:
		return []bpfInsn{bpfOp(bpfJneK, reg, 0, devSkip, int32(v))}
	}
	// A 64-bit compare would sign-extend the immediate; a 32-bit move
	// zero-extends it.
	return []bpfInsn{
		bpfOp(bpfMov32, bpfR1, 0, 0, int32(v)),
		bpfOp(unix.BPF_JMP|unix.BPF_JNE|unix.BPF_X, reg, bpfR1, devSkip, 0),
	}
}

// devAccessTest skips the exception unless it applies to the access asked
// for: a deny exception (under a default allow) when it shares an access
// bit, an allow exception when it grants every bit asked.
func devAccessTest(access uint32, defaultAllow bool) []bpfInsn {
	if defaultAllow {
		return []bpfInsn{
			bpfOp(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_X, bpfR1, bpfRAcc, 0, 0),
			bpfOp(unix.BPF_ALU64|unix.BPF_AND|unix.BPF_K, bpfR1, 0, 0, int32(access)),
			bpfOp(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, bpfR1, 0, devSkip, 0),
		}
	}
	if missing := devAccessAll &^ access; missing != 0 {
		return []bpfInsn{bpfOp(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, bpfRAcc, 0, devSkip, int32(missing))}
	}
	return nil
}

// devicesProgram compiles rules, in order, to a device program.
func devicesProgram(rules []specs.LinuxDeviceCgroup) ([]bpfInsn, error) {
	s, err := devEmulate(rules)
	if err != nil {
		return nil, err
	}
	return devProgram(s), nil
}

// setV2Devices enforces rules on the v2 cgroup dir by attaching a
// device program to it. Without rules nothing is attached, as nothing is
// written on v1.
func setV2Devices(dir string, rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	insns, err := devicesProgram(rules)
	if err != nil {
		return err
	}
	if err := bpfAttachCgroupDevice(dir, insns); err != nil {
		return fmt.Errorf("cgroup: device rules on %s: %w", dir, err)
	}
	return nil
}

// bpfAttachCgroupDevice loads insns as a device program and attaches it to
// the cgroup v2 directory dir, alongside any programs already there.
func bpfAttachCgroupDevice(dir string, insns []bpfInsn) error {
	prog, err := bpfProgLoad(unix.BPF_PROG_TYPE_CGROUP_DEVICE, insns, "Apache")
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(cg)
	attr := struct {
		targetFD, attachBPFFD, attachType, attachFlags, replaceBPFFD uint32
	}{
		targetFD:    uint32(cg),
		attachBPFFD: uint32(prog),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpfCall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return fmt.Errorf("attach device program: %w", err)
	}
	return nil
}

// bpfProgLoadAttr is the BPF_PROG_LOAD part of union bpf_attr, up to
// expected_attach_type.
type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// bpfProgLoad loads insns and returns the program's file descriptor (the
// kernel always makes it close-on-exec). When the verifier refuses the
// program, the load is repeated with its log, which goes in the error.
func bpfProgLoad(progType uint32, insns []bpfInsn, license string) (int, error) {
	if len(insns) == 0 {
		return -1, errors.New("load BPF program: no instructions")
	}
	lic := append([]byte(license), 0)
	attr := bpfProgLoadAttr{
		progType: progType,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&lic[0]))),
	}
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], "crier_devices")
	fd, err := bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES)) {
		log := make([]byte, 64<<10)
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		fd, err = bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		if err != nil {
			if msg := strings.TrimSpace(string(log[:max(bytes.IndexByte(log, 0), 0)])); msg != "" {
				err = fmt.Errorf("%w; verifier: %s", err, msg)
			}
		}
		runtime.KeepAlive(log)
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(lic)
	if err != nil {
		return -1, fmt.Errorf("load BPF program: %w", err)
	}
	return fd, nil
}

// bpfCall is the bpf(2) system call, retried a few times when interrupted
// (the verifier gives up with EAGAIN on a pending signal).
func bpfCall(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	for attempt := 1; ; attempt++ {
		r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
		switch {
		case (errno == unix.EINTR || errno == unix.EAGAIN) && attempt < 10:
			continue
		case errno != 0:
			return -1, errno
		}
		return int(r), nil
	}
}
