package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	const k, m, g = 1 << 10, 1 << 20, 1 << 30
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"-1", -1, true}, {"0", 0, true}, {"1024", 1024, true}, {"67108864", 67108864, true},
		{"10M", 10 * m, true}, {"10m", 10 * m, true}, {"50M", 52428800, true}, {"10MB", 10 * m, true},
		{"10mb", 10 * m, true}, {"10MiB", 10 * m, true}, {"10 MiB", 10 * m, true}, {"1.5g", 3 * g / 2, true},
		{"1k", k, true}, {"1K", k, true}, {"2t", 2 << 40, true}, {"1p", 1 << 50, true}, {"512b", 512, true},
		{"512B", 512, true},
		{"", 0, false}, {"abc", 0, false}, {"10X", 0, false}, {"-2", 0, false}, {"-1M", 0, false},
		{"1.2.3", 0, false}, {".5m", 0, false}, {"1e3", 0, false}, {"10  M", 0, false}, {" 10", 0, false},
		{"10Mx", 0, false}, {"10ib", 0, false}, {"9999999p", 0, false}, {"M", 0, false},
	}
	for _, tt := range tests {
		got, err := parseBytes(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("parseBytes(%q): error %q is not one line", tt.in, err)
		}
	}
}

// TestUpdateRequest checks how runc's flags become linux.resources: only
// what is given, zero as "leave alone" where runc reads it so, and each
// bad value refused naming its flag.
func TestUpdateRequest(t *testing.T) {
	tests := []struct {
		args    []string
		want    string // the request as JSON
		wantErr string
	}{
		{nil, `{}`, ""},
		{[]string{"--memory", "10M"}, `{"memory":{"limit":10485760}}`, ""},
		{[]string{"--memory", "-1", "--memory-swap", "-1"}, `{"memory":{"limit":-1,"swap":-1}}`, ""},
		{[]string{"--memory-reservation", "1k"}, `{"memory":{"reservation":1024}}`, ""},
		{[]string{"--cpu-share", "512", "--cpu-period", "100000", "--cpu-quota", "-1"},
			`{"cpu":{"shares":512,"quota":-1,"period":100000}}`, ""},
		{[]string{"--cpu-rt-period", "1000000", "--cpu-rt-runtime", "950000"},
			`{"cpu":{"realtimeRuntime":950000,"realtimePeriod":1000000}}`, ""},
		{[]string{"--cpuset-cpus", "0-1", "--cpuset-mems", "0"}, `{"cpu":{"cpus":"0-1","mems":"0"}}`, ""},
		{[]string{"--cpu-idle", "1", "--cpu-burst", "10"}, `{"cpu":{"burst":10,"idle":1}}`, ""},
		{[]string{"--blkio-weight", "300"}, `{"blockIO":{"weight":300}}`, ""},
		{[]string{"--pids-limit", "20"}, `{"pids":{"limit":20}}`, ""},
		{[]string{"--pids-limit", "-5"}, `{"pids":{"limit":-1}}`, ""},
		{[]string{"--pids-limit", "0"}, `{"pids":{"limit":0}}`, ""},
		{[]string{"--memory", "10X"}, "", `--memory: "10X" is not a size`},
		{[]string{"--memory-swap", "lots"}, "", `--memory-swap: "lots" is not a size`},
		{[]string{"--cpu-period", "abc"}, "", `--cpu-period: "abc" is not a non-negative integer`},
		{[]string{"--cpu-quota", "1.5"}, "", `--cpu-quota: "1.5" is not an integer`},
		{[]string{"--blkio-weight", "70000"}, "", `--blkio-weight: "70000" is not an integer from 0 to 65535`},
		{[]string{"--pids-limit", "x"}, "", `--pids-limit: "x" is not an integer`},
		{[]string{"--l3-cache-schema", "L3:0=f"}, "", "--l3-cache-schema: Intel RDT is not supported by crier"},
		{[]string{"--mem-bw-schema", "MB:0=70"}, "", "--mem-bw-schema: Intel RDT is not supported by crier"},
	}
	for _, tt := range tests {
		cmd, o := (&app{}).newUpdateCommand()
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		r, err := o.request(cmd)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("%v: got error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		b, _ := json.Marshal(r)
		if string(b) != tt.want {
			t.Errorf("%v: got %s, want %s", tt.args, b, tt.want)
		}
	}
}

func TestFilterPsTable(t *testing.T) {
	table := `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242    4200  0 10:01 ?        00:00:00 sleep 1000
root        4243    4242  0 10:01 ?        00:00:00 sh -c sleep 5 & wait
root       14242       1  0 10:01 ?        00:00:00 other 4242
`
	var out strings.Builder
	if err := filterPsTable(table, []int{4242, 4243}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "sleep 1000") || !strings.Contains(lines[2], "sh -c") {
		t.Errorf("got\n%s", out.String())
	}
	if err := filterPsTable("  TTY CMD\n ? sh\n", []int{1}, &out); err == nil || !strings.Contains(err.Error(), "no PID column") {
		t.Errorf("no PID column: got %v", err)
	}
	if err := filterPsTable("  PID CMD\n abc sh\n", []int{1}, &out); err == nil {
		t.Error("a PID that is not a number: no error")
	}
}
