package local

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// WriteFileAtomic replaces a file whole, and a failed write leaves the old
// content and no temporary file behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.json")
	write := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	if n, err := WriteFileAtomic(path, write("first")); err != nil || n != 5 {
		t.Fatalf("first write: %d, %v", n, err)
	}
	boom := errors.New("boom")
	if _, err := WriteFileAtomic(path, func(f *os.File) error {
		if _, err := f.WriteString("half"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed write returned %v, want the writer's error", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "first" {
		t.Errorf("after a failed write: %q, %v; want the first content", b, err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("directory holds %v (%v), want the file alone", ents, err)
	}
	if _, err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), write("x")); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}
