package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/crier-runtime/crier/internal/flatjson"
	"github.com/crier-runtime/crier/protocol"
)

// initSync is the serving image's end of the socket to the container's
// init stage, which waits on it to be started.
//
// container.Container.Start would do the exchange, but it encodes its
// messages with encoding/json, and the caches that leaves behind (for the
// whole runtime-spec type tree its message type reaches, some 230 kB) would
// stay resident in the serving shim for its life. So the serving image
// speaks the start exchange itself, in container's format (container/
// sync.go): it sends {"type":"start"} with the pty if any; init answers
// {"type":"exec"} and then execve closes the socket, or
// {"type":"error","message":...}. The messages and errors are the ones
// Container.Start sends and returns.
type initSync struct {
	f   *os.File
	pty string
}

// start starts the container's process and closes the socket. Like
// Container.Start, it returns once execve has succeeded, or with why not.
func (is *initSync) start() error {
	defer is.f.Close()
	o := flatjson.Begin(nil)
	o.String("type", "start")
	if is.pty != "" {
		o.String("pty", is.pty)
	}
	if _, err := is.f.Write(append(o.End(), '\n')); err != nil {
		return fmt.Errorf("sync: send start: %w", err)
	}
	dec := protocol.NewDecoder(is.f)
	m, err := recvInit(dec)
	switch {
	case errors.Is(err, errInitEOF):
		return errors.New("container init exited before it was ready")
	case err != nil:
		return err
	case m.Type == "error":
		return errors.New(m.Message)
	case m.Type != "exec":
		return fmt.Errorf("sync: got %q, want %q", m.Type, "exec")
	}
	// execve closes init's end (close-on-exec); anything else is an error
	// sent after exec because execve itself failed.
	m, err = recvInit(dec)
	if errors.Is(err, errInitEOF) {
		return nil
	}
	if err != nil {
		return err
	}
	return errors.New(m.Message)
}

var errInitEOF = errors.New("sync: peer closed")

// initMessage is what the shim reads of init's messages.
type initMessage struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func recvInit(dec *protocol.Decoder) (initMessage, error) {
	line, err := dec.Line()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return initMessage{}, errInitEOF
	}
	if err != nil {
		return initMessage{}, fmt.Errorf("sync: receive: %w", err)
	}
	var m initMessage
	ok := flatjson.Scan(line, func(key []byte, v flatjson.Value) bool {
		var dst *string
		switch k := string(key); {
		case k == "type":
			dst = &m.Type
		case k == "message":
			dst = &m.Message
		case strings.EqualFold(k, "type"), strings.EqualFold(k, "message"):
			return false // leave case folding to encoding/json
		default:
			return true
		}
		switch v.Kind {
		case flatjson.String:
			*dst = v.Str()
		case flatjson.Null:
		default:
			return false
		}
		return true
	})
	if !ok {
		// An error message with escapes, say: rare enough that the small
		// cache for initMessage is no matter.
		m = initMessage{}
		if err := json.Unmarshal(line, &m); err != nil {
			return m, fmt.Errorf("sync: receive: %w", err)
		}
	}
	return m, nil
}
