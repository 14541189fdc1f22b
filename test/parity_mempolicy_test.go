package test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// This file tests linux.memoryPolicy (runc's memorypolicy.bats): the
// init and every exec'd process run under the config's NUMA memory
// policy, and a policy that set_mempolicy(2) could not take fails create
// in runc's words ("invalid memory policy ...").

// numaPolicyScript prints the policy of the process's first mapping, as
// /proc/self/numa_maps shows it ("interleave:0", "bind=static:0",
// "default").
const numaPolicyScript = `echo "policy=$(head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2)"`

func memoryPolicy(mode string, nodes string, flags ...string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		mp := &specs.LinuxMemoryPolicy{Mode: specs.MemoryPolicyModeType(mode), Nodes: nodes}
		for _, f := range flags {
			mp.Flags = append(mp.Flags, specs.MemoryPolicyFlagType(f))
		}
		s.Linux.MemoryPolicy = mp
	}
}

func TestParityMemoryPolicyInit(t *testing.T) {
	for _, tc := range []struct {
		name, mode, nodes string
		flags             []string
		want              string
	}{
		{"interleave", "MPOL_INTERLEAVE", "0", nil, "interleave:0"},
		{"bind static", "MPOL_BIND", "0", []string{"MPOL_F_STATIC_NODES"}, "bind=static:0"},
		{"preferred relative", "MPOL_PREFERRED", "0", []string{"MPOL_F_RELATIVE_NODES"}, "prefer=relative:0"},
		{"default", "MPOL_DEFAULT", "", nil, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			kv := e.runScript(numaPolicyScript, memoryPolicy(tc.mode, tc.nodes, tc.flags...))
			wantKV(t, kv, "policy", tc.want)
		})
	}
}

// TestParityMemoryPolicyExec: an exec'd process gets the container's
// policy too (it is not the child of the init, which set it).
func TestParityMemoryPolicyExec(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.create(id, e.bundle([]string{"sleep", "100"}, memoryPolicy("MPOL_PREFERRED", "0", "MPOL_F_RELATIVE_NODES")))
	e.cliOK("start", id)
	kv := keyValues(e.cliOK("exec", id, "sh", "-c", numaPolicyScript).stdout)
	wantKV(t, kv, "policy", "prefer=relative:0")
	e.cliOK("delete", "--force", id)
}

func TestParityMemoryPolicyInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, mode, nodes string
		flags             []string
		want              string
	}{
		{"empty", "", "", nil, "invalid memory policy mode"},
		{"unknown mode", "INTERLEAVE", "0", nil, `invalid memory policy mode "INTERLEAVE"`},
		{"unknown flag", "MPOL_PREFERRED", "0", []string{"MPOL_F_RELATIVE_NODES", "badflag"}, `invalid memory policy flag "badflag"`},
		{"default with nodes", "MPOL_DEFAULT", "0-7", nil, "MPOL_DEFAULT mode requires 0 nodes but got 8"},
		{"node too large", "MPOL_BIND", "0-9876543210", nil, "invalid memory policy node"},
		{"not a node", "MPOL_BIND", "0,x", nil, "invalid memory policy node"},
		{"bind without nodes", "MPOL_BIND", "", nil, "MPOL_BIND mode requires at least 1 node"},
		{"static and relative", "MPOL_BIND", "0", []string{"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"}, "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCreateFails(t, memoryPolicy(tc.mode, tc.nodes, tc.flags...), "linux.memoryPolicy: ", tc.want)
		})
	}
}

// TestParityMemoryPolicyKernelRefuses: a policy that passes the checks
// but the kernel refuses (nodes this machine does not have) fails create
// with set_mempolicy's error, and leaves nothing behind.
func TestParityMemoryPolicyKernelRefuses(t *testing.T) {
	wantCreateFails(t, memoryPolicy("MPOL_BIND", "1000"), "set_mempolicy MPOL_BIND", "invalid argument")
}

func TestParityMemoryPolicyFeatures(t *testing.T) {
	e := newEnv(t)
	var f features.Features
	if err := json.Unmarshal([]byte(e.cliOK("features").stdout), &f); err != nil {
		t.Fatal(err)
	}
	mp := f.Linux.MemoryPolicy
	if mp == nil {
		t.Fatal("features: no linux.memoryPolicy")
	}
	for _, m := range []string{"MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED", "MPOL_LOCAL", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"} {
		if !slices.Contains(mp.Modes, m) {
			t.Errorf("features: mode %s missing from %v", m, mp.Modes)
		}
	}
	if want := []string{"MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"}; !slices.Equal(mp.Flags, want) {
		t.Errorf("features: flags %v, want %s", mp.Flags, strings.Join(want, " "))
	}
}
