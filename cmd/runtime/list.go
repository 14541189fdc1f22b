package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

func (a *app) listCommand() *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "list the containers under the state root",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("list: --format %q is not table or json", format)
			}
			// As runc: a missing default root lists nothing (no container
			// was made yet), a missing root that was asked for is an error.
			return a.list(format, quiet, cmd.Flags().Changed("root"))
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

func (a *app) list(format string, quiet, rootGiven bool) error {
	states := []protocol.State{}
	r, err := statedir.OpenRoot(a.root)
	if err != nil && (rootGiven || !errors.Is(err, os.ErrNotExist)) {
		return err
	}
	if err == nil {
		defer r.Close()
		if states, err = a.states(r); err != nil {
			return err
		}
	}
	// By ID, as runc lists them (scripts take the first, or diff lists).
	slices.SortFunc(states, func(x, y protocol.State) int { return strings.Compare(x.ID, y.ID) })
	switch {
	case quiet:
		for _, st := range states {
			fmt.Println(st.ID)
		}
		return nil
	case format == "json":
		b, err := json.Marshal(states)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
	fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, st := range states {
		created := st.Created
		if t, err := time.Parse(time.RFC3339Nano, st.Created); err == nil {
			created = t.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", st.ID, st.Pid, st.Status, st.Bundle, created, st.Owner)
	}
	return w.Flush()
}

// states reads the state of every container in r, correcting the status of
// those whose shim is dead as readState does.
func (a *app) states(r *statedir.Root) ([]protocol.State, error) {
	names, err := r.Names()
	if err != nil {
		return nil, err
	}
	states := []protocol.State{}
	for _, name := range names {
		if checkID(name) != nil {
			continue // not a container's: crier never made it
		}
		st, _, err := a.readState(name)
		if err != nil {
			continue // deleted meanwhile
		}
		states = append(states, st.State)
	}
	return states, nil
}
