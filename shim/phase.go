package shim

import (
	"fmt"

	"github.com/crier-runtime/crier/protocol"
)

// The loop's state machine. The container's phase is one value, and the
// table below is the only place that says which request is legal in which
// phase, and what each request or event moves the phase to. The handlers in
// loop.go do the work of a move (signal, start, announce); they never ask
// whether it is allowed.
//
// A phase is finer than the OCI status it shows (phase.status): a start in
// flight, an exit that came during it (held back so that stopped never
// precedes started), and a forced delete waiting for the exit all keep the
// status they had. The status changes only through the table, and each
// change is announced (state file, then event) by enter.
//
// Requests not in the table (hello, state, subscribe) are answered in every
// phase and move nothing.
//
// Pause and resume (runc's): a created or running container can be
// paused; its paused phase shows the status "paused" and remembers which of
// the two it came from, which resume returns to. A SIGKILL to a paused
// container thaws it, as runc does (a frozen task dies only once thawed on
// cgroup v1): inThawed then moves it back as resume would. A forced delete
// of a paused container goes to a kill phase of its own, which thaws it
// after the SIGKILL; it keeps the status "paused" until the exit.
//
// Room for what comes next:
//   - exec'd processes: they do not move the container's phase (only the
//     init's exit does), so they get a small table of their own, one
//     phase per process, with their own start, kill and exit inputs.
//
// A supervised container, which another supervisor parents (supervisor
// mode, docs/supervisors.md), uses these same rows: only the seam differs
// (ops.wait reads the exit from the pidfd once the supervisor has reaped),
// so the table does not change.
type phase uint8

const (
	noPhase phase = iota // the zero cell: the input cannot happen in the phase

	phaseCreating // the container is being made (before the loop runs)
	phaseCreated
	phaseStarting    // start in flight
	phaseStartExited // start in flight, and the init has already exited: its exit is held
	phaseRunning
	phasePausedCreated // paused while created: resume returns to created
	phasePaused        // paused while running
	phaseStopped
	// A forced delete sent SIGKILL and waits for the init's exit; the
	// kill phases mirror created, starting, starting with its exit
	// held, running and paused (either kind: both go on to the exit).
	phaseKillCreated
	phaseKillStarting
	phaseKillStartExited
	phaseKillRunning
	phaseKillPaused
	phaseDeleting // the teardown runs
	phaseDeleted  // the loop ends

	numPhases
)

var phaseNames = [numPhases]string{
	noPhase:              "none",
	phaseCreating:        "creating",
	phaseCreated:         "created",
	phaseStarting:        "starting",
	phaseStartExited:     "starting, exited",
	phaseRunning:         "running",
	phasePausedCreated:   "paused, created",
	phasePaused:          "paused",
	phaseStopped:         "stopped",
	phaseKillCreated:     "killing for delete, created",
	phaseKillStarting:    "killing for delete, starting",
	phaseKillStartExited: "killing for delete, starting, exited",
	phaseKillRunning:     "killing for delete, running",
	phaseKillPaused:      "killing for delete, paused",
	phaseDeleting:        "deleting",
	phaseDeleted:         "deleted",
}

func (p phase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// status is the OCI status the phase shows in the state file and to state
// requests.
func (p phase) status() protocol.Status {
	switch p {
	case phaseCreating:
		return protocol.StatusCreating
	case phaseRunning, phaseKillRunning:
		return protocol.StatusRunning
	case phasePausedCreated, phasePaused, phaseKillPaused:
		return protocol.StatusPaused
	case phaseStopped, phaseDeleting, phaseDeleted:
		return protocol.StatusStopped
	}
	return protocol.StatusCreated
}

// killing reports whether p is one where a forced delete waits for the exit.
func (p phase) killing() bool { return p >= phaseKillCreated && p <= phaseKillPaused }

// frozen reports whether the container's cgroup is frozen in phase p.
func (p phase) frozen() bool { return p == phasePausedCreated || p == phasePaused }

// input is what moves the phase: a client's request, or an event the loop
// hears of (from the kernel, or from a goroutine it started).
type input uint8

const (
	inNone input = iota

	// Requests.
	inStart
	inKill
	// inKillCgroup is a SIGKILL to a container without a pid namespace
	// of its own: its processes outlive the init, so the kill goes to
	// every process of its cgroup, as runc's does, and is taken in a
	// stopped container too (the init gone, the rest maybe not).
	inKillCgroup
	inDelete
	inForceDelete
	inExec             // runs a process beside the init; moves nothing
	inExecIgnorePaused // exec --ignore-paused: exec, in a paused container too
	inPause
	inResume

	// Events.
	inCreated     // create finished: the init waits to be started
	inExited      // the init's exit was collected
	inStarted     // the container's process was exec'd
	inStartFailed // start failed; the init may or may not have exited
	inThawed      // a SIGKILL to a paused container thawed it
	inTornDown    // the teardown (cgroup, poststop hooks, directory) finished

	numInputs
)

var inputNames = [numInputs]string{
	inNone:             "none",
	inStart:            "start",
	inKill:             "kill",
	inKillCgroup:       "kill SIGKILL, shared pid namespace",
	inDelete:           "delete",
	inForceDelete:      "delete --force",
	inExec:             "exec",
	inExecIgnorePaused: "exec --ignore-paused",
	inPause:            "pause",
	inResume:           "resume",
	inCreated:          "created",
	inExited:           "exited",
	inStarted:          "started",
	inStartFailed:      "start failed",
	inThawed:           "thawed by SIGKILL",
	inTornDown:         "torn down",
}

func (in input) String() string {
	if in < numInputs {
		return inputNames[in]
	}
	return fmt.Sprintf("input(%d)", uint8(in))
}

// cell is what one input does in one phase. The zero cell is an input
// that cannot happen in the phase (only events have those; every request
// has a cell in every phase).
type cell struct {
	to     phase // the next phase; noPhase for a refusal
	refuse why   // for a refused request: why
	then   input // an input to handle right after the move: a held exit
}

// why is a refusal's wording, after "container ID ", as the CLI's users
// (and its tests) know it.
type why uint8

const (
	allowed why = iota
	whyCreatingNotCreated
	whyCreatingNotRunning
	whyStillCreating
	whyStartingAlready
	whyRunningNotCreated
	whyStoppedNotCreated
	whyStoppedNotRunning
	whyStopped
	whyCreatedStopFirst
	whyRunningStopFirst
	whyDeletingNotCreated
	whyDeletingAlready
	whyDeletedNotCreated
	whyDeletedNotRunning
	whyExecStopped
	whyExecDeleting
	whyExecPaused
	whyPausedNotCreated
	whyPausedStopFirst
	whyPausedAlready
	whyStartingNotRunning
	whyCreatingNotPaused
	whyCreatedNotPaused
	whyRunningNotPaused
	whyStoppedNotPaused
	whyDeletedNotPaused
	numWhys
)

var whyText = [numWhys]string{
	whyCreatingNotCreated: "is creating, not created",
	whyCreatingNotRunning: "is creating, not running",
	whyStillCreating:      "is still being created",
	whyStartingAlready:    "is already starting",
	whyRunningNotCreated:  "is running, not created",
	whyStoppedNotCreated:  "is stopped, not created",
	// "container not running" is runc's wording for a kill of a stopped
	// container, and what containerd and podman look for to tell "already
	// gone" from a failure.
	whyStoppedNotRunning:  "is stopped: container not running",
	whyStopped:            "is stopped: container not running",
	whyCreatedStopFirst:   "is created: stop it first or use --force",
	whyRunningStopFirst:   "is running: stop it first or use --force",
	whyDeletingNotCreated: "is being deleted, not created",
	whyDeletingAlready:    "is already being deleted",
	whyDeletedNotCreated:  "is deleted, not created",
	whyDeletedNotRunning:  "is deleted: container not running",
	// runc's words, which tools match.
	whyExecStopped:  "is stopped: cannot exec in a stopped container",
	whyExecDeleting: "is being deleted: cannot exec in a stopped container",
	whyExecPaused:   "is paused: cannot exec in a paused container",

	whyPausedNotCreated:   "is paused, not created",
	whyPausedStopFirst:    "is paused: stop it first or use --force",
	whyPausedAlready:      "is already paused",
	whyStartingNotRunning: "is starting, not running",
	// runc's "container not paused", for a resume.
	whyCreatingNotPaused: "is creating: container not paused",
	whyCreatedNotPaused:  "is created: container not paused",
	whyRunningNotPaused:  "is running: container not paused",
	whyStoppedNotPaused:  "is stopped: container not paused",
	whyDeletedNotPaused:  "is deleted: container not paused",
}

// transitions is the state table: transitions[phase][input]. It is
// read-only, and made of constants so that it is laid out at link time.
var transitions = [numPhases][numInputs]cell{
	phaseCreating: {
		inStart:            {refuse: whyCreatingNotCreated},
		inKill:             {refuse: whyCreatingNotRunning},
		inKillCgroup:       {refuse: whyCreatingNotRunning},
		inDelete:           {refuse: whyStillCreating},
		inForceDelete:      {refuse: whyStillCreating},
		inExec:             {refuse: whyStillCreating},
		inExecIgnorePaused: {refuse: whyStillCreating},
		inPause:            {refuse: whyCreatingNotRunning},
		inResume:           {refuse: whyCreatingNotPaused},
		inCreated:          {to: phaseCreated},
	},
	phaseCreated: {
		inStart:            {to: phaseStarting},
		inKill:             {to: phaseCreated},
		inKillCgroup:       {to: phaseCreated},
		inDelete:           {refuse: whyCreatedStopFirst},
		inForceDelete:      {to: phaseKillCreated},
		inExec:             {to: phaseCreated},
		inExecIgnorePaused: {to: phaseCreated},
		inPause:            {to: phasePausedCreated},
		inResume:           {refuse: whyCreatedNotPaused},
		inExited:           {to: phaseStopped},
	},
	phaseStarting: {
		inStart:            {refuse: whyStartingAlready},
		inKill:             {to: phaseStarting},
		inKillCgroup:       {to: phaseStarting},
		inDelete:           {refuse: whyCreatedStopFirst},
		inForceDelete:      {to: phaseKillStarting},
		inExec:             {to: phaseStarting},
		inExecIgnorePaused: {to: phaseStarting},
		// A freeze would hold the start up; pause once it is done.
		inPause:       {refuse: whyStartingNotRunning},
		inResume:      {refuse: whyCreatedNotPaused},
		inExited:      {to: phaseStartExited},
		inStarted:     {to: phaseRunning},
		inStartFailed: {to: phaseCreated},
	},
	phaseStartExited: {
		inStart:            {refuse: whyStartingAlready},
		inKill:             {refuse: whyStopped},
		inKillCgroup:       {to: phaseStartExited},
		inDelete:           {refuse: whyCreatedStopFirst},
		inForceDelete:      {to: phaseKillStartExited},
		inExec:             {refuse: whyExecStopped},
		inExecIgnorePaused: {refuse: whyExecStopped},
		inPause:            {refuse: whyStopped},
		inResume:           {refuse: whyStoppedNotPaused},
		inStarted:          {to: phaseRunning, then: inExited},
		inStartFailed:      {to: phaseCreated, then: inExited},
	},
	phaseRunning: {
		inStart:            {refuse: whyRunningNotCreated},
		inKill:             {to: phaseRunning},
		inKillCgroup:       {to: phaseRunning},
		inDelete:           {refuse: whyRunningStopFirst},
		inForceDelete:      {to: phaseKillRunning},
		inExec:             {to: phaseRunning},
		inExecIgnorePaused: {to: phaseRunning},
		inPause:            {to: phasePaused},
		inResume:           {refuse: whyRunningNotPaused},
		inExited:           {to: phaseStopped},
	},
	// The init cannot exit while frozen, but on cgroup v2 a SIGKILL
	// from outside kills frozen tasks: the exit is handled all the same.
	phasePausedCreated: {
		inStart:            {refuse: whyPausedNotCreated},
		inKill:             {to: phasePausedCreated},
		inKillCgroup:       {to: phasePausedCreated},
		inDelete:           {refuse: whyPausedStopFirst},
		inForceDelete:      {to: phaseKillPaused},
		inExec:             {refuse: whyExecPaused},
		inExecIgnorePaused: {to: phasePausedCreated},
		inPause:            {refuse: whyPausedAlready},
		inResume:           {to: phaseCreated},
		inExited:           {to: phaseStopped},
		inThawed:           {to: phaseCreated},
	},
	phasePaused: {
		inStart:            {refuse: whyPausedNotCreated},
		inKill:             {to: phasePaused},
		inKillCgroup:       {to: phasePaused},
		inDelete:           {refuse: whyPausedStopFirst},
		inForceDelete:      {to: phaseKillPaused},
		inExec:             {refuse: whyExecPaused},
		inExecIgnorePaused: {to: phasePaused},
		inPause:            {refuse: whyPausedAlready},
		inResume:           {to: phaseRunning},
		inExited:           {to: phaseStopped},
		inThawed:           {to: phaseRunning},
	},
	phaseStopped: {
		inStart:            {refuse: whyStoppedNotCreated},
		inKill:             {refuse: whyStoppedNotRunning},
		inKillCgroup:       {to: phaseStopped},
		inDelete:           {to: phaseDeleting},
		inForceDelete:      {to: phaseDeleting},
		inExec:             {refuse: whyExecStopped},
		inExecIgnorePaused: {refuse: whyExecStopped},
		inPause:            {refuse: whyStoppedNotRunning},
		inResume:           {refuse: whyStoppedNotPaused},
	},
	phaseKillCreated: {
		inStart:            {refuse: whyDeletingNotCreated},
		inKill:             {to: phaseKillCreated},
		inKillCgroup:       {to: phaseKillCreated},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecDeleting},
		inExecIgnorePaused: {refuse: whyExecDeleting},
		inPause:            {refuse: whyDeletingAlready},
		inResume:           {refuse: whyDeletingAlready},
		inExited:           {to: phaseDeleting},
	},
	phaseKillStarting: {
		inStart:            {refuse: whyStartingAlready},
		inKill:             {to: phaseKillStarting},
		inKillCgroup:       {to: phaseKillStarting},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecDeleting},
		inExecIgnorePaused: {refuse: whyExecDeleting},
		inPause:            {refuse: whyDeletingAlready},
		inResume:           {refuse: whyDeletingAlready},
		inExited:           {to: phaseKillStartExited},
		inStarted:          {to: phaseKillRunning},
		inStartFailed:      {to: phaseKillCreated},
	},
	phaseKillStartExited: {
		inStart:            {refuse: whyStartingAlready},
		inKill:             {refuse: whyStopped},
		inKillCgroup:       {to: phaseKillStartExited},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecDeleting},
		inExecIgnorePaused: {refuse: whyExecDeleting},
		inPause:            {refuse: whyDeletingAlready},
		inResume:           {refuse: whyDeletingAlready},
		inStarted:          {to: phaseKillRunning, then: inExited},
		inStartFailed:      {to: phaseKillCreated, then: inExited},
	},
	phaseKillRunning: {
		inStart:            {refuse: whyDeletingNotCreated},
		inKill:             {to: phaseKillRunning},
		inKillCgroup:       {to: phaseKillRunning},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecDeleting},
		inExecIgnorePaused: {refuse: whyExecDeleting},
		inPause:            {refuse: whyDeletingAlready},
		inResume:           {refuse: whyDeletingAlready},
		inExited:           {to: phaseDeleting},
	},
	// Thawed as it was entered: a kill needs no thaw of its own.
	phaseKillPaused: {
		inStart:            {refuse: whyDeletingNotCreated},
		inKill:             {to: phaseKillPaused},
		inKillCgroup:       {to: phaseKillPaused},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecDeleting},
		inExecIgnorePaused: {refuse: whyExecDeleting},
		inPause:            {refuse: whyDeletingAlready},
		inResume:           {refuse: whyDeletingAlready},
		inExited:           {to: phaseDeleting},
	},
	phaseDeleting: {
		inStart:            {refuse: whyStoppedNotCreated},
		inKill:             {refuse: whyStoppedNotRunning},
		inKillCgroup:       {refuse: whyStoppedNotRunning},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecStopped},
		inExecIgnorePaused: {refuse: whyExecStopped},
		inPause:            {refuse: whyStoppedNotRunning},
		inResume:           {refuse: whyStoppedNotPaused},
		inTornDown:         {to: phaseDeleted},
	},
	// The loop has ended: no request reaches it.
	phaseDeleted: {
		inStart:            {refuse: whyDeletedNotCreated},
		inKill:             {refuse: whyDeletedNotRunning},
		inKillCgroup:       {refuse: whyDeletedNotRunning},
		inDelete:           {refuse: whyDeletingAlready},
		inForceDelete:      {refuse: whyDeletingAlready},
		inExec:             {refuse: whyExecStopped},
		inExecIgnorePaused: {refuse: whyExecStopped},
		inPause:            {refuse: whyDeletedNotRunning},
		inResume:           {refuse: whyDeletedNotPaused},
	},
}

// refusal is the error for a request that the container's phase does not
// allow. It names the phase and the request, and wraps
// protocol.ErrInvalidState, which gives its wire code.
type refusal struct {
	id    string
	phase phase
	req   input
	why   why
}

func (e *refusal) Error() string {
	// The kind travels as the reply's code, not as a prefix (protocol.Errorf).
	return fmt.Sprintf("container %s %s", e.id, whyText[e.why])
}

func (e *refusal) Unwrap() error { return protocol.ErrInvalidState }
