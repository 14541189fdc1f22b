package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crier-runtime/crier/container"
	"github.com/crier-runtime/crier/internal/pidfd"
	"github.com/crier-runtime/crier/protocol"
	"github.com/crier-runtime/crier/statedir"
)

// `crier event --all` has no daemon to ask: it assembles one stream from
// the state root, watched with inotify for the container directories that
// appear, and one subscription per container, each on a goroutine of its
// own feeding a single writer, so that each line is written whole and a
// container's events stay in their order.
//
// A name of the root may stand for several containers in turn (an ID is
// reused once deleted), and the same directory may be reported twice (by
// the first listing and by inotify). The main loop alone decides whom to
// subscribe to: at most one subscription per name at a time, and after
// one ends, a new one only for a directory whose identity (statedir.Ident)
// differs from the one the ended subscription saw.

// allStream is one run of event --all.
type allStream struct {
	a    *app
	o    *eventOptions
	root *statedir.Root
	// tickets is where the shims of containers deleted while the stream
	// was not subscribed to them leave their histories; began is when the
	// stream began, before which --no-history prints nothing of them.
	tickets *statedir.AllTicket
	began   time.Time
	want    map[string]bool
	// out carries the lines to the writer; ended the subscriptions that
	// are over; fatal an error that ends the stream.
	out   chan allLine
	ended chan subEnd
	fatal chan error
	// names is the main loop's own: what it knows of each name.
	names map[string]*nameState
	// printed is what each follow printed last, for the deliveries
	// (event_all_marks.go).
	printed printedMarks
	wg      sync.WaitGroup
	// follow is followShim; the main loop's tests fake it.
	follow func(ctx context.Context, name string, history bool)
}

// nameState is what the main loop knows of a name of the root: whether a
// subscription runs for it, and the directory the last one saw.
type nameState struct {
	running bool
	ident   statedir.Ident
}

// allLine is one line for the writer. match says it is an event --event
// asked for (not a missed or shim-gone line).
type allLine struct {
	b     []byte
	match bool
}

// subEnd says that the subscription of name is over; ident is the
// directory it saw, zero when it found none.
type subEnd struct {
	name  string
	ident statedir.Ident
}

// eventAll runs `crier event --all`.
func (a *app) eventAll(o *eventOptions) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err := a.streamAll(ctx, o)
	if errors.Is(err, context.DeadlineExceeded) {
		if o.monitor {
			return nil // --timeout is how a monitor of every container ends
		}
		return fmt.Errorf("timed out after %v waiting for %s", o.timeout, describeAll(a.root, o))
	}
	return err
}

func describeAll(root string, o *eventOptions) string {
	what := "an event"
	if len(o.types) > 0 {
		what = fmt.Sprint(o.types)
	}
	return fmt.Sprintf("%s of any container under %s", what, root)
}

// streamAll takes the stream's ticket (making the root if need be), checks
// the root, and streams.
func (a *app) streamAll(ctx context.Context, o *eventOptions) error {
	began := time.Now()
	start, err := ownStart()
	if err != nil {
		return err
	}
	tk, err := statedir.AwaitAll(a.root, start, container.Alive)
	if err != nil {
		return err
	}
	h, ctx, cancel := hold(ctx, tk)
	defer h.release()
	defer cancel()
	root, err := statedir.OpenRoot(a.root)
	if err != nil {
		return err
	}
	defer root.Close()
	// The stream holds a socket per container. Go raised the soft limit
	// of descriptors to the hard one at start (package syscall); past
	// it, the stream ends with a message (followShim).
	w, err := root.Watch()
	if err != nil {
		return err
	}
	defer w.Close()
	s := &allStream{
		a: a, o: o, root: root, tickets: tk, began: began, want: map[string]bool{},
		out: make(chan allLine, 256), ended: make(chan subEnd), fatal: make(chan error, 1),
		names: map[string]*nameState{},
	}
	s.follow = s.followShim
	for _, t := range o.types {
		s.want[t] = true
	}
	return s.run(ctx, w)
}

// rootChanges is one batch from the root's watch.
type rootChanges struct {
	changes  []statedir.Change
	overflow bool
	err      error
}

// run is the main loop: it starts and ends subscriptions as the root
// changes, until ctx ends, the writer is done, or something fails.
func (s *allStream) run(ctx context.Context, w *statedir.RootWatch) error {
	ctx, stop := context.WithCancel(ctx)
	written := make(chan error, 1)
	go func() { written <- s.write(ctx) }()
	defer func() {
		stop()
		s.wg.Wait()
		close(s.out)
		<-written
	}()
	changes := make(chan rootChanges)
	go func() {
		for {
			c, overflow, err := w.Next(ctx)
			select {
			case changes <- rootChanges{c, overflow, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	if s.tickets != nil {
		s.wg.Add(1)
		go s.takeDeliveries(ctx)
	}
	// Listed after the watch began: a container made in between is in
	// both, and subscribed to once.
	if err := s.rescan(ctx, !s.o.noHistory); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-written:
			written <- err // for the deferred wait
			return err
		case err := <-s.fatal:
			return err
		case end := <-s.ended:
			s.endOf(ctx, end)
		case c := <-changes:
			if c.err != nil {
				return c.err
			}
			if c.overflow {
				if err := s.rescan(ctx, true); err != nil {
					return err
				}
			}
			for _, ch := range c.changes {
				s.reconcile(ctx, ch.Name)
			}
		}
	}
}

// rescan reconciles every name of the root, and every name the loop knows
// of; history is for the subscriptions it starts.
func (s *allStream) rescan(ctx context.Context, history bool) error {
	names, err := s.root.Names()
	if err != nil {
		return err
	}
	for name := range s.names {
		names = append(names, name)
	}
	for _, name := range names {
		s.reconcileWith(ctx, name, history)
	}
	return nil
}

// reconcile makes sure the directory now at name, if any, is or was
// followed, once; those found after the stream began are followed from
// their first event.
func (s *allStream) reconcile(ctx context.Context, name string) { s.reconcileWith(ctx, name, true) }

func (s *allStream) reconcileWith(ctx context.Context, name string, history bool) {
	if checkID(name) != nil {
		return // not a container's: crier never made it
	}
	ns := s.names[name]
	if ns != nil && ns.running {
		return // its end will look again
	}
	cur, err := s.root.Ident(name)
	if err != nil {
		// Gone (or unreadable, and then it cannot be followed
		// either): a directory that comes back is a new one.
		delete(s.names, name)
		return
	}
	if ns != nil && ns.ident == cur {
		return // followed already; its shim is gone or it is being removed
	}
	s.names[name] = &nameState{running: true}
	s.wg.Add(1)
	go s.follow(ctx, name, history)
}

// endOf notes that a subscription is over, and looks at its name again.
func (s *allStream) endOf(ctx context.Context, end subEnd) {
	ns := s.names[end.name]
	ns.running, ns.ident = false, end.ident
	s.reconcile(ctx, end.name)
}

// write prints the lines, each with one write. Without --monitor it
// returns nil after the first line that matches.
func (s *allStream) write(ctx context.Context) error {
	for l := range s.out {
		if _, err := os.Stdout.Write(l.b); err != nil {
			return fmt.Errorf("event --all: stdout: %w", err)
		}
		if l.match && !s.o.monitor {
			return nil
		}
	}
	return ctx.Err()
}

// emit passes ev to the writer if the filter takes it; missed and
// shim-gone lines always go. It returns false once the stream is over.
func (s *allStream) emit(ctx context.Context, ev protocol.Event) bool {
	pseudo := ev.Type == protocol.EventMissed || ev.Type == protocol.EventShimGone
	match := !pseudo && (len(s.want) == 0 || s.want[ev.Type])
	if !match && !pseudo {
		return true
	}
	b, err := protocol.Marshal(ev)
	if err != nil {
		s.fail(err)
		return false
	}
	select {
	case s.out <- allLine{b: b, match: match}:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail ends the stream with err (the first one wins).
func (s *allStream) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// warn reports a container that cannot be followed, and the stream goes
// on without it.
func (s *allStream) warn(err error) {
	fmt.Fprintln(os.Stderr, "crier: event --all:", err)
	s.a.logf("warning", "event --all: "+err.Error())
}

// followShim follows the container at name until its deleted event, its
// shim's end, or the stream's, then tells the main loop.
func (s *allStream) followShim(ctx context.Context, name string, history bool) {
	defer s.wg.Done()
	ident, err := s.subscribe(ctx, name, history)
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
		s.fail(fmt.Errorf("event --all: container %q: %w: the stream holds a descriptor per container (raise ulimit -n)", name, err))
	default:
		s.warn(err)
	}
	select {
	case s.ended <- subEnd{name, ident}:
	case <-ctx.Done():
	}
}

// errVanished says that a container's directory was gone before it could
// be followed: it came and went between the look that found it and the
// dial. Its shim delivers its events to the stream's ticket instead
// (takeDeliveries).
var errVanished = errors.New("vanished")

// errSettle says that the shim of a container could not be subscribed to:
// it refused the connection, its socket is missing, or it answered with
// something other than events. settle tells why.
var errSettle = errors.New("no subscription")

// subscribe follows the container at name. It resubscribes after the shim
// dropped it for reading too slowly (the writer waits on stdout) or cut it
// off, resuming after the last event it passed on, so nothing is lost or
// repeated. A stream that ends before deleted, when the shim cannot be
// reached again (or cuts it off again at once), gets a shim-gone line;
// then, as any command does, the stream brings a new shim back
// (recover.go) and goes on from the last event it passed on.
func (s *allStream) subscribe(ctx context.Context, name string, history bool) (statedir.Ident, error) {
	var last *uint64
	mark := s.printed.add(name)
	deleted := false
	defer func() {
		// Kept only while a delivery may still come: the stream printed
		// some of the container's events, and not its end.
		if deleted || last == nil {
			s.printed.drop(name, mark)
		}
	}()
	cut := false
	comebacks := 0
	back := func() bool {
		comebacks++
		if comebacks > maxComebacks || ctx.Err() != nil {
			return false
		}
		if err := s.a.recoverShim(name); err != nil {
			return false
		}
		cut = false
		return true
	}
	for {
		c, ident, err := s.dial(ctx, name)
		switch {
		case cut && (errors.Is(err, errVanished) || errors.Is(err, errSettle)):
			s.gone(ctx, name)
			if errors.Is(err, errSettle) && back() {
				continue
			}
			return ident, nil
		case errors.Is(err, errVanished):
			return ident, nil
		case errors.Is(err, errSettle):
			gone, err := s.settle(ctx, name, ident)
			if gone && back() {
				continue
			}
			return ident, err
		case err != nil:
			return ident, err
		}
		before := last
		err = s.stream(ctx, c, name, history, &last, mark)
		c.Close()
		switch {
		case err == nil:
			// Deleted: the shim removed the directory before it
			// said so, and whatever is at name now is new.
			deleted = true
			return statedir.Ident{}, nil
		case errors.Is(err, protocol.ErrOverflow):
			continue
		case errors.Is(err, errSettle) && !cut:
			gone, err := s.settle(ctx, name, ident)
			if gone && back() {
				continue
			}
			return ident, err
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errSettle):
			// Subscribed, and the stream ended before deleted.
			if cut && last == before {
				s.gone(ctx, name)
				if back() {
					continue
				}
				return ident, nil
			}
			cut = true
			continue
		}
		return ident, err
	}
}

// dial connects to the shim of the container at name, through its checked
// directory, and returns the directory's identity. A missing directory
// gives errVanished and a zero Ident.
func (s *allStream) dial(ctx context.Context, name string) (*protocol.Client, statedir.Ident, error) {
	d, err := s.root.OpenDir(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, statedir.Ident{}, errVanished
	}
	if err != nil {
		// Refused by statedir's checks: named once, not followed.
		ident, _ := s.root.Ident(name)
		return nil, ident, err
	}
	defer d.Close()
	ident, err := d.Ident()
	if err != nil {
		return nil, statedir.Ident{}, err
	}
	sock, err := d.SocketPath()
	if err != nil {
		return nil, ident, err
	}
	c, err := protocol.Dial(ctx, sock)
	switch {
	case err == nil:
		return c, ident, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ECONNREFUSED):
		return nil, ident, errSettle
	}
	return nil, ident, fmt.Errorf("container %q: %w", name, err)
}

// stream subscribes on c and passes the events on until deleted. *last is
// the seq of the last event passed on: a resubscription resumes after it;
// mark says the same to the deliveries.
func (s *allStream) stream(ctx context.Context, c *protocol.Client, name string, history bool, last **uint64, mark *printedMark) error {
	if err := c.Subscribe(ctx, protocol.SubscribeOptions{NoHistory: !history, Since: *last}); err != nil {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, protocol.ErrBusy):
			return fmt.Errorf("container %q: %w", name, err)
		}
		// Its create failed, or it was deleted or died meanwhile.
		return errSettle
	}
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		seq := ev.Seq
		if ev.Type == protocol.EventMissed {
			seq = ev.To
		}
		if !s.emit(ctx, ev) {
			return ctx.Err()
		}
		*last = &seq
		s.printed.note(mark, ev, seq)
		if ev.Type == protocol.EventDeleted {
			return nil
		}
	}
}

// maxComebacks bounds how many times one follow brings a shim back: one
// that dies again at once is not chased for ever.
const maxComebacks = 3

// settle decides what became of a container whose shim could not be
// subscribed to. While the shim its state file names runs (its create is
// failing, or it is removing the directory), it waits for it to exit.
// Then the same directory still there has lost its shim: one shim-gone
// line says so, and gone is true. A directory gone, or another one, is a
// container that came and went before it could be followed, and nothing
// is printed.
func (s *allStream) settle(ctx context.Context, name string, ident statedir.Ident) (gone bool, err error) {
	d, err := s.root.OpenDir(name)
	if err != nil {
		return false, nil
	}
	st, err := d.ReadState()
	d.Close()
	if err != nil {
		// The state file is the first thing removed with the
		// directory: it is going.
		return false, nil
	}
	if err := waitShimExit(ctx, st.ShimPid, st.ShimStart); err != nil {
		return false, err
	}
	if cur, err := s.root.Ident(name); err != nil || cur != ident {
		return false, nil
	}
	s.gone(ctx, name)
	return true, nil
}

// gone prints the shim-gone line of the container at name.
func (s *allStream) gone(ctx context.Context, name string) {
	s.emit(ctx, protocol.Event{Type: protocol.EventShimGone, ID: name, Timestamp: protocol.FormatTime(time.Now())})
}

// waitShimExit returns once the process pid that started at start has exited,
// or ctx ends.
func waitShimExit(ctx context.Context, pid int, start uint64) error {
	fd, err := openChecked(pid, start)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	exited := make(chan error, 1)
	if err := pidfd.Notify(fd, func(err error) { exited <- err }); err != nil {
		return err
	}
	select {
	case err := <-exited:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
