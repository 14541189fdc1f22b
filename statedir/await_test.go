package statedir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func alive(int, uint64) bool { return true }
func dead(int, uint64) bool  { return false }

// entries lists a directory's names, or nil once it is gone.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestAwaitDeliver: every live ticket gets the whole history, a waiting
// Wait returns it, and giving the tickets back leaves nothing.
func TestAwaitDeliver(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing", "root")
	a, err := Await(root, "c1", 1, alive)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Await(root, "c1", 1, alive)
	if err != nil {
		t.Fatal(err)
	}
	if !Awaited(root, "c1") || Awaited(root, "c2") {
		t.Fatalf("Awaited: c1 %v, c2 %v; want true, false", Awaited(root, "c1"), Awaited(root, "c2"))
	}
	if got, ok, err := a.Delivered(); ok || err != nil || got != nil {
		t.Fatalf("Delivered before any delivery = %q, %v, %v", got, ok, err)
	}
	history := []byte("{\"type\":\"created\"}\n{\"type\":\"deleted\"}\n")
	got := make(chan []byte)
	go func() {
		h, err := a.Wait(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	if err := Deliver(root, "c1", history, alive); err != nil {
		t.Fatal(err)
	}
	if h := <-got; string(h) != string(history) {
		t.Errorf("Wait = %q, want %q", h, history)
	}
	if h, ok, err := b.Delivered(); !ok || err != nil || string(h) != string(history) {
		t.Errorf("the other ticket: Delivered = %q, %v, %v", h, ok, err)
	}
	a.Close()
	b.Close()
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("left in the root: %q", names)
	}
}

// TestAwaitWaitReturnsOnCreate: a Wait returns nil once the container's
// directory appears, even one made before the Wait began.
func TestAwaitWaitReturnsOnCreate(t *testing.T) {
	root := t.TempDir()
	tk, err := Await(root, "c1", 1, alive)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	done := make(chan error)
	go func() {
		h, err := tk.Wait(context.Background())
		if err == nil && h != nil {
			err = errors.New("a delivery")
		}
		done <- err
	}()
	os.Mkdir(filepath.Join(root, "c1"), 0o700)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h, err := tk.Wait(context.Background()); h != nil || err != nil {
		t.Errorf("Wait with the directory there = %q, %v", h, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	os.Remove(filepath.Join(root, "c1"))
	if _, err := tk.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its deadline = %v", err)
	}
}

// TestDeliverSkipsGivenBackAndDead: a ticket given back is not made again
// by a delivery, and a dead holder's ticket is removed, not written.
func TestDeliverSkipsGivenBackAndDead(t *testing.T) {
	root := t.TempDir()
	tk, err := Await(root, "c1", 1, alive)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, awaitPrefix+"c1")
	// Given back between Deliver's listing and its swap.
	if err := deliverOne(tk.dirfd, dir, tk.name, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, tk.name))
	if err := deliverOne(tk.dirfd, dir, tk.name, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("after a delivery to a ticket given back: %q", names)
	}
	tk.Close()

	if _, err := Await(root, "c1", 1, alive); err != nil { // its holder "dies"
		t.Fatal(err)
	}
	if err := Deliver(root, "c1", []byte("x\n"), dead); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("after delivering to dead holders: %q", names)
	}
}

// TestSweepAbandonedTickets: a delete's sweep takes away the tickets of
// dead holders and their emptied directory, and leaves live ones.
func TestSweepAbandonedTickets(t *testing.T) {
	root := t.TempDir()
	for _, id := range []string{"c1", "c2"} {
		if _, err := Await(root, id, 1, alive); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.SweepAbandoned(alive); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, root); len(names) != 2 {
		t.Fatalf("a sweep with every holder alive left %q", names)
	}
	if _, err := r.SweepAbandoned(dead); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("a sweep with every holder dead left %q", names)
	}
}

// TestAwaitRefusesPlanted: a ticket directory that is a link, or that
// others may write, is refused, by the waiter and by the delivery: the
// delivery writes as root.
func TestAwaitRefusesPlanted(t *testing.T) {
	cases := []struct {
		name  string
		plant func(t *testing.T, path, elsewhere string)
		want  string
	}{
		{"link", func(t *testing.T, path, elsewhere string) { os.Symlink(elsewhere, path) }, "not a directory"},
		{"group-writable", func(t *testing.T, path, _ string) {
			os.Mkdir(path, 0o700)
			os.Chmod(path, 0o770)
		}, "writable by group or others"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, elsewhere := t.TempDir(), t.TempDir()
			tc.plant(t, filepath.Join(root, awaitPrefix+"c1"), elsewhere)
			if tk, err := Await(root, "c1", 1, alive); err == nil || !strings.Contains(err.Error(), tc.want) {
				if tk != nil {
					tk.Close()
				}
				t.Errorf("Await = %v, want an error with %q", err, tc.want)
			}
			if err := Deliver(root, "c1", []byte("x\n"), alive); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Deliver = %v, want an error with %q", err, tc.want)
			}
			if names := entries(t, elsewhere); len(names) != 0 {
				t.Errorf("written through the plant: %q", names)
			}
		})
	}
}

func TestTicketOwner(t *testing.T) {
	cases := []struct {
		name  string
		pid   int
		start uint64
		ok    bool
	}{
		{"12-345-0123456789abcdef", 12, 345, true},
		{".12-345-0123456789abcdef.0123456789abcdef", 0, 0, false}, // a delivery's temporary
		{"12-345", 0, 0, false},
		{"0-345-0123456789abcdef", 0, 0, false},
		{"x-345-0123456789abcdef", 0, 0, false},
	}
	for _, tc := range cases {
		pid, start, ok := ticketOwner(tc.name)
		if pid != tc.pid || start != tc.start || ok != tc.ok {
			t.Errorf("ticketOwner(%q) = %d, %d, %v; want %d, %d, %v", tc.name, pid, start, ok, tc.pid, tc.start, tc.ok)
		}
	}
}

// TestAwaitAllDeliver: a stream's ticket gets a history unless its holder
// is subscribed; a dead holder's ticket is removed; Close leaves nothing,
// a delivery not taken included.
func TestAwaitAllDeliver(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	tk, err := AwaitAll(root, 1, alive)
	if err != nil {
		t.Fatal(err)
	}
	if !AwaitedAll(root) {
		t.Fatal("AwaitedAll = false with a ticket held")
	}
	notSubscribed := func(int) bool { return false }
	for _, h := range []string{"a\n", "b\n"} {
		if err := DeliverAll(root, []byte(h), alive, notSubscribed); err != nil {
			t.Fatal(err)
		}
	}
	if err := DeliverAll(root, []byte("subscribed\n"), alive, func(pid int) bool { return pid == os.Getpid() }); err != nil {
		t.Fatal(err)
	}
	got, err := tk.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, b := range got {
		s = append(s, string(b))
	}
	slices.Sort(s)
	if want := []string{"a\n", "b\n"}; !slices.Equal(s, want) {
		t.Errorf("Next = %q, want %q", s, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if got, err := tk.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing delivered = %q, %v", got, err)
	}
	DeliverAll(root, []byte("c\n"), alive, notSubscribed)
	tk.Close()
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("left in the root after Close: %q", names)
	}

	if _, err := AwaitAll(root, 1, alive); err != nil { // its holder "dies"
		t.Fatal(err)
	}
	if err := DeliverAll(root, []byte("x\n"), dead, notSubscribed); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("left in the root after delivering to dead holders: %q", names)
	}
}

// TestWaitGone: it returns once the directory goes, or at once if it is
// missing or has a socket (a new container's), and blocks meanwhile.
func TestWaitGone(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "c1")
	if err := WaitGone(context.Background(), dir); err != nil {
		t.Errorf("WaitGone of a missing directory = %v", err)
	}
	os.Mkdir(dir, 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := WaitGone(ctx, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitGone of a directory that stays = %v", err)
	}
	done := make(chan error)
	go func() { done <- WaitGone(context.Background(), dir) }()
	// Removed either before the watch (ENOENT) or after (the event).
	os.Remove(dir)
	if err := <-done; err != nil {
		t.Errorf("WaitGone of a directory removed = %v", err)
	}
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, SocketName), nil, 0o600)
	if err := WaitGone(context.Background(), dir); err != nil {
		t.Errorf("WaitGone of a directory with a socket = %v", err)
	}
}

// TestAwaitSweepsDead: taking a ticket removes those of dead holders
// (killed with SIGKILL, they could not give theirs back).
func TestAwaitSweepsDead(t *testing.T) {
	root := t.TempDir()
	if _, err := Await(root, "c1", 1, alive); err != nil {
		t.Fatal(err)
	}
	tk, err := Await(root, "c1", 1, dead) // the first holder is "dead" now
	if err != nil {
		t.Fatal(err)
	}
	if names := entries(t, AwaitPath(root, "c1")); len(names) != 1 || names[0] != tk.name {
		t.Errorf("tickets after a sweep: %q, want only %q", names, tk.name)
	}
	tk.Close()
	if _, err := AwaitAll(root, 1, alive); err != nil {
		t.Fatal(err)
	}
	all, err := AwaitAll(root, 1, dead)
	if err != nil {
		t.Fatal(err)
	}
	if names := entries(t, AwaitAllPath(root)); len(names) != 1 || names[0] != all.name {
		t.Errorf("streams' tickets after a sweep: %q, want only %q", names, all.name)
	}
	all.Close()
	if names := entries(t, root); len(names) != 0 {
		t.Errorf("left in the root: %q", names)
	}
}
