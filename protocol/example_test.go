package protocol_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"time"

	"github.com/crier-runtime/crier/protocol"
)

// Wait for container c1 to stop and print its exit status, as a supervisor
// that is not the container's parent would.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	c, err := protocol.Dial(ctx, filepath.Join("/run/crier", "c1", protocol.SocketName))
	if err != nil {
		log.Fatal(err) // no such container (ENOENT), or its shim is gone (ECONNREFUSED)
	}
	defer c.Close()

	// The buffered events first, then live ones. After this the
	// connection carries only events.
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{}); err != nil {
		log.Fatal(err)
	}
	for {
		ev, err := c.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			return // after "deleted": the container is gone
		case errors.Is(err, io.ErrUnexpectedEOF):
			log.Fatal("the shim died before the container was deleted")
		case errors.Is(err, protocol.ErrOverflow):
			log.Fatal("dropped for reading too slowly")
		case err != nil:
			log.Fatal(err) // including context.DeadlineExceeded
		}
		switch ev.Type {
		case protocol.EventStopped:
			fmt.Printf("%s exited with status %d %s\n", ev.ID, *ev.ExitStatus, ev.Signal)
			return
		default:
			// created, started, deleted, and types this program does
			// not know yet, which it must ignore.
			fmt.Printf("%s: %s (seq %d)\n", ev.ID, ev.Type, ev.Seq)
		}
	}
}
