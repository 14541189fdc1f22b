package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/protocol"
)

// TestStartExchange plays the init stage's side of the start exchange over
// a socketpair (the integration tests start real containers; here the
// point is every answer init can give).
func TestStartExchange(t *testing.T) {
	tests := []struct {
		name    string
		replies string // what init writes before closing its end
		wantErr string // "" for success
		// execFailed: the error is protocol.ErrExecFailed.
		execFailed bool
	}{
		{name: "exec", replies: `{"type":"exec"}` + "\n"},
		{name: "exec, then an error", replies: `{"type":"exec"}` + "\n" + `{"type":"error","message":"before exec: x"}` + "\n",
			wantErr: "before exec: x"},
		{name: "exec, then exec failed", replies: `{"type":"exec"}` + "\n" + `{"type":"execFailed","message":"exec /bin/nope: no such file or directory"}` + "\n",
			wantErr: "exec /bin/nope: no such file or directory", execFailed: true},
		{name: "escaped error", replies: `{"type":"error","message":"startContainer hook #0: \"x\" \u003cy\u003e\n"}` + "\n",
			wantErr: "startContainer hook #0: \"x\" <y>\n"},
		{name: "error with odd members", replies: `{"message":"late","type":"error","pty":null,"extra":[1]}` + "\n", wantErr: "late"},
		{name: "gone", replies: "", wantErr: "container init exited before it was ready"},
		{name: "half a line", replies: `{"type":"ex`, wantErr: "container init exited before it was ready"},
		{name: "exec, then half a line", replies: `{"type":"exec"}` + "\n" + `{"type"`},
		{name: "wrong message", replies: `{"type":"ready"}` + "\n", wantErr: `sync: got "ready", want "exec"`},
		{name: "not JSON", replies: "garbage\n", wantErr: "sync: receive: invalid character 'g' looking for beginning of value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.SetNonblock(fds[0], true)
			c := &Container{
				Spec:  &specs.Spec{Process: &specs.Process{}},
				PidFD: -1,
				sync:  newSyncConn(os.NewFile(uintptr(fds[0]), "sync-parent")),
			}
			initEnd := os.NewFile(uintptr(fds[1]), "sync-child")
			got := make(chan string, 1)
			go func() {
				defer initEnd.Close()
				line, _ := bufio.NewReader(initEnd).ReadString('\n')
				got <- line
				initEnd.WriteString(tc.replies)
			}()
			err = c.Start()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("start: %v, want success", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("start: %v, want %q", err, tc.wantErr)
			case errors.Is(err, protocol.ErrExecFailed) != tc.execFailed:
				t.Errorf("start: %v: ErrExecFailed is %v, want %v", err, !tc.execFailed, tc.execFailed)
			}
			// What init reads is what container's own start sends.
			want, _ := json.Marshal(struct {
				Type string `json:"type"`
			}{"start"})
			if line := <-got; line != string(want)+"\n" {
				t.Errorf("init read %q, want %q", line, want)
			}
			if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); err == nil {
				t.Errorf("start left its end of the socket open")
			}
		})
	}
}
