package seccomp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The program Compile builds has one section per ABI the profile covers:
//
//	ld  arch
//	    i386 (if SCMP_ARCH_X86 is listed)  -> i386 section
//	    not x86_64                          -> kill the process
//	ld  nr
//	    0x40000000 <= nr < 0x80000000       -> x32 section if SCMP_ARCH_X32
//	                                           is listed, else kill
//	x86_64 section: for each syscall number the profile names,
//	    nr == N -> ret action (no args) or jump to N's rules
//	    ret defaultAction
//	x32 section, i386 section: the same with their numbers
//	rules of N: for each rule in config order, its argument checks, each
//	    jumping to the next rule on mismatch, then ret action; after the
//	    last, ret defaultAction
//
// So the first rule that matches a call decides, in the order of the
// config; rules for one syscall are ORed, the args of one rule ANDed (also
// when several name the same index: {GE 10, LE 20} is a range).
//
// x86_64 (SCMP_ARCH_X86_64) is always covered. The x32 ABI runs in 64-bit
// processes with the x86_64 audit arch and the x32 bit in the number, so a
// profile that does not list SCMP_ARCH_X32 must not let those numbers fall
// through to its default action: a deny list would otherwise be bypassed
// with "mkdir | 0x40000000". Calls from an ABI the profile does not list,
// such as int $0x80 without SCMP_ARCH_X86, kill the process, as libseccomp's
// default bad-arch action does. Architectures that cannot run on x86_64
// (SCMP_ARCH_AARCH64...) are accepted and have nothing to filter.
//
// Arguments are compared as 64-bit values, high word then low word, on
// x86_64 and x32. i386 arguments are 32 bits: there only the low 32 bits of
// the value (and of the mask) count, so a profile written with -1 as
// 0xffffffffffffffff means the same for 32-bit processes.

//go:generate go run mktable.go

// syscallEntry is one row of the generated syscallTable.
type syscallEntry struct {
	name             string
	x8664, i386, x32 int16
}

// sysABI is an x86 system call ABI that the filter can cover.
type sysABI int

const (
	abiX8664 sysABI = iota
	abiI386
	abiX32
	numABIs
)

// x32SyscallBit is __X32_SYSCALL_BIT, set in the number of every x32 call.
const x32SyscallBit = 0x40000000

// number returns the call's number in the ABI, or -1.
func (abi sysABI) number(s *syscallEntry) int64 {
	var nr int16
	switch abi {
	case abiX8664:
		nr = s.x8664
	case abiI386:
		nr = s.i386
	case abiX32:
		nr = s.x32
	}
	if nr < 0 {
		return -1
	}
	if abi == abiX32 {
		return int64(nr) + x32SyscallBit
	}
	return int64(nr)
}

// lookupSyscall finds name in the table, which holds every Linux syscall
// of every architecture.
func lookupSyscall(name string) (*syscallEntry, bool) {
	i := sort.Search(len(syscallTable), func(i int) bool { return syscallTable[i].name >= name })
	if i < len(syscallTable) && syscallTable[i].name == name {
		return &syscallTable[i], true
	}
	return nil, false
}

// archABI maps a spec architecture to the ABI it covers. ok is
// false for a name the spec does not define; abi is -1 for a real
// architecture that an x86_64 kernel never runs.
func archABI(a specs.Arch) (abi sysABI, ok bool) {
	switch a {
	case specs.ArchX86_64:
		return abiX8664, true
	case specs.ArchX86:
		return abiI386, true
	case specs.ArchX32:
		return abiX32, true
	case specs.ArchARM, specs.ArchAARCH64, specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32,
		specs.ArchMIPSEL, specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC, specs.ArchPARISC64,
		specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K, specs.ArchSH, specs.ArchSHEB:
		return -1, true
	}
	return -1, false
}

// retAction returns the SECCOMP_RET_ value of a spec action. errnoRet
// is the errno of SCMP_ACT_ERRNO and the message a tracer sees for
// SCMP_ACT_TRACE; both default to EPERM, and other actions take none.
func retAction(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint(unix.EPERM)
	if errnoRet != nil {
		if act != specs.ActErrno && act != specs.ActTrace {
			return 0, fmt.Errorf("errnoRet is only valid with %s and %s, not %s", specs.ActErrno, specs.ActTrace, act)
		}
		data = *errnoRet
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		// The kernel caps the errno at MAX_ERRNO; refuse rather than
		// return something else than asked.
		if data > 4095 {
			return 0, fmt.Errorf("errnoRet %d is not an errno (at most 4095)", data)
		}
		return unix.SECCOMP_RET_ERRNO | uint32(data), nil
	case specs.ActTrace:
		if data > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("errnoRet %d of %s does not fit in 16 bits", data, act)
		}
		return unix.SECCOMP_RET_TRACE | uint32(data), nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	case "":
		return 0, errors.New("action is missing")
	}
	return 0, fmt.Errorf("unknown action %q", act)
}

// filterFlag returns the seccomp(2) flag to pass for a spec flag.
func filterFlag(f specs.LinuxSeccompFlag) (uintptr, error) {
	switch f {
	case "SECCOMP_FILTER_FLAG_TSYNC":
		// The filter goes on the init thread, which execs right after;
		// execve ends the other threads. Syncing it onto them (Go runtime
		// threads, still running between install and exec) would only
		// risk them hitting the container's filter.
		return 0, nil
	case specs.LinuxSeccompFlagLog:
		return unix.SECCOMP_FILTER_FLAG_LOG, nil
	case specs.LinuxSeccompFlagSpecAllow:
		return unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, nil
	case specs.LinuxSeccompFlagWaitKillableRecv:
		// Only changes how a notified call waits once the agent has
		// it (only a fatal signal ends the wait, Linux 5.19). The
		// kernel refuses it without a listener: compile passes it
		// only with SECCOMP_FILTER_FLAG_NEW_LISTENER, and a profile
		// without SCMP_ACT_NOTIFY has nothing for it to do.
		return unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, nil
	}
	return 0, fmt.Errorf("unknown flag %q", f)
}

// validOp reports whether op is an operator of the spec.
func validOp(op specs.LinuxSeccompOperator) bool {
	switch op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		return true
	}
	return false
}

// Program is a compiled filter, ready to install.
type Program struct {
	filter []unix.SockFilter
	flags  uintptr // for seccomp(2)
	// listener is the profile's listenerPath when a rule notifies: the
	// filter is then loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER, and
	// Install hands the listener on.
	listener string
}

// Flags returns the flags the program is loaded with, as seccomp(2)
// takes them.
func (p *Program) Flags() uint {
	if p == nil {
		return 0
	}
	return uint(p.flags)
}

// Listener returns the profile's listenerPath if the program notifies
// (has an SCMP_ACT_NOTIFY rule), else "".
func (p *Program) Listener() string {
	if p == nil {
		return ""
	}
	return p.listener
}

// syscallRule is one config rule as it applies to one syscall number.
type syscallRule struct {
	action uint32
	args   []specs.LinuxSeccompArg
}

// Validate checks linux.seccomp the way Compile does, so that an unknown
// syscall name, action, operator, architecture or flag fails create before
// anything exists. A nil s is valid.
func Validate(s *specs.LinuxSeccomp) error {
	_, err := Compile(s)
	return err
}

// Compile validates and compiles linux.seccomp into a BPF program;
// a nil s gives a nil program, whose Install does nothing. Errors are one
// line, start with "linux.seccomp" and name the culprit.
//
// The caller compiles in the init stage before anything is set up, and
// installs at the last moment, from the thread that execs (see Install):
// just before execve when process.noNewPrivileges is set, otherwise before
// dropping capabilities, while CAP_SYS_ADMIN is still in the effective
// set. Either way the syscalls init makes after Install (the credential
// and capability changes in the second case, and execve in both) go
// through the container's filter, so the profile must allow them, as it
// must for any runtime.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	p, err := compile(s)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	return p, nil
}

func compile(s *specs.LinuxSeccomp) (*Program, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("not supported on %s (crier's syscall table is x86's)", runtime.GOARCH)
	}
	if s.DefaultAction == "" {
		return nil, errors.New("defaultAction is missing")
	}
	defAction, err := retAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	flags, err := filterFlags(s.Flags)
	if err != nil {
		return nil, err
	}
	if s.Flags == nil {
		// As runc: a profile that gives no flags at all (not even an
		// empty list) is loaded with SPEC_ALLOW, so that the filter
		// does not also turn on the speculative store bypass
		// mitigation for the process, which costs it speed.
		flags = unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	}
	covered, err := coveredABIs(s.Architectures)
	if err != nil {
		return nil, err
	}
	rules, err := rulesByNumber(s.Syscalls, covered)
	if err != nil {
		return nil, err
	}
	notifies, err := checkNotify(s)
	if err != nil {
		return nil, err
	}
	if notifies {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	} else {
		flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	filter, err := emitFilter(covered, rules, defAction, wantsENOSYS(s))
	if err != nil {
		return nil, err
	}
	p := &Program{filter: filter, flags: flags}
	if notifies {
		p.listener = s.ListenerPath
	}
	return p, nil
}

// checkNotify reports whether a rule notifies, and refuses what runc
// refuses of SCMP_ACT_NOTIFY: as the default action, on write, and
// without a listenerPath to send the listener to. write is the call the
// process makes, once the filter is on, to tell its parent which
// descriptor the listener is (Install): notified, it would wait for an
// agent that can only learn of the listener through it. (A listenerPath
// without a notify rule is ignored, as in runc.)
func checkNotify(s *specs.LinuxSeccomp) (bool, error) {
	if s.DefaultAction == specs.ActNotify {
		return false, fmt.Errorf("defaultAction: %s cannot be used as default action", specs.ActNotify)
	}
	notifies := false
	for i, sc := range s.Syscalls {
		if sc.Action != specs.ActNotify {
			continue
		}
		notifies = true
		if slices.Contains(sc.Names, "write") {
			return false, fmt.Errorf("syscalls[%d]: %s cannot be used for the write syscall", i, specs.ActNotify)
		}
	}
	if notifies && s.ListenerPath == "" {
		return false, fmt.Errorf("%s needs a listenerPath (the seccomp agent's socket)", specs.ActNotify)
	}
	return notifies, nil
}

// NoFlags reports whether s lists its flags as none, `"flags": []`,
// which Compile tells apart from no flags field (SPEC_ALLOW, as runc):
// runtime-spec's Go type drops an empty list when encoded (omitempty), so
// whoever passes s on encoded says so beside it and the receiver calls
// KeepNoFlags.
func NoFlags(s *specs.LinuxSeccomp) bool { return s != nil && s.Flags != nil && len(s.Flags) == 0 }

// KeepNoFlags gives s back the empty flags list that NoFlags saw before s
// was encoded.
func KeepNoFlags(s *specs.LinuxSeccomp, none bool) {
	if none && s != nil && s.Flags == nil {
		s.Flags = []specs.LinuxSeccompFlag{}
	}
}

// filterFlags returns the seccomp(2) flags for the profile's flags.
func filterFlags(fs []specs.LinuxSeccompFlag) (uintptr, error) {
	var flags uintptr
	for _, f := range fs {
		flag, err := filterFlag(f)
		if err != nil {
			return 0, fmt.Errorf("flags: %w", err)
		}
		flags |= flag
	}
	return flags, nil
}

// coveredABIs says which ABIs the profile's architectures cover: x86_64
// always, i386 and x32 when listed.
func coveredABIs(archs []specs.Arch) ([numABIs]bool, error) {
	var covered [numABIs]bool
	covered[abiX8664] = true
	for _, a := range archs {
		abi, ok := archABI(a)
		if !ok {
			return covered, fmt.Errorf("architectures: unknown architecture %q", a)
		}
		if abi >= 0 {
			covered[abi] = true
		}
	}
	return covered, nil
}

// syscallRules maps a syscall number of one ABI to its rules, in config
// order.
type syscallRules map[int64][]syscallRule

// rulesByNumber checks the profile's syscalls and files each of their
// rules under its number in every covered ABI that has the call.
func rulesByNumber(syscalls []specs.LinuxSyscall, covered [numABIs]bool) ([numABIs]syscallRules, error) {
	var rules [numABIs]syscallRules
	for abi := range rules {
		rules[abi] = syscallRules{}
	}
	for i, sc := range syscalls {
		action, err := checkSyscall(i, sc)
		if err != nil {
			return rules, err
		}
		for _, name := range sc.Names {
			call, ok := lookupSyscall(name)
			if !ok {
				return rules, fmt.Errorf("syscalls[%d]: unknown syscall %q", i, name)
			}
			for abi := range numABIs {
				// A name that the ABI lacks (socketcall on x86_64, an
				// ARM-only call anywhere) has nothing to filter there.
				if nr := abi.number(call); covered[abi] && nr >= 0 {
					rules[abi][nr] = append(rules[abi][nr], splitRule(action, sc.Args)...)
				}
			}
		}
	}
	return rules, nil
}

// splitRule is the rule of one entry of syscalls: its conditions all
// hold (AND), unless two of them compare the same argument. Then, as in
// runc, each condition is a rule of its own (OR): profiles written for
// runc list the values one argument may take that way
// (`{"index": 0, "value": 100}, {"index": 0, "value": 9001}`), which
// ANDed could never match.
func splitRule(action uint32, args []specs.LinuxSeccompArg) []syscallRule {
	var seen [6]bool
	repeated := false
	for _, a := range args {
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return []syscallRule{{action, args}}
	}
	rules := make([]syscallRule, len(args))
	for i := range args {
		rules[i] = syscallRule{action, args[i : i+1]}
	}
	return rules
}

// checkSyscall checks syscalls[i] but its names, which rulesByNumber
// looks up, and returns its SECCOMP_RET_ value.
func checkSyscall(i int, sc specs.LinuxSyscall) (uint32, error) {
	action, err := retAction(sc.Action, sc.ErrnoRet)
	if err != nil {
		return 0, fmt.Errorf("syscalls[%d]: %w", i, err)
	}
	for j, a := range sc.Args {
		if a.Index > 5 {
			return 0, fmt.Errorf("syscalls[%d].args[%d]: index %d is not an argument (0 to 5)", i, j, a.Index)
		}
		if !validOp(a.Op) {
			return 0, fmt.Errorf("syscalls[%d].args[%d]: unknown operator %q", i, j, a.Op)
		}
	}
	if len(sc.Names) == 0 {
		return 0, fmt.Errorf("syscalls[%d]: names is empty", i)
	}
	return action, nil
}

// retENOSYS fails a call with ENOSYS, as a kernel without it would.
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// wantsENOSYS reports whether calls newer than the profile fail with
// ENOSYS rather than take its default action, as in runc: a profile that
// denies what it does not name was written without the calls added since,
// and a C library tries a new call (clone3, faccessat2, close_range) and
// falls back to the old one only on ENOSYS; EPERM it takes as a refusal.
// Not when the default already lets calls through (allow, log, trace: a
// tracer handles ENOSYS itself), nor when it already is ENOSYS.
func wantsENOSYS(s *specs.LinuxSeccomp) bool {
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		return false
	}
	return s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != uint(unix.ENOSYS)
}

// emitFilter assembles the program laid out at the top of this file: the
// dispatch on the audit arch and the x32 bit, then one section per
// covered ABI. With enosys, each section fails with ENOSYS the numbers
// above the highest one the profile names in its ABI.
func emitFilter(covered [numABIs]bool, rules [numABIs]syscallRules, defAction uint32, enosys bool) ([]unix.SockFilter, error) {
	var b cbpfBuilder
	sections := [numABIs]int{b.newLabel(), b.newLabel(), b.newLabel()}
	native := b.newLabel()
	b.load(offArch)
	if covered[abiI386] {
		b.jumpIf(unix.BPF_JEQ, unix.AUDIT_ARCH_I386, sections[abiI386])
	}
	b.jump(unix.BPF_JEQ, unix.AUDIT_ARCH_X86_64, native, cbpfNext)
	b.emitRet(unix.SECCOMP_RET_KILL_PROCESS)
	b.bind(native)
	b.load(offNr)
	b.jump(unix.BPF_JGE, 0x80000000, sections[abiX8664], cbpfNext)
	b.jump(unix.BPF_JGE, x32SyscallBit, cbpfNext, sections[abiX8664])
	if covered[abiX32] {
		b.ja(sections[abiX32])
	} else {
		b.emitRet(unix.SECCOMP_RET_KILL_PROCESS)
	}
	// The x86_64 section comes first, right here, with nr in A; the x32
	// one also finds it there, the i386 one loads it.
	for abi := range numABIs {
		if !covered[abi] {
			continue
		}
		b.bind(sections[abi])
		if abi == abiI386 {
			b.load(offNr)
		}
		b.section(rules[abi], defAction, abi != abiI386, enosys)
	}
	return b.assemble()
}

// Offsets in struct seccomp_data, little-endian.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[6] of u64
)

// section emits the dispatch on the syscall number (in A) and the rules of
// one ABI; with enosys, a number above every one the rules name (a call
// newer than the profile, or none at all) fails with ENOSYS. An ABI whose
// rules name nothing has no such bound and keeps the default action.
func (b *cbpfBuilder) section(rules syscallRules, defAction uint32, wide, enosys bool) {
	nrs := make([]int64, 0, len(rules))
	for nr := range rules {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	bodies := make([]int, len(nrs))
	for i, nr := range nrs {
		if r := rules[nr]; len(r[0].args) == 0 {
			// Unconditional first rule: it decides, the others are dead.
			b.retIf(unix.BPF_JEQ, uint32(nr), r[0].action)
			continue
		}
		bodies[i] = b.newLabel()
		b.jumpIf(unix.BPF_JEQ, uint32(nr), bodies[i])
	}
	if enosys && len(nrs) > 0 {
		b.retIf(unix.BPF_JGT, uint32(nrs[len(nrs)-1]), retENOSYS)
	}
	b.emitRet(defAction)
	for i, nr := range nrs {
		if len(rules[nr][0].args) == 0 {
			continue
		}
		b.bind(bodies[i])
		b.rules(rules[nr], defAction, wide)
	}
}

// rules emits a syscall's rules: the first whose args all match returns
// its action; if none does, the default action.
func (b *cbpfBuilder) rules(rules []syscallRule, defAction uint32, wide bool) {
	for _, r := range rules {
		if len(r.args) == 0 {
			b.emitRet(r.action)
			return
		}
		next := b.newLabel()
		for _, a := range r.args {
			b.arg(a, wide, next)
		}
		b.emitRet(r.action)
		b.bind(next)
	}
	b.emitRet(defAction)
}

// arg emits a check of one argument condition that falls through when it
// holds and jumps to fail when it does not. A 64-bit comparison decides on
// the high words when they differ and on the low words when they are
// equal; BPF jumps compare unsigned, as the spec's operators do.
func (b *cbpfBuilder) arg(a specs.LinuxSeccompArg, wide bool, fail int) {
	ok := b.newLabel()
	lo := offArgs + 8*uint32(a.Index)
	v := a.Value
	if wide {
		hi := uint32(v >> 32)
		b.load(lo + 4)
		switch a.Op {
		case specs.OpEqualTo:
			b.jump(unix.BPF_JEQ, hi, cbpfNext, fail)
		case specs.OpNotEqual:
			b.jump(unix.BPF_JEQ, hi, cbpfNext, ok)
		case specs.OpGreaterThan, specs.OpGreaterEqual:
			b.jump(unix.BPF_JGT, hi, ok, cbpfNext)
			b.jump(unix.BPF_JEQ, hi, cbpfNext, fail)
		case specs.OpLessThan, specs.OpLessEqual:
			b.jump(unix.BPF_JGT, hi, fail, cbpfNext)
			b.jump(unix.BPF_JEQ, hi, cbpfNext, ok)
		case specs.OpMaskedEqual:
			b.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, hi)
			b.jump(unix.BPF_JEQ, uint32(a.ValueTwo>>32), cbpfNext, fail)
		}
	}
	low := uint32(v)
	b.load(lo)
	switch a.Op {
	case specs.OpEqualTo:
		b.jump(unix.BPF_JEQ, low, cbpfNext, fail)
	case specs.OpNotEqual:
		b.jump(unix.BPF_JEQ, low, fail, cbpfNext)
	case specs.OpGreaterThan:
		b.jump(unix.BPF_JGT, low, cbpfNext, fail)
	case specs.OpGreaterEqual:
		b.jump(unix.BPF_JGE, low, cbpfNext, fail)
	case specs.OpLessThan:
		b.jump(unix.BPF_JGE, low, fail, cbpfNext)
	case specs.OpLessEqual:
		b.jump(unix.BPF_JGT, low, fail, cbpfNext)
	case specs.OpMaskedEqual:
		b.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, low)
		b.jump(unix.BPF_JEQ, uint32(a.ValueTwo), cbpfNext, fail)
	}
	b.bind(ok)
}

// Handoff is given the descriptor of a notifying program's listener,
// right after Install has loaded the filter on the calling thread, and
// must get it to the seccomp agent. Until the agent has it, any call the
// filter notifies waits for good: handoff may only write (which a
// profile cannot notify, see checkNotify) until someone outside the
// filter has taken the listener.
type Handoff func(listener int) error

// Install loads the program into the calling thread with seccomp(2)
// SECCOMP_SET_MODE_FILTER and the profile's flags, without TSYNC: the
// caller execs from this same locked thread right after, and execve
// carries this thread's filter into the new program. The thread needs
// no_new_privs or CAP_SYS_ADMIN in its effective set. Installing a nil
// program does nothing.
//
// A program that notifies is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER;
// Install calls handoff with the listener, then closes it: the process
// must not keep it (it could answer its own calls), and once the agent
// has closed its copy, the kernel fails the notified calls with ENOSYS.
func (p *Program) Install(handoff Handoff) error {
	if p == nil {
		return nil
	}
	if p.listener != "" && handoff == nil {
		return errors.New("seccomp: the profile notifies, and nothing takes the listener")
	}
	prog := unix.SockFprog{Len: uint16(len(p.filter)), Filter: &p.filter[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, p.flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	if e == unix.EACCES {
		return fmt.Errorf("seccomp: %w (needs no_new_privs or CAP_SYS_ADMIN)", e)
	}
	if e != 0 {
		return os.NewSyscallError("seccomp", e)
	}
	if p.listener == "" {
		return nil
	}
	// The kernel made the listener close-on-exec.
	fd := int(r)
	err := handoff(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("seccomp: hand the listener to the agent: %w", err)
	}
	return nil
}

// cbpfBuilder assembles a classic BPF program with forward jumps to labels.
type cbpfBuilder struct {
	prog   []unix.SockFilter
	labels []int // instruction index of each label, -1 until bound
	refs   []cbpfRef
}

// cbpfRef is a jump field waiting for its label's address.
type cbpfRef struct {
	at, label int
	field     byte // 't' or 'f' for a conditional jump, 'k' for ja
}

// cbpfNext as a jump target means the next instruction.
const cbpfNext = -1

// cbpfMaxInsns is the kernel's BPF_MAXINSNS.
const cbpfMaxInsns = 4096

func (b *cbpfBuilder) newLabel() int {
	b.labels = append(b.labels, -1)
	return len(b.labels) - 1
}

// bind places label l at the next instruction.
func (b *cbpfBuilder) bind(l int) { b.labels[l] = len(b.prog) }

func (b *cbpfBuilder) stmt(code uint16, k uint32) {
	b.prog = append(b.prog, unix.SockFilter{Code: code, K: k})
}

// load loads the 32-bit word at off in seccomp_data into A.
func (b *cbpfBuilder) load(off uint32) { b.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }

func (b *cbpfBuilder) emitRet(v uint32) { b.stmt(unix.BPF_RET|unix.BPF_K, v) }

// jump emits "if A op k goto jt else goto jf".
func (b *cbpfBuilder) jump(op uint16, k uint32, jt, jf int) {
	at := len(b.prog)
	b.stmt(unix.BPF_JMP|op|unix.BPF_K, k)
	if jt != cbpfNext {
		b.refs = append(b.refs, cbpfRef{at, jt, 't'})
	}
	if jf != cbpfNext {
		b.refs = append(b.refs, cbpfRef{at, jf, 'f'})
	}
}

// ja emits an unconditional jump, which reaches any distance.
func (b *cbpfBuilder) ja(l int) {
	b.refs = append(b.refs, cbpfRef{len(b.prog), l, 'k'})
	b.stmt(unix.BPF_JMP|unix.BPF_JA, 0)
}

// jumpIf emits "if A op k goto l" for a label that may be far away.
func (b *cbpfBuilder) jumpIf(op uint16, k uint32, l int) {
	skip := b.newLabel()
	b.jump(op, k, cbpfNext, skip)
	b.ja(l)
	b.bind(skip)
}

// retIf emits "if A op k return v".
func (b *cbpfBuilder) retIf(op uint16, k, v uint32) {
	skip := b.newLabel()
	b.jump(op, k, cbpfNext, skip)
	b.emitRet(v)
	b.bind(skip)
}

// assemble resolves the jumps. Conditional jumps reach 255 instructions,
// which only a rule with dozens of args can exceed.
func (b *cbpfBuilder) assemble() ([]unix.SockFilter, error) {
	if len(b.prog) > cbpfMaxInsns {
		return nil, fmt.Errorf("the filter needs %d BPF instructions, more than the kernel's %d", len(b.prog), cbpfMaxInsns)
	}
	for _, r := range b.refs {
		target := b.labels[r.label]
		off := target - (r.at + 1)
		if target < 0 || off < 0 || target >= len(b.prog) {
			panic("seccomp: bad BPF label") // a bug in this file
		}
		switch {
		case r.field == 'k':
			b.prog[r.at].K = uint32(off)
		case off > 255:
			return nil, fmt.Errorf("a rule has too many args (a BPF jump of %d instructions)", off)
		case r.field == 't':
			b.prog[r.at].Jt = uint8(off)
		default:
			b.prog[r.at].Jf = uint8(off)
		}
	}
	return b.prog, nil
}
