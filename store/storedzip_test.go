package store_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
)

// putContent stores data as chunks of at most chunkSize bytes and returns
// an entry holding it.
func putContent(t *testing.T, r *store.Repository, name string, data []byte, chunkSize int) store.Entry {
	t.Helper()
	e := store.Entry{Name: name, Mode: 0o640, Modified: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		Size: int64(len(data)), CRC32: crc32.ChecksumIEEE(data)}
	for len(data) > 0 {
		n := min(chunkSize, len(data))
		id := store.HashChunk(data[:n])
		if _, err := r.PutChunk(context.Background(), id, data[:n]); err != nil {
			t.Fatal(err)
		}
		e.Chunks = append(e.Chunks, id)
		data = data[n:]
	}
	return e
}

func dirEntry(name string) store.Entry {
	return store.Entry{Name: name, Mode: fs.ModeDir | 0o755, Modified: time.Date(2025, 12, 31, 23, 59, 58, 0, time.UTC)}
}

// checkStoredZip writes z, checks its length against Size, and reads it back
// with archive/zip: the same entries in the same order, all STORED, with the
// wanted contents (want maps names to content; directories are absent).
func checkStoredZip(t *testing.T, r *store.Repository, v *store.Version, replace map[string][]byte, want map[string][]byte) []byte {
	t.Helper()
	z, err := r.StoredZip(v, replace)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := z.WriteTo(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != z.Size() {
		t.Fatalf("Size() = %d, WriteTo wrote %d bytes", z.Size(), buf.Len())
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(v.Entries) {
		t.Fatalf("archive has %d entries, version %d", len(zr.File), len(v.Entries))
	}
	for i, f := range zr.File {
		e := v.Entries[i]
		if f.Name != e.Name || f.Method != zip.Store || f.Mode() != e.Mode || !e.Modified.IsZero() && !f.Modified.Equal(e.Modified) {
			t.Fatalf("entry %d = %q method %d mode %v time %v, want %q STORED %v %v", i, f.Name, f.Method, f.Mode(), f.Modified, e.Name, e.Mode, e.Modified)
		}
		if e.IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(got, want[e.Name]) {
			t.Errorf("%s: content differs (%d bytes, want %d)", e.Name, len(got), len(want[e.Name]))
		}
	}
	return buf.Bytes()
}

func TestStoredZipShapes(t *testing.T) {
	r, _ := newRepo(t)
	small := randomData(7, 3000)
	multi := randomData(8, 300_000)
	meta := []byte(`{"metadata_version": 1, "name": "leader1", "leader_hostname": "leader1", "is_leader": true}`)
	many := &store.Version{Host: "h"}
	manyWant := map[string][]byte{}
	for i := range 70_000 { // more entries than a ZIP without ZIP64 counts
		name := fmt.Sprintf("d/%05d", i)
		e := store.Entry{Name: name, Mode: 0o600}
		if i%10_000 == 0 {
			e = putContent(t, r, name, small, 1000)
			manyWant[name] = small
		}
		many.Entries = append(many.Entries, e)
	}
	tests := []struct {
		name    string
		entries []store.Entry
		replace map[string][]byte
		want    map[string][]byte
	}{
		{name: "no entries"},
		{name: "directories only", entries: []store.Entry{dirEntry("storage/"), dirEntry("plugins/")}},
		{name: "empty file", entries: []store.Entry{{Name: "empty", Mode: 0o644}}, want: map[string][]byte{"empty": nil}},
		{name: "files in many chunks", entries: []store.Entry{
			dirEntry("storage/"),
			putContent(t, r, "config.ini", small, 1<<20),
			putContent(t, r, "storage/pioreactor.sqlite", multi, 7_000),
			{Name: "storage/empty", Mode: 0o600},
			putContent(t, r, "unit_config.ini", small, 100),
		}, want: map[string][]byte{"config.ini": small, "storage/pioreactor.sqlite": multi, "storage/empty": nil, "unit_config.ini": small}},
		{name: "unicode names", entries: []store.Entry{
			dirEntry("plugins/é/"), putContent(t, r, "plugins/é/漢字 données.yaml", small, 512),
		}, want: map[string][]byte{"plugins/é/漢字 données.yaml": small}},
		{name: "time before 1980 and setuid bits", entries: []store.Entry{
			{Name: "old", Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Modified: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
		}, want: map[string][]byte{"old": nil}},
		{name: "metadata replaced", entries: []store.Entry{
			putContent(t, r, "config.ini", small, 1000), putContent(t, r, "pioreactor_export_metadata.json", meta, 1000),
		}, replace: map[string][]byte{"pioreactor_export_metadata.json": []byte(`{"name": "worker2"}`)},
			want: map[string][]byte{"config.ini": small, "pioreactor_export_metadata.json": []byte(`{"name": "worker2"}`)}},
		{name: "replaced by longer content", entries: []store.Entry{
			putContent(t, r, "pioreactor_export_metadata.json", meta, 1000),
		}, replace: map[string][]byte{"pioreactor_export_metadata.json": bytes.Repeat(meta, 3)},
			want: map[string][]byte{"pioreactor_export_metadata.json": bytes.Repeat(meta, 3)}},
		{name: "70000 entries", entries: many.Entries, want: manyWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &store.Version{ID: "0123456789", Host: "h", Entries: tt.entries}
			for _, e := range tt.entries {
				if _, ok := tt.want[e.Name]; !ok && !e.IsDir() && e.Size == 0 {
					tt.want[e.Name] = nil
				}
			}
			data := checkStoredZip(t, r, v, tt.replace, tt.want)
			if tt.name != "70000 entries" {
				pythonCheck(t, data, v)
			}
		})
	}
}

// pythonCheck reads the archive with CPython's zipfile, as Pioreactor's
// import does: testzip (every CRC), names in order, and no symlink bits.
func pythonCheck(t *testing.T, data []byte, v *store.Version) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required for the zipfile cross-check; install it with `apt-get install python3`")
		}
		t.Log("python3 not found: zipfile cross-check not run (apt-get install python3)")
		return
	}
	p := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    print(json.dumps({"bad": bad, "names": [i.filename for i in z.infolist()],
        "sizes": [i.file_size for i in z.infolist()], "methods": [i.compress_type for i in z.infolist()],
        "modes": [i.external_attr >> 16 for i in z.infolist()]}))`
	out, err := exec.Command(py, "-c", script, p).CombinedOutput()
	if err != nil {
		t.Fatalf("python zipfile: %v\n%s", err, out)
	}
	var rep struct {
		Bad     *string  `json:"bad"`
		Names   []string `json:"names"`
		Sizes   []int64  `json:"sizes"`
		Methods []int    `json:"methods"`
		Modes   []uint32 `json:"modes"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if rep.Bad != nil {
		t.Errorf("python zipfile: bad member %q", *rep.Bad)
	}
	if len(rep.Names) != len(v.Entries) {
		t.Fatalf("python sees %d members, want %d", len(rep.Names), len(v.Entries))
	}
	for i, e := range v.Entries {
		if rep.Names[i] != e.Name || rep.Methods[i] != 0 {
			t.Errorf("python member %d = %q method %d, want %q STORED", i, rep.Names[i], rep.Methods[i], e.Name)
		}
		if rep.Modes[i]&0o170000 == 0o120000 {
			t.Errorf("python sees %q as a symlink", e.Name)
		}
		if (rep.Modes[i]&0o170000 == 0o040000) != e.IsDir() {
			t.Errorf("python member %q mode %o, dir = %v", e.Name, rep.Modes[i], e.IsDir())
		}
	}
}

// sparseFile writes a stream to a file, leaving holes for runs of zeros, so
// that a multi-GiB archive of zeros costs no disk.
type sparseFile struct {
	f   *os.File
	off int64
}

func (s *sparseFile) Write(p []byte) (int, error) {
	zero := true
	for _, b := range p {
		if b != 0 {
			zero = false
			break
		}
	}
	if !zero {
		if _, err := s.f.WriteAt(p, s.off); err != nil {
			return 0, err
		}
	}
	s.off += int64(len(p))
	return len(p), nil
}

// TestStoredZipLarge writes an archive past every ZIP64 threshold: an entry
// over 4 GiB (made of one zero chunk repeated), entries and the central
// directory beyond 4 GiB, and checks its length and layout with archive/zip
// and Python's zipfile, reading the entries that follow the large one.
func TestStoredZipLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 5 GiB sparse archive (-short)")
	}
	ctx := context.Background()
	r, _ := newRepo(t)
	zero := make([]byte, 8<<20)
	zid := store.HashChunk(zero)
	if _, err := r.PutChunk(ctx, zid, zero); err != nil {
		t.Fatal(err)
	}
	const n = 5 << 7 // 5 GiB in 8 MiB chunks
	big := store.Entry{Name: "storage/pioreactor.sqlite", Mode: 0o644, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Size: n * int64(len(zero))}
	crc := crc32.NewIEEE()
	for range n {
		big.Chunks = append(big.Chunks, zid)
		crc.Write(zero)
	}
	big.CRC32 = crc.Sum32()
	after := randomData(9, 5000)
	meta := []byte(`{"name": "leader1"}`)
	v := &store.Version{ID: "abcdef12", Host: "leader1", Entries: []store.Entry{
		dirEntry("storage/"),
		putContent(t, r, "config.ini", after[:100], 1000),
		big,
		putContent(t, r, "unit_config.ini", after, 1000),
		dirEntry("plugins/"),
		putContent(t, r, "pioreactor_export_metadata.json", meta, 1000),
	}}
	z, err := r.StoredZip(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "big.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sw := &sparseFile{f: f}
	if err := z.WriteTo(ctx, sw); err != nil {
		t.Fatal(err)
	}
	if sw.off != z.Size() {
		t.Fatalf("Size() = %d, WriteTo wrote %d bytes", z.Size(), sw.off)
	}
	if err := f.Truncate(sw.off); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(f, sw.off)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"config.ini": after[:100], "unit_config.ini": after, "pioreactor_export_metadata.json": meta}
	for i, zf := range zr.File {
		if zf.Name != v.Entries[i].Name || zf.UncompressedSize64 != uint64(v.Entries[i].Size) || zf.CRC32 != v.Entries[i].CRC32 {
			t.Errorf("entry %d = %q size %d crc %08x, want %q %d %08x", i, zf.Name, zf.UncompressedSize64, zf.CRC32, v.Entries[i].Name, v.Entries[i].Size, v.Entries[i].CRC32)
		}
		if w, ok := want[zf.Name]; ok {
			rc, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, w) {
				t.Errorf("%s: read %d bytes, %v; want %d bytes", zf.Name, len(got), err, len(w))
			}
		}
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required for the zipfile cross-check; install it with `apt-get install python3`")
		}
		t.Log("python3 not found: zipfile cross-check not run")
		return
	}
	script := `import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        print(i.filename, i.file_size, i.header_offset, len(z.read(i)) if i.file_size < 1<<20 else "-")`
	out, err := exec.Command(py, "-c", script, p).CombinedOutput()
	if err != nil {
		t.Fatalf("python zipfile: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(v.Entries) {
		t.Fatalf("python sees %d members:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var name string
		var size, off int64
		fmt.Sscan(line, &name, &size, &off)
		if name != v.Entries[i].Name || size != v.Entries[i].Size {
			t.Errorf("python member %d: %q, want %q size %d", i, line, v.Entries[i].Name, v.Entries[i].Size)
		}
		if want, ok := want[name]; ok && !strings.HasSuffix(line, fmt.Sprint(len(want))) {
			t.Errorf("python read %q, want %d bytes", line, len(want))
		}
	}
}

func TestStoredZipDamage(t *testing.T) {
	ctx := context.Background()
	data := randomData(3, 100_000)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string, e *store.Entry)
		want   error
	}{
		{"chunk corrupted", func(t *testing.T, dir string, e *store.Entry) {
			p := filepath.Join(dir, "chunks", e.Chunks[2].String()[:2], e.Chunks[2].String())
			if err := os.WriteFile(p, []byte("not zstd"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, store.ErrDamaged},
		{"chunk missing", func(t *testing.T, dir string, e *store.Entry) {
			if err := os.Remove(filepath.Join(dir, "chunks", e.Chunks[3].String()[:2], e.Chunks[3].String())); err != nil {
				t.Fatal(err)
			}
		}, fs.ErrNotExist},
		{"recorded CRC wrong", func(t *testing.T, dir string, e *store.Entry) { e.CRC32++ }, store.ErrDamaged},
		{"recorded size wrong", func(t *testing.T, dir string, e *store.Entry) { e.Size-- }, store.ErrDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRepo(t)
			e := putContent(t, r, "storage/pioreactor.sqlite", data, 10_000)
			tt.damage(t, dir, &e)
			v := &store.Version{ID: "0123456789", Host: "h", Entries: []store.Entry{putContent(t, r, "config.ini", data[:10], 100), e}}
			z, err := r.StoredZip(v, nil)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = z.WriteTo(ctx, &buf)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), e.Name) {
				t.Fatalf("WriteTo = %v, want %v naming %s", err, tt.want, e.Name)
			}
			if int64(buf.Len()) >= z.Size() {
				t.Errorf("a damaged archive was written whole (%d bytes)", buf.Len())
			}
		})
	}
}

func TestStoredZipCancel(t *testing.T) {
	r, _ := newRepo(t)
	data := randomData(4, 1<<20)
	v := &store.Version{ID: "0123456789", Host: "h", Entries: []store.Entry{putContent(t, r, "a", data, 1000)}}
	z, err := r.StoredZip(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 100_000, cancel: cancel}
	if err := z.WriteTo(ctx, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteTo after cancel = %v, want context.Canceled", err)
	}
}

// cancelAfter cancels a context once n bytes went through it.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n -= len(p)
	if c.n <= 0 {
		c.cancel()
	}
	return len(p), nil
}

// WriteZip that fails midway must leave nothing running that still
// writes to w: the caller may have closed it by then (a temporary file)
// or handed it back (a web download's connection, aborted on the error).
// The damaged chunk lies past the first segments of a large entry, so the
// parallel compressor has started and holds segments in flight.
func TestWriteZipDamageStopsTheCompressor(t *testing.T) {
	r, dir := newRepo(t)
	data := randomData(5, 4<<20)
	e := putContent(t, r, "storage/pioreactor.sqlite", data, 100_000)
	c := e.Chunks[30] // 3 MB in
	if err := os.WriteFile(filepath.Join(dir, "chunks", c.String()[:2], c.String()), []byte("not zstd"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := &store.Version{ID: "0123456789", Host: "h", Entries: []store.Entry{e}}
	const compressor = "store.(*parallelDeflater).start.func"
	before := goroutinesIn(compressor)
	w := &afterReturn{}
	err := r.WriteZip(context.Background(), w, v)
	w.returned.Store(true)
	if !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("WriteZip = %v, want %v", err, store.ErrDamaged)
	}
	waitGone(t, compressor, before)
	if n := w.late.Load(); n > 0 {
		t.Errorf("%d writes to w after WriteZip returned", n)
	}
}

// afterReturn counts the writes made once returned is set.
type afterReturn struct {
	returned atomic.Bool
	late     atomic.Int32
}

func (w *afterReturn) Write(p []byte) (int, error) {
	if w.returned.Load() {
		w.late.Add(1)
	}
	return len(p), nil
}
