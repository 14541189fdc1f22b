package protocol

import "time"

// Version is the protocol version this package speaks. It changes only when
// an existing field or behaviour changes meaning; new optional fields and
// new event types do not change it.
const Version = 1

// MaxLine is the longest line either side accepts, newline included. A
// longer request gets an error reply and the connection is closed.
const MaxLine = 64 << 10

// SocketName is the name of the shim's socket inside the state directory.
const SocketName = "shim.sock"

// Operations a client may request.
const (
	OpHello     = "hello"
	OpSubscribe = "subscribe"
	OpStart     = "start"
	OpState     = "state"
	OpKill      = "kill"
	OpDelete    = "delete"
	OpExec      = "exec"
	OpPause     = "pause"
	OpResume    = "resume"
	// OpAdopt tells the shim of a process that crier exec forked itself
	// (under a supervisor, which reaps it): one descriptor, a pidfd of
	// it, comes with the line. The shim publishes its exit.
	OpAdopt = "adopt"
)

// MaxExecFiles is the most descriptors an exec request may carry: the
// kernel's limit for one SCM_RIGHTS message (SCM_MAX_FD).
const MaxExecFiles = 253

// Event types. Clients must ignore types they do not know.
const (
	EventCreated = "created"
	EventStarted = "started"
	EventPaused  = "paused"
	EventResumed = "resumed"
	EventStopped = "stopped"
	EventDeleted = "deleted"
	// EventExecStarted and EventExecStopped are an exec'd process's: its
	// start (execId, pid) and its exit (as stopped's fields).
	EventExecStarted = "exec-started"
	EventExecStopped = "exec-stopped"
	// EventOOM is the kernel's OOM killer at work in the container's
	// memory cgroup (count, limit, cgroup); it always comes before the
	// stopped or exec-stopped of a process it killed, which then has
	// oomKilled.
	EventOOM = "oom"
	// EventMissed is no event: a subscription that resumes after a seq
	// (Request.Since) gets one for each run of later events, from From
	// to To, that the shim no longer holds.
	EventMissed = "missed"
)

// EventTypes lists every event type: the lifecycle ones in the order they
// happen (paused and resumed, any number of times, between started and
// stopped), then the exec'd processes'.
func EventTypes() []string {
	return []string{EventCreated, EventStarted, EventPaused, EventResumed, EventStopped, EventDeleted, EventExecStarted, EventExecStopped, EventOOM}
}

// KnownEventType reports whether t is one of EventTypes.
func KnownEventType(t string) bool {
	for _, k := range EventTypes() {
		if t == k {
			return true
		}
	}
	return false
}

// LifecycleEventTypes lists the container's own lifecycle events, each of
// which happens at most once, in the order they happen.
func LifecycleEventTypes() []string {
	return []string{EventCreated, EventStarted, EventStopped, EventDeleted}
}

// EventShimGone is no event of a shim's: `crier event --all`, which
// assembles the stream of every container under a root, prints one for a
// container whose shim is gone (killed, or crashed) without its deleted
// event, and goes on with the others. Its seq is 0, which no shim's event
// has; its timestamp is when crier found the shim gone.
const EventShimGone = "shim-gone"

// Status is a container's status as the OCI runtime spec names it: in
// states, in the state file, and in what hooks read on their stdin. It is
// declared here, once, for the shim, the container package and the CLI.
type Status string

// Container statuses, as in the OCI runtime spec.
const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// Request is one line from a client.
type Request struct {
	Op string `json:"op"`

	// History, for subscribe: whether to replay the events the shim has
	// buffered before the live ones. Absent means true.
	History *bool `json:"history,omitempty"`
	// Since, for subscribe: replay only the buffered events after this
	// seq, saying which ones are gone (EventMissed), then the live ones.
	// It overrides History.
	Since *uint64 `json:"since,omitempty"`

	// Signal, for kill: the signal number.
	Signal int `json:"signal,omitempty"`
	// All, for kill: signal every process in the container, not only its
	// init process.
	All bool `json:"all,omitempty"`

	// Force, for delete: kill the container first if it is not stopped.
	Force bool `json:"force,omitempty"`

	// Files, for exec: how many descriptors came with the line
	// (SCM_RIGHTS): the exec stage's config, then the process's own
	// descriptors (docs/protocol.md). For adopt: 1, the pidfd.
	Files int `json:"files,omitempty"`
	// Wait, for exec: after the reply with the pid, send a second reply
	// with the process's exit status when it exits.
	Wait bool `json:"wait,omitempty"`
	// ExecID, for exec and adopt: the name of the process in its events;
	// the shim makes one up when it is empty.
	ExecID string `json:"execId,omitempty"`
	// IgnorePaused, for exec: run the process in a paused container too
	// (it starts once the container is resumed).
	IgnorePaused bool `json:"ignorePaused,omitempty"`
	// Cgroup, for exec: the sub-cgroups of the container's to run the
	// process in, as exec's --cgroup arguments ("memory:sub", or one
	// path for every hierarchy), packed by JoinArgs.
	Cgroup string `json:"cgroup,omitempty"`
}

// Reply is the shim's answer to one request. Exactly one Reply follows each
// Request; a subscribe's Reply is followed by events.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code classifies Error; see the Code constants.
	Code string `json:"code,omitempty"`

	// Protocol is set on replies to hello and subscribe.
	Protocol int `json:"protocol,omitempty"`
	// State is set on replies to state.
	State *State `json:"state,omitempty"`

	// Pid is set on the reply to exec: the exec'd process, in the
	// shim's pid namespace.
	Pid int `json:"pid,omitempty"`
	// ExitStatus is set on the second reply to an exec with wait: 0-255,
	// or 128+N when signal N killed the process (Signal then names it).
	ExitStatus *int   `json:"exitStatus,omitempty"`
	Signal     string `json:"signal,omitempty"`
}

// Event is one lifecycle event of a container.
type Event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	// Timestamp is the time of the transition, RFC 3339 in UTC with
	// nanoseconds (see FormatTime).
	Timestamp string `json:"timestamp"`
	// Seq numbers a container's events 1, 2, 3, ...; a gap tells a
	// subscriber that it missed events that were not buffered.
	Seq uint64 `json:"seq"`
	Pid int    `json:"pid,omitempty"`

	// ExitStatus is set on stopped: 0-255, or 128+N when signal N killed
	// the process.
	ExitStatus *int `json:"exitStatus,omitempty"`
	// ExitUnknown is set on stopped, in place of ExitStatus, when the
	// shim could not learn the status: a supervisor reaped the process on
	// a kernel older than 6.15 (docs/supervisors.md).
	ExitUnknown bool `json:"exitUnknown,omitempty"`
	// Signal is set on stopped when a signal killed the process, e.g.
	// "SIGKILL".
	Signal string `json:"signal,omitempty"`
	// OOMKilled is set on stopped and exec-stopped when the OOM killer
	// killed the process (an oom event came before).
	OOMKilled bool `json:"oomKilled,omitempty"`
	// ExecID names the exec'd process of exec-started and exec-stopped:
	// the one crier exec --exec-id gave, or one the shim made up.
	ExecID string `json:"execId,omitempty"`
	// Count, Limit and Cgroup are set on oom. Count is how many OOM
	// kills the event stands for (cgroup v1: how many times the OOM
	// killer was invoked). Limit says whose memory limit was hit:
	// "container" (the container's own cgroup), "ancestor" (a cgroup
	// above it, such as a pod's) or "descendant" (one below it); Cgroup
	// is that cgroup's directory. Both are absent when the kernel's
	// counters do not say (a system-wide OOM).
	Count  uint64 `json:"count,omitempty"`
	Limit  string `json:"limit,omitempty"`
	Cgroup string `json:"cgroup,omitempty"`
	// From and To are set on missed: the first and last seq it stands
	// for.
	From uint64 `json:"from,omitempty"`
	To   uint64 `json:"to,omitempty"`
}

// State is the OCI state of a container, with the extra fields runc prints.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     string            `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`

	// Once stopped, the exit, as the stopped event gives it (extra
	// properties, which the runtime spec allows): the shim records it
	// here before it publishes the event, so a state read after the
	// event always agrees with it.
	ExitStatus  *int   `json:"exitStatus,omitempty"`
	ExitUnknown bool   `json:"exitUnknown,omitempty"`
	Signal      string `json:"signal,omitempty"`
	OOMKilled   bool   `json:"oomKilled,omitempty"`
	// ExitedAt is the stopped event's timestamp.
	ExitedAt string `json:"exitedAt,omitempty"`
}

// FormatTime formats t the way events and states carry times: RFC 3339, UTC,
// always nine digits of nanoseconds so that the strings sort as the times do.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

// DecodeRequest parses one request line and checks the fields its operation
// needs, so the server only ever sees well-formed requests.
func DecodeRequest(line []byte) (Request, error) {
	req, ok := scanRequest(line)
	if !ok {
		var err error
		if req, err = decodeRequestJSON(line); err != nil {
			return Request{}, err
		}
	}
	return checkRequest(req)
}

// checkRequest checks that req has the fields its operation needs.
func checkRequest(req Request) (Request, error) {
	switch req.Op {
	case OpHello, OpSubscribe, OpStart, OpState, OpDelete, OpPause, OpResume:
	case OpKill:
		if req.Signal <= 0 || req.Signal > 64 {
			return Request{}, Errorf(ErrBadRequest, "kill: invalid signal %d", req.Signal)
		}
	case OpExec:
		if req.Files < 1 || req.Files > MaxExecFiles {
			return Request{}, Errorf(ErrBadRequest, "exec: %d descriptors, want 1 to %d", req.Files, MaxExecFiles)
		}
	case OpAdopt:
		if req.Files != 1 {
			return Request{}, Errorf(ErrBadRequest, "adopt: %d descriptors, want 1 (a pidfd)", req.Files)
		}
	case "":
		return Request{}, Errorf(ErrBadRequest, "request has no op")
	default:
		return Request{}, Errorf(ErrBadRequest, "unknown op %q", req.Op)
	}
	return req, nil
}
