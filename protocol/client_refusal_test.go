package protocol

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestClientRefusedBeforeRequest: a shim that refuses a connection writes
// its error and closes without reading. A request written after that close
// fails with EPIPE, and the client must report the shim's reason instead.
func TestClientRefusedBeforeRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := make(chan struct{})
	go func() {
		defer close(refused)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		line, _ := Marshal(ErrorReply(Errorf(ErrPermission, "uid 1000 may not use this container")))
		conn.Write(line)
		conn.Close()
	}()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-refused // the shim has answered and closed before the request
	err = c.Start(context.Background())
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("Start on a refused connection: %v, want the shim's permission error", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Message == "" {
		t.Fatalf("Start on a refused connection: %v, want a RemoteError", err)
	}
}
