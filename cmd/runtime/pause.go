package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crier-runtime/crier/protocol"
)

// pause and resume, runc's: the shim freezes and thaws the container's
// cgroup (the freezer, v1 or v2) and records the status "paused".

func (a *app) pauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pause ID",
		Short: "suspend every process in a container (freezer cgroup)",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.freeze(args[0], "paused", (*protocol.Client).Pause)
		},
	}
}

func (a *app) resumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume ID",
		Short: "resume every process in a paused container",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.freeze(args[0], "resumed", (*protocol.Client).Resume)
		},
	}
}

// freeze sends a pause or resume request. The shim alone moves the status,
// so a container whose shim is dead cannot be paused or resumed (delete
// --force still thaws and removes it).
func (a *app) freeze(id, what string, req func(*protocol.Client, context.Context) error) error {
	ctx, cancel := requestContext()
	defer cancel()
	c, err := a.dial(ctx, id)
	if errors.Is(err, errShimDead) {
		return fmt.Errorf("container %q cannot be %s: %w", id, what, err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return requestError(req(c, ctx))
}
