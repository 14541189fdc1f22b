package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/crier-runtime/crier/statedir"
)

// TestEventAllFollowsEachDirectoryOnce drives the main loop of event --all
// by hand: a name reported again while followed, or after its follower
// ended on a directory still there (its shim gone), starts nothing; a
// directory made anew under the name is followed, with history.
func TestEventAllFollowsEachDirectoryOnce(t *testing.T) {
	rootPath := t.TempDir()
	root, err := statedir.OpenRoot(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	followed := make(chan string, 16)
	s := &allStream{root: root, names: map[string]*nameState{}}
	s.follow = func(ctx context.Context, name string, history bool) {
		defer s.wg.Done()
		if history {
			name += "+history"
		}
		followed <- name
	}
	ctx := context.Background()
	dir := filepath.Join(rootPath, "a")
	mkdir := func() statedir.Ident {
		t.Helper()
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		id, err := root.Ident("a")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	want := func(step string, names ...string) {
		t.Helper()
		s.wg.Wait() // every follower started has reported
		var got []string
		for len(followed) > 0 {
			got = append(got, <-followed)
		}
		if len(got) != len(names) || (len(got) > 0 && got[0] != names[0]) {
			t.Errorf("%s: followed %v, want %v", step, got, names)
		}
	}

	first := mkdir()
	s.reconcileWith(ctx, "a", false) // the first listing, --no-history
	s.reconcile(ctx, "a")            // inotify saw it too
	want("listed and reported", "a")
	s.endOf(ctx, subEnd{"a", first}) // shim gone, the directory stays
	s.reconcile(ctx, "a")
	want("ended on a directory still there")

	os.Remove(dir)
	s.reconcile(ctx, "a")
	second := mkdir()
	s.reconcile(ctx, "a")
	want("made anew", "a+history")

	// Deleted and made again while its follower still runs: the name
	// is looked at again when the follower ends.
	os.Remove(dir)
	s.reconcile(ctx, "a")
	mkdir()
	s.reconcile(ctx, "a")
	want("made again while followed")
	s.endOf(ctx, subEnd{"a", second})
	want("follower of the old one ended", "a+history")

	// A follower that found no directory, with none there now.
	os.Remove(dir)
	s.endOf(ctx, subEnd{"a", statedir.Ident{}})
	if _, ok := s.names["a"]; ok {
		t.Errorf("a name with no directory and no follower is still tracked")
	}
	os.Mkdir(filepath.Join(rootPath, "not an ID"), 0o700)
	s.reconcile(ctx, "not an ID")
	want("a name that is no container ID")
}
