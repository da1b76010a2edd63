package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns small archives of every kind the Reader handles.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	text := bytes.Repeat([]byte("od,0.05\n"), 20)
	seeds := map[string][]byte{
		"empty":      makeZip(tb),
		"descriptor": makeZip(tb, file{name: "a", data: text, method: Deflate}),
		"raw": makeZip(tb,
			file{name: "d/", mode: fs.ModeDir | 0o755},
			file{name: "d/s", data: text[:9], method: Store, raw: true},
			file{name: "d/f", data: text, method: Deflate, raw: true}),
		"html": []byte("<!DOCTYPE html><html><body>502</body></html>"),
	}
	if py, err := os.ReadFile(filepath.Join("testdata", "streamed.zip")); err == nil {
		seeds["python-streamed"] = py
	}
	return seeds
}

// TestWriteFuzzSeeds writes the seed corpus of FuzzReader with -update.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if !*update {
		if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
			t.Fatalf("no seed corpus in %s (run go test -update to write it): %v", dir, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzReader reads arbitrary bytes. The Reader must not panic or loop, must
// fail only with its own error kinds, and whatever it accepts must survive
// being written again (with archive/zip) and read back, and must read the
// same with archive/zip.
func FuzzReader(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	lim := Limits{MaxEntries: 64, MaxEntrySize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, hdrs, err := readArchive(data, lim)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrLimit) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		compareStdlib(t, data, got)
		files := make([]file, len(got))
		for i, c := range got {
			files[i] = file{name: c.hdr.Name, data: c.data, method: c.hdr.Method, mode: hdrs[i].Mode, raw: true}
			if files[i].mode == 0 {
				files[i].mode = 0o644 // makeZip's default
			}
		}
		again, hdrs2, err := readArchive(makeZip(t, files...), lim)
		if err != nil {
			t.Fatalf("re-written archive does not read: %v", err)
		}
		for i := range got {
			a, b := got[i], again[i]
			if a.hdr.Name != b.hdr.Name || !bytes.Equal(a.data, b.data) || a.hdr.CRC32 != b.hdr.CRC32 {
				t.Fatalf("entry %d changed: %q (%d bytes) became %q (%d bytes)",
					i, a.hdr.Name, len(a.data), b.hdr.Name, len(b.data))
			}
			if files[i].mode != hdrs2[i].Mode && modeProblem(files[i].mode) == "" {
				t.Errorf("entry %q: mode %v became %v", a.hdr.Name, files[i].mode, hdrs2[i].Mode)
			}
		}
	})
}

// compareStdlib checks that archive/zip reads the same entries and content.
func compareStdlib(t *testing.T, data []byte, got []content) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		t.Fatalf("accepted, but archive/zip says: %v", err)
	}
	if len(zr.File) != len(got) {
		t.Fatalf("archive/zip sees %d entries, the Reader %d", len(zr.File), len(got))
	}
	for i, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatalf("archive/zip cannot open %q: %v", zf.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("archive/zip cannot read %q: %v", zf.Name, err)
		}
		if zf.Name != got[i].hdr.Name || !bytes.Equal(b, got[i].data) {
			t.Fatalf("archive/zip reads entry %d as %q (%d bytes), the Reader as %q (%d bytes)",
				i, zf.Name, len(b), got[i].hdr.Name, len(got[i].data))
		}
	}
}
