// Package seccomp turns an OCI runtime-spec linux.seccomp profile into a
// classic BPF program for seccomp(2) and installs it.
//
// Its API is what a runtime needs at three moments:
//
//   - Validate, when the config is checked at create, so that an unknown
//     syscall, action, operator, architecture or flag fails before
//     anything exists;
//   - Compile, in the container's init stage before anything is set up,
//     giving a Program;
//   - Program.Install, at the last moment, on the thread that then execs
//     the user's process (execve carries that thread's filter over).
//
// Actions, Operators, Archs and Flags list what Compile accepts, for
// `crier features`.
//
// It is pure Go rather than a binding to libseccomp so that crier and
// crier-shim stay static, cgo-free binaries: the compiler is a few
// hundred lines, and the syscall numbers come from a table generated from
// golang.org/x/sys and the kernel's x32 header (mktable.go, go generate).
//
// The filter is for x86_64 kernels and handles their three ABIs per
// profile. x86_64 is always filtered. x32 calls (x86_64 arch, number with
// bit 30 set) get their own section when the profile lists SCMP_ARCH_X32
// and kill the process otherwise, so that a deny list cannot be bypassed
// through the x32 numbers. i386 calls (int $0x80) are filtered, with
// 32-bit argument comparisons, when the profile lists SCMP_ARCH_X86, and
// kill the process otherwise. Other architectures are accepted and have
// nothing to filter. Built for another GOARCH, Compile returns an error.
package seccomp
