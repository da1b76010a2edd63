package local

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestOpenMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := Open(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v; want fs.ErrNotExist", err)
	}
	for _, want := range []string{dir, "piosnap init"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(missing) error %q does not mention %q", err, want)
		}
	}
}

func TestOpenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(file) = %v; want a not-a-directory error", err)
	}
	if _, err := Create(filepath.Join(file, "sub")); err == nil {
		t.Errorf("Create below a file succeeded; want an error")
	}
}

func TestCreateIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	for range 2 {
		b, err := Create(dir)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if b.Location() != dir {
			t.Errorf("Location() = %q, want %q", b.Location(), dir)
		}
	}
}

// TestNoTempFilesLeft checks that failed Puts clean up and that a stray
// temporary file from a crash is invisible to List.
func TestNoTempFilesLeft(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "x/y", bytes.NewReader([]byte("abc")), 5); err == nil {
		t.Fatal("short Put succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("failed Put left %d files: %v", len(entries), entries)
	}
	if err := os.WriteFile(filepath.Join(dir, "x", tempPrefix+"crash"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = b.List(ctx, "", func(name string, _ int64) error {
		t.Errorf("List reported %q", name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "x/"+tempPrefix+"crash"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Stat of a temporary file name = %v; want fs.ErrInvalid", err)
	}
}

func TestDirectoriesAreNotObjects(t *testing.T) {
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "d/obj", bytes.NewReader([]byte("1")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(directory) = %v; want fs.ErrNotExist", err)
	}
	if _, err := b.Get(ctx, "d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(directory) = %v; want fs.ErrNotExist", err)
	}
	if err := b.Delete(ctx, "d"); err == nil {
		t.Errorf("Delete(directory) succeeded; want an error")
	}
	if err := b.Put(ctx, "d/obj/under", bytes.NewReader([]byte("1")), 1); err == nil {
		t.Errorf("Put below an object succeeded; want an error")
	}
}

func TestListInvalidPrefix(t *testing.T) {
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"../", "/etc/", `a\b`, "a/../../"} {
		err := b.List(context.Background(), prefix, func(string, int64) error { return nil })
		if !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("List(%q) = %v; want fs.ErrInvalid", prefix, err)
		}
	}
}

func TestFileInTheWay(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A file where a directory is needed makes creating the temp file fail.
	if err := os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "blocked/x", bytes.NewReader([]byte("1")), 1); err == nil {
		t.Errorf("Put with a file in the way succeeded; want an error")
	}
}

// RemoveStaleTemp removes old temporary files in and below the folder the
// prefix names, and nothing else.
func TestRemoveStaleTemp(t *testing.T) {
	ctx := context.Background()
	b, err := Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	files := map[string]bool{ // path below the root: removed?
		"locks/.tmp-old":        true,
		"locks/.tmp-new":        false,
		"locks/a.json":          false,
		"locks/sub/.tmp-deeper": true,
		".tmp-top":              false,
	}
	for rel := range files {
		p := filepath.Join(b.root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if rel != "locks/.tmp-new" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := b.RemoveStaleTemp(ctx, "locks/", time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("RemoveStaleTemp = %d, %v; want 2, nil", n, err)
	}
	for rel, removed := range files {
		_, err := os.Stat(filepath.Join(b.root, rel))
		if gone := errors.Is(err, fs.ErrNotExist); gone != removed {
			t.Errorf("%s: removed = %v, want %v", rel, gone, removed)
		}
	}
	if n, err := b.RemoveStaleTemp(ctx, "missing/", time.Minute); err != nil || n != 0 {
		t.Errorf("missing folder: %d, %v; want 0, nil", n, err)
	}
	if _, err := b.RemoveStaleTemp(ctx, "../x/", time.Minute); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("prefix outside the root: %v, want fs.ErrInvalid", err)
	}
}
