package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/piosnap/piosnap/store"
)

// agedRepo stores nights of a synthetic database of pages 4 KiB pages in
// a new repository (3 % of pages changed a night, spread over the file)
// and returns the repository, the backend counting its reads, the newest
// version and its database's content.
func agedRepo(t *testing.T, pages, nights int) (*store.Repository, *countingBackend, *store.Version, []byte) {
	t.Helper()
	ctx := context.Background()
	be := &countingBackend{Backend: mustLocal(t, t.TempDir()), ranges: make(map[string]bool)}
	repo, err := store.Init(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	var v *store.Version
	for night := 0; night < nights; night++ {
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		p := w.Begin("leader1")
		if _, err := p.Add(ctx, "storage/pioreactor.sqlite", 0o644, time.Date(2026, 5, 1, 0, 0, night, 0, time.UTC), &pageSource{pages: pages, night: night, changed: 30}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Add(ctx, "config.ini", 0o644, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), strings.NewReader(fmt.Sprintf("[night]\nn=%d\n", night))); err != nil {
			t.Fatal(err)
		}
		res := p.Commit(ctx, store.Version{Time: time.Date(2026, 5, 1+night, 1, 0, 0, 0, time.UTC), Zone: "UTC", Kind: store.KindBackup})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		v = res[0].Version
	}
	db, err := io.ReadAll(&pageSource{pages: pages, night: nights - 1, changed: 30})
	if err != nil {
		t.Fatal(err)
	}
	return repo, be, v, db
}

// TestReadAheadReadsFramesOnce rebuilds the newest of many nights, whose
// pages lie in frames of every night interleaved across the file: each
// frame is read and decompressed about once, not once per run of pages
// that needs it, and the content comes out byte for byte, the same through
// the STORED and the DEFLATE archive and OpenEntry.
func TestReadAheadReadsFramesOnce(t *testing.T) {
	ctx := context.Background()
	// 12 nights of a 16 MiB database: more frames in use at each point of
	// the file than a reader's share of the cache held before frames were
	// shared (14 reads a frame on this layout then).
	repo, be, v, db := agedRepo(t, 4096, 12)
	be.reset()
	z, err := repo.StoredZip(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	if err := z.WriteTo(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	reads, frames := be.counts()
	if reads > frames*3/2 {
		t.Errorf("rebuilding read %d frames from packs, %d distinct: %.1f reads a frame, want about 1", reads, frames, float64(reads)/float64(frames))
	}
	if got := readZip(t, stored.Bytes())["storage/pioreactor.sqlite"]; !bytes.Equal(got, db) {
		t.Fatalf("STORED archive: database differs (%d bytes, want %d)", len(got), len(db))
	}
	if got := exported(t, repo, v)["storage/pioreactor.sqlite"]; !bytes.Equal(got, db) {
		t.Fatalf("DEFLATE archive: database differs (%d bytes, want %d)", len(got), len(db))
	}
	got, err := io.ReadAll(repo.OpenEntry(ctx, ptr(entry(t, v, "storage/pioreactor.sqlite"))))
	if err != nil || !bytes.Equal(got, db) {
		t.Fatalf("OpenEntry: %d bytes, %v; want %d bytes", len(got), err, len(db))
	}
}

func ptr[T any](v T) *T { return &v }

// TestReadAheadBounded stops reading an archive after its first bytes: the
// read-ahead then holds a bounded number of pieces, so it has read only
// a few MiB of a 64 MiB database from the packs, and stops when cancelled.
func TestReadAheadBounded(t *testing.T) {
	repo, be, v, _ := agedRepo(t, 16384, 1)
	synctest.Test(t, func(t *testing.T) {
		be.reset()
		z, err := repo.StoredZip(v, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &stallWriter{release: make(chan struct{})}
		done := make(chan error)
		go func() { done <- z.WriteTo(ctx, w) }()
		synctest.Wait() // everything is blocked on the stalled writer
		reads, _ := be.counts()
		// At most 2×workers+1 pieces of 1 MiB (4 frames each), plus the
		// piece being written and tree frames.
		if limit := (2*max(2, runtime.GOMAXPROCS(0))+3)*4 + 4; reads > limit {
			t.Errorf("with the writer stalled, %d frames were read ahead; want at most %d", reads, limit)
		}
		cancel()
		close(w.release)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WriteTo after cancel = %v, want context.Canceled", err)
		}
	})
}

// stallWriter accepts its first write, then blocks until release.
type stallWriter struct {
	n       int
	release chan struct{}
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if s.n > 0 {
		<-s.release
	}
	s.n += len(p)
	return len(p), nil
}

// TestReadAheadDamagedPage damages one frame of the newest night's pages:
// the archive stops with an error naming the database entry before its
// last byte, whichever worker read the frame.
func TestReadAheadDamagedPage(t *testing.T) {
	ctx := context.Background()
	repo, _, v, db := agedRepo(t, 2048, 3)
	e := entry(t, v, "storage/pioreactor.sqlite")
	// Find a page of the newest night: one whose content differs from
	// the first night's.
	first, err := io.ReadAll(&pageSource{pages: 2048, night: 0, changed: 30})
	if err != nil {
		t.Fatal(err)
	}
	page := -1
	for k := 0; k < 2048 && page < 0; k++ {
		if !bytes.Equal(first[k*4096:(k+1)*4096], db[k*4096:(k+1)*4096]) {
			page = k
		}
	}
	if page < 0 {
		t.Fatal("no page changed between the nights")
	}
	pack, off, length, err := store.BlobPlace(ctx, repo, store.HashChunk(db[page*4096:(page+1)*4096]))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		damage func(path string) error
		want   error
	}{
		{"frame flipped", func(path string) error { return flipByte(path, off+length/2) }, store.ErrDamaged},
		{"pack missing", os.Remove, fs.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := repo.Location() + "/" + pack
			saved, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, saved, 0o600)
			if err := tt.damage(path); err != nil {
				t.Fatal(err)
			}
			z, err := repo.StoredZip(v, nil)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = z.WriteTo(ctx, &buf)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), e.Name) {
				t.Fatalf("WriteTo = %v, want %v naming %s", err, tt.want, e.Name)
			}
			if buf.Len() > (page+1)*4096+1024 {
				t.Errorf("wrote %d bytes, past the damaged page", buf.Len())
			}
		})
	}
}

// flipByte inverts one byte of a file.
func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	return err
}

// countingBackend counts the ranges read from packs, and the distinct
// ones, since the last reset.
type countingBackend struct {
	store.Backend
	mu     sync.Mutex
	n      int
	ranges map[string]bool
}

func (c *countingBackend) reset() {
	c.mu.Lock()
	c.n = 0
	clear(c.ranges)
	c.mu.Unlock()
}

// counts returns the pack ranges read and how many were distinct.
func (c *countingBackend) counts() (reads, distinct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, len(c.ranges)
}

func (c *countingBackend) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "packs/") {
		c.mu.Lock()
		c.n++
		c.ranges[fmt.Sprint(name, off)] = true
		c.mu.Unlock()
	}
	return c.Backend.GetRange(ctx, name, off, length)
}
