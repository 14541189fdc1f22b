package statedir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestRootWatchReportsPublishAndRemove: a published directory is reported
// once under its ID, its temporary name never; its removal is reported;
// a directory made anew under the same name has another Ident.
func TestRootWatchReportsPublishAndRemove(t *testing.T) {
	root := t.TempDir()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := r.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	publish := func() Ident {
		d, err := r.NewTemp(0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.Publish("c1"); err != nil {
			t.Fatal(err)
		}
		id, err := d.Ident()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := publish()
	wantChanges(t, ctx, w, Change{Name: "c1"})
	if got, err := r.Ident("c1"); err != nil || got != first {
		t.Errorf("Root.Ident(c1) = %v, %v; want the Dir's %v", got, err, first)
	}
	if err := os.Remove(filepath.Join(root, "c1")); err != nil {
		t.Fatal(err)
	}
	wantChanges(t, ctx, w, Change{Name: "c1", Gone: true})
	if _, err := r.Ident("c1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Root.Ident of a removed directory = %v, want ErrNotExist", err)
	}
	if second := publish(); second == first {
		t.Errorf("a directory made anew under the same name has the same Ident %v", first)
	}
	wantChanges(t, ctx, w, Change{Name: "c1"})
}

// TestRootWatchRootMoved: the watch ends with ErrRootGone when the root is
// moved away, and with the context's error when the context ends.
func TestRootWatchRootMoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	os.Mkdir(root, 0o700)
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := r.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing happening = %v, want the context's deadline", err)
	}
	if err := os.Rename(root, root+".old"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, _, err := w.Next(ctx); !errors.Is(err, ErrRootGone) {
		t.Errorf("Next after the root was moved = %v, want ErrRootGone", err)
	}
}

func wantChanges(t *testing.T, ctx context.Context, w *RootWatch, want ...Change) {
	t.Helper()
	got, overflow, err := w.Next(ctx)
	if err != nil || overflow || !reflect.DeepEqual(got, want) {
		t.Errorf("Next = %v (overflow %v), %v; want %v", got, overflow, err, want)
	}
}
