package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/container/cgroup"
	"github.com/crier-runtime/crier/protocol"
)

// updateFlag is one of runc's update flags: the resource field it sets
// and how its value is parsed.
type updateFlag struct {
	name  string
	field string // the JSON path ValidateUpdate names
	usage string
	set   func(r *specs.LinuxResources, value string) error
}

// updateFlags are runc's, with runc's units. A flag given as 0 (or "")
// leaves its value alone, as in runc, except where zero means something
// (--cpu-idle, --pids-limit).
func updateFlags() []updateFlag {
	return []updateFlag{
		{"blkio-weight", "blockIO.weight", "block I/O weight, 10 to 1000", setUint(16, func(r *specs.LinuxResources) **uint16 { return &blkio(r).Weight })},
		{"cpu-period", "cpu.period", "CFS period in microseconds", setU64(func(r *specs.LinuxResources) **uint64 { return &cpu(r).Period })},
		{"cpu-quota", "cpu.quota", "CFS quota in microseconds per period; -1 for none", setI64(func(r *specs.LinuxResources) **int64 { return &cpu(r).Quota })},
		{"cpu-burst", "cpu.burst", "CFS burst in microseconds", setU64(func(r *specs.LinuxResources) **uint64 { return &cpu(r).Burst })},
		{"cpu-share", "cpu.shares", "CPU shares (relative weight)", setU64(func(r *specs.LinuxResources) **uint64 { return &cpu(r).Shares })},
		{"cpu-rt-period", "cpu.realtimePeriod", "real-time period in microseconds", setU64(func(r *specs.LinuxResources) **uint64 { return &cpu(r).RealtimePeriod })},
		{"cpu-rt-runtime", "cpu.realtimeRuntime", "real-time runtime in microseconds per period", setI64(func(r *specs.LinuxResources) **int64 { return &cpu(r).RealtimeRuntime })},
		{"cpu-idle", "cpu.idle", "1 for SCHED_IDLE, 0 for the default", setIdle},
		{"cpuset-cpus", "cpu.cpus", "CPUs to run on (e.g. 0-3,5)", func(r *specs.LinuxResources, v string) error { cpu(r).Cpus = v; return nil }},
		{"cpuset-mems", "cpu.mems", "memory nodes to use (e.g. 0-1)", func(r *specs.LinuxResources, v string) error { cpu(r).Mems = v; return nil }},
		{"memory", "memory.limit", "memory limit (bytes, or with a unit: 10M, 1.5g); -1 for none", setMemory(func(m *specs.LinuxMemory) **int64 { return &m.Limit })},
		{"memory-reservation", "memory.reservation", "memory soft limit (as --memory)", setMemory(func(m *specs.LinuxMemory) **int64 { return &m.Reservation })},
		{"memory-swap", "memory.swap", "memory plus swap limit (as --memory); -1 for no swap limit", setMemory(func(m *specs.LinuxMemory) **int64 { return &m.Swap })},
		{"pids-limit", "pids.limit", "maximum number of tasks; -1 for none", setPids},
	}
}

func cpu(r *specs.LinuxResources) *specs.LinuxCPU {
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func memory(r *specs.LinuxResources) *specs.LinuxMemory {
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func blkio(r *specs.LinuxResources) *specs.LinuxBlockIO {
	if r.BlockIO == nil {
		r.BlockIO = &specs.LinuxBlockIO{}
	}
	return r.BlockIO
}

func setU64(field func(*specs.LinuxResources) **uint64) func(*specs.LinuxResources, string) error {
	return func(r *specs.LinuxResources, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer", v)
		}
		*field(r) = &n
		return nil
	}
}

func setUint(bits int, field func(*specs.LinuxResources) **uint16) func(*specs.LinuxResources, string) error {
	return func(r *specs.LinuxResources, v string) error {
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return fmt.Errorf("%q is not an integer from 0 to %d", v, uint64(1)<<bits-1)
		}
		u := uint16(n)
		*field(r) = &u
		return nil
	}
}

func setI64(field func(*specs.LinuxResources) **int64) func(*specs.LinuxResources, string) error {
	return func(r *specs.LinuxResources, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*field(r) = &n
		return nil
	}
}

func setIdle(r *specs.LinuxResources, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", v)
	}
	cpu(r).Idle = &n
	return nil
}

func setMemory(field func(*specs.LinuxMemory) **int64) func(*specs.LinuxResources, string) error {
	return func(r *specs.LinuxResources, v string) error {
		n, err := parseBytes(v)
		if err != nil {
			return err
		}
		*field(memory(r)) = &n
		return nil
	}
}

// setPids takes runc's --pids-limit, given: a negative value lifts the
// limit, and 0 is kept, which the cgroup makes a limit of 1, as runc 1.5
// does.
func setPids(r *specs.LinuxResources, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", v)
	}
	if n < 0 {
		n = -1
	}
	r.Pids = &specs.LinuxPids{Limit: &n}
	return nil
}

// parseBytes parses a memory size as runc does (docker's RAMInBytes): a
// number, possibly with a fraction, then optionally a blank and a binary
// unit k, m, g, t or p in either case, with an optional "i" and "b"
// ("10M", "10mb", "1.5 GiB", "512b"); or -1 for no limit.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	bad := fmt.Errorf("%q is not a size: a number of bytes, optionally with a unit k, m, g, t or p (powers of 1024, e.g. 10M), or -1 for no limit", s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9') })
	unit := strings.ToLower(strings.TrimPrefix(s[len(num):], " "))
	if num == "" || strings.Count(num, ".") > 1 || num[0] == '.' || strings.ContainsAny(num, "+-eE ") {
		return 0, bad
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, bad
	}
	mult := 1.0
	if unit != "" && strings.Contains("kmgtp", unit[:1]) {
		mult = math.Pow(1024, float64(strings.Index("kmgtp", unit[:1])+1))
		unit = strings.TrimPrefix(unit[1:], "i")
	}
	if unit != "" && unit != "b" {
		return 0, bad
	}
	v *= mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

type updateOptions struct {
	resources string
	values    map[string]*string
	l3Cache   string
	memBW     string
	kmem      string
	kmemTCP   string
}

func (a *app) updateCommand() *cobra.Command {
	cmd, _ := a.newUpdateCommand()
	return cmd
}

// newUpdateCommand returns the command and the options its flags fill.
func (a *app) newUpdateCommand() (*cobra.Command, *updateOptions) {
	o := &updateOptions{values: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "update [flags] ID",
		Short: "change the resource limits of a running container",
		Long: `update changes a container's cgroup limits, from flags (runc's, with runc's
units: --memory 10M) or from a JSON linux.resources object in a file or on
stdin (-r FILE, -r -), in which case the flags are ignored, as in runc.
Every value is checked before any is written, so a refused update changes
nothing. Device rules in -r are checked but not applied, as in runc.`,
		Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.request(cmd)
			if err != nil {
				return err
			}
			return a.update(args[0], r, o.resources != "")
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.resources, "resources", "r", "", "JSON linux.resources to apply, from a file or - for stdin (the other flags are then ignored)")
	for _, u := range updateFlags() {
		o.values[u.name] = f.String(u.name, "", u.usage)
	}
	f.StringVar(&o.l3Cache, "l3-cache-schema", "", "Intel RDT L3 cache schema (not supported: crier has no RDT)")
	f.StringVar(&o.memBW, "mem-bw-schema", "", "Intel RDT memory bandwidth schema (not supported: crier has no RDT)")
	f.StringVar(&o.kmem, "kernel-memory", "", "obsolete; ignored, as in runc")
	f.StringVar(&o.kmemTCP, "kernel-memory-tcp", "", "obsolete; ignored, as in runc")
	f.MarkHidden("kernel-memory")
	f.MarkHidden("kernel-memory-tcp")
	return cmd, o
}

// request builds the update from -r or from the flags.
func (o *updateOptions) request(cmd *cobra.Command) (*specs.LinuxResources, error) {
	for _, f := range []struct{ name, value string }{{"l3-cache-schema", o.l3Cache}, {"mem-bw-schema", o.memBW}} {
		if f.value != "" {
			return nil, fmt.Errorf("--%s: Intel RDT is not supported by crier", f.name)
		}
	}
	for _, name := range []string{"kernel-memory", "kernel-memory-tcp"} {
		if cmd.Flags().Changed(name) {
			fmt.Fprintf(os.Stderr, "crier: warning: --%s is obsolete and ignored\n", name)
		}
	}
	if o.resources != "" {
		return readResources(o.resources)
	}
	r := &specs.LinuxResources{}
	for _, u := range updateFlags() {
		v := *o.values[u.name]
		if v == "" {
			continue
		}
		if err := u.set(r, v); err != nil {
			return nil, fmt.Errorf("--%s: %w", u.name, err)
		}
	}
	return r, nil
}

// readResources decodes a JSON linux.resources from path, or stdin for "-".
func readResources(path string) (*specs.LinuxResources, error) {
	var in io.Reader = os.Stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("update -r: %w", err)
		}
		defer f.Close()
		in, name = f, path
	}
	var r specs.LinuxResources
	if err := json.NewDecoder(in).Decode(&r); err != nil {
		return nil, fmt.Errorf("update -r: %s: %w", name, err)
	}
	return &r, nil
}

// update applies r to the container's cgroups. A refused value is named
// by its flag, or by its JSON path in -r's input.
func (a *app) update(id string, r *specs.LinuxResources, fromFile bool) error {
	st, _, err := a.readState(id)
	if err != nil {
		return err
	}
	if st.Status == protocol.StatusStopped {
		return fmt.Errorf("container %q is not running", id)
	}
	if st.Cgroup == nil {
		return fmt.Errorf("container %q has no cgroups recorded in its state", id)
	}
	if len(r.Devices) > 0 && cgroup.ValidateUpdate(&specs.LinuxResources{Devices: r.Devices}) == nil {
		fmt.Fprintln(os.Stderr, "crier: warning: update: device rules are checked but not applied (as in runc)")
	}
	err = st.Cgroup.Update(r)
	var fe *cgroup.FieldError
	if errors.As(err, &fe) {
		if fromFile {
			return fmt.Errorf("update -r: %s", fe)
		}
		for _, u := range updateFlags() {
			if u.field == fe.Field {
				return fmt.Errorf("--%s: %s", u.name, fe.Msg)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	return nil
}
