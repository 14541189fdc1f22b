package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/protocol"
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
			return a.list(format, quiet)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

func (a *app) list(format string, quiet bool) error {
	entries, err := os.ReadDir(a.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	states := []protocol.State{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, _, err := a.readState(e.Name())
		if err != nil {
			continue // deleted meanwhile
		}
		states = append(states, st.State)
	}
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
