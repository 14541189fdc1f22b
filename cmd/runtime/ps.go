package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/protocol"
)

func (a *app) psCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [--format table|json] ID [ps options]",
		Short: "list the processes in a container's cgroup",
		Long: `ps lists the processes in the container's cgroup (and the cgroups below it).
With --format json it prints their host pids as a JSON array (and, as
runc, ignores ps options). With the
default table format it runs the host's ps with the given options (default
-ef) and keeps the header and the lines of the container's processes.
Options after the ID go to ps, not to crier.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return errors.New("ps: expects a container ID")
			}
			return checkID(args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("ps: --format %q is not table or json", format)
			}
			return a.ps(args[0], format, args[1:], os.Stdout)
		},
	}
	// Everything after the ID is for ps(1): `crier ps ID -e -x`.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}

// ps prints the container's processes. A stopped container whose cgroup
// is still there has none, as with runc (which lists it empty).
func (a *app) ps(id, format string, psArgs []string, out io.Writer) error {
	pids, err := a.containerPids(id)
	if err != nil {
		return err
	}
	if format == "json" {
		b, err := json.Marshal(pids)
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	cmd := exec.Command("ps", psArgs...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	table, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w: %s", strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()))
	}
	return filterPsTable(string(table), pids, out)
}

// containerPids lists the processes in the container's cgroups; never
// nil, so that none prints as [].
func (a *app) containerPids(id string) ([]int, error) {
	st, _, err := a.readState(id)
	if err != nil {
		return nil, err
	}
	if st.Cgroup == nil {
		return nil, fmt.Errorf("container %q has no cgroups recorded in its state", id)
	}
	pids, err := st.Cgroup.Pids()
	if errors.Is(err, fs.ErrNotExist) && st.Status == protocol.StatusStopped {
		return []int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ps %s: %w", id, err)
	}
	if pids == nil {
		pids = []int{}
	}
	slices.Sort(pids)
	return pids, nil
}

// filterPsTable writes the header of ps's output and the lines whose PID
// column is one of pids.
func filterPsTable(table string, pids []int, out io.Writer) error {
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	col := slices.Index(strings.Fields(lines[0]), "PID")
	if col < 0 {
		return fmt.Errorf("ps: no PID column in the header %q (give ps options that show it)", lines[0])
	}
	keep := []string{lines[0]}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if col >= len(f) {
			return fmt.Errorf("ps: line %q has no PID column", line)
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil {
			return fmt.Errorf("ps: line %q: PID %q is not a number", line, f[col])
		}
		if slices.Contains(pids, pid) {
			keep = append(keep, line)
		}
	}
	_, err := io.WriteString(out, strings.Join(keep, "\n")+"\n")
	return err
}
