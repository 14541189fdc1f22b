package cgroup

import specs "github.com/opencontainers/runtime-spec/specs-go"

// withZeroAsUnset returns r with every field that runc reads as "not set"
// when it is zero set to nil, so that crier writes what runc writes for
// the same config. Engines rely on it: docker's default spec carries
// "blockIO": {"weight": 0} and "cpu": {"shares": 0}, which runc leaves
// alone and which would otherwise fail where the file does not exist
// (blkio.weight without BFQ) or refuse the value (cpu.shares 0).
//
// Zero keeps its meaning where it has one: cpu.idle, cpu.burst, memory
// swappiness, pids, and the per-device lists. r is not modified; the parts
// that change are copied.
func withZeroAsUnset(r *specs.LinuxResources) *specs.LinuxResources {
	if r == nil {
		return nil
	}
	out := *r
	if c := r.CPU; c != nil {
		cpu := *c
		cpu.Shares = nonZero(cpu.Shares)
		cpu.Quota = nonZero(cpu.Quota)
		cpu.Period = nonZero(cpu.Period)
		cpu.RealtimeRuntime = nonZero(cpu.RealtimeRuntime)
		cpu.RealtimePeriod = nonZero(cpu.RealtimePeriod)
		out.CPU = &cpu
	}
	if m := r.Memory; m != nil {
		mem := *m
		mem.Limit = nonZero(mem.Limit)
		mem.Reservation = nonZero(mem.Reservation)
		mem.Swap = nonZero(mem.Swap)
		mem.Kernel = nonZero(mem.Kernel)
		mem.KernelTCP = nonZero(mem.KernelTCP)
		out.Memory = &mem
	}
	if b := r.BlockIO; b != nil {
		blkio := *b
		blkio.Weight = nonZero(blkio.Weight)
		blkio.LeafWeight = nonZero(blkio.LeafWeight)
		out.BlockIO = &blkio
	}
	if n := r.Network; n != nil {
		network := *n
		network.ClassID = nonZero(network.ClassID)
		out.Network = &network
	}
	return &out
}

// nonZero returns p, or nil when it points at zero.
func nonZero[T comparable](p *T) *T {
	var zero T
	if p == nil || *p == zero {
		return nil
	}
	return p
}
