package verb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

func TestLogLine(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 5, time.FixedZone("x", 3600))
	for _, msg := range []string{"plain", `quo"te <b> & \ back`, "\u2028", ""} {
		want, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": "2026-12-06T09:00:00.000000005Z"})
		if got := LogLine("json", "error", msg, now); string(got) != string(want)+"\n" {
			t.Errorf("json %q: got %s want %s", msg, got, want)
		}
		want = fmt.Appendf(nil, "time=%q level=error msg=%q\n", "2026-12-06T09:00:00.000000005Z", msg)
		if got := LogLine("text", "error", msg, now); string(got) != string(want) {
			t.Errorf("text %q: got %s want %s", msg, got, want)
		}
	}
}

// doer answers each op with its reply, or an error reply.
type doer map[string]protocol.Reply

func (d doer) Do(_ context.Context, req protocol.Request) (*protocol.Reply, error) {
	r, ok := d[req.Op]
	if !ok {
		return nil, fmt.Errorf("unexpected %s", req.Op)
	}
	return &r, r.Err()
}

func TestKill(t *testing.T) {
	refused := protocol.ErrorReply(protocol.Errorf(protocol.ErrInvalidState, "kill: container is stopped"))
	state := func(s protocol.Status) protocol.Reply {
		return protocol.Reply{OK: true, State: &protocol.State{Status: s}}
	}
	for _, c := range []struct {
		name string
		d    doer
		sig  unix.Signal
		want string
	}{
		{"sent", doer{protocol.OpKill: {OK: true}}, unix.SIGTERM, ""},
		{"stopped", doer{protocol.OpKill: refused, protocol.OpState: state(protocol.StatusStopped)}, unix.SIGTERM, `container "c1" is stopped: container not running`},
		{"refused otherwise", doer{protocol.OpKill: refused, protocol.OpState: state(protocol.StatusRunning)}, unix.SIGKILL, "kill: container is stopped"},
		{"zero, running", doer{protocol.OpState: state(protocol.StatusRunning)}, 0, ""},
		{"zero, stopped", doer{protocol.OpState: state(protocol.StatusStopped)}, 0, `container "c1" is stopped: container not running`},
	} {
		err := Kill(context.Background(), c.d, "c1", c.sig, false)
		if got := fmt.Sprint(err); (err == nil && c.want != "") || (err != nil && got != c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if c.want != "" && c.name != "refused otherwise" && !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s: %v is not ErrNotRunning", c.name, err)
		}
	}
}
