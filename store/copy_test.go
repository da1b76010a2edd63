package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// copyFixture is a source repository with two hosts, two versions each; the
// second version of each host shares most chunks with the first.
type copyFixture struct {
	src    *store.Repository
	srcDir string
	ids    map[string][]string // host -> version IDs, oldest first
}

func newCopyFixture(t *testing.T) *copyFixture {
	t.Helper()
	ctx := context.Background()
	src, dir := newRepo(t)
	f := &copyFixture{src: src, srcDir: dir, ids: map[string][]string{}}
	w, err := store.NewWriter(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	db := randomData(1, 3<<20)
	for _, host := range []string{"leader1", "worker1"} {
		cfg := randomData(uint64(len(host)), 4<<10)
		res := backup(t, w, host, []file{{"storage/pioreactor.sqlite", db}, {"config.ini", cfg}})
		f.ids[host] = append(f.ids[host], res[0].Version.ID)
	}
	grown := append(slices.Clone(db), randomData(7, 256<<10)...)
	for _, host := range []string{"leader1", "worker1"} {
		res := backup(t, w, host, []file{{"storage/pioreactor.sqlite", grown}, {"config.ini", []byte(host + " changed\n")}})
		if err := res[0].Err; err != nil {
			t.Fatal(err)
		}
		f.ids[host] = append(f.ids[host], res[0].Version.ID)
	}
	return f
}

// chunksOf returns the distinct chunks the given versions use, with their
// stored sizes in r.
func chunksOf(t *testing.T, r *store.Repository, ids ...string) map[store.ChunkID]int64 {
	t.Helper()
	ctx := context.Background()
	all, err := r.Chunks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.ChunkID]int64{}
	for _, id := range ids {
		v, err := r.LoadVersion(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range v.Entries {
			for _, c := range e.Chunks {
				out[c] = all[c]
			}
		}
	}
	return out
}

func sum(m map[store.ChunkID]int64) int64 {
	var n int64
	for _, s := range m {
		n += s
	}
	return n
}

func zipOf(t *testing.T, r *store.Repository, id string) []byte {
	t.Helper()
	ctx := context.Background()
	v, err := r.LoadVersion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteZip(ctx, &b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCopyVersions(t *testing.T) {
	ctx := context.Background()
	f := newCopyFixture(t)
	all := append(slices.Clone(f.ids["leader1"]), f.ids["worker1"]...)
	leader := func(v *store.Version) bool { return v.Host == "leader1" }

	tests := []struct {
		name string
		// prepare fills the target before the copy and returns the versions
		// it already holds.
		prepare func(t *testing.T, dst *store.Repository) []string
		filter  func(*store.Version) bool
		want    []string // versions the copy must send
	}{
		{
			name:    "empty target",
			prepare: func(*testing.T, *store.Repository) []string { return nil },
			want:    all,
		},
		{
			name:    "host filter",
			prepare: func(*testing.T, *store.Repository) []string { return nil },
			filter:  leader,
			want:    f.ids["leader1"],
		},
		{
			name: "target holds the first versions",
			prepare: func(t *testing.T, dst *store.Repository) []string {
				first := []string{f.ids["leader1"][0], f.ids["worker1"][0]}
				if _, err := store.CopyVersions(ctx, f.src, dst, func(v *store.Version) bool { return slices.Contains(first, v.ID) }); err != nil {
					t.Fatal(err)
				}
				return first
			},
			want: []string{f.ids["leader1"][1], f.ids["worker1"][1]},
		},
		{
			name: "target holds everything",
			prepare: func(t *testing.T, dst *store.Repository) []string {
				if _, err := store.CopyVersions(ctx, f.src, dst, nil); err != nil {
					t.Fatal(err)
				}
				return all
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, dstDir := newRepo(t)
			present := tt.prepare(t, dst)
			before, err := dst.Chunks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			storedBefore := storedBytes(t, dstDir)
			rep, err := store.CopyVersions(ctx, f.src, dst, tt.filter)
			if err != nil {
				t.Fatalf("CopyVersions: %v", err)
			}
			if got, want := slices.Sorted(slices.Values(rep.Copied)), slices.Sorted(slices.Values(tt.want)); !slices.Equal(got, want) {
				t.Errorf("copied %v, want %v", got, want)
			}
			if rep.Present != len(present) {
				t.Errorf("Present = %d, want %d", rep.Present, len(present))
			}
			// Exactly the chunks the target lacked were sent, at their
			// stored size, plus the manifests.
			need := chunksOf(t, f.src, tt.want...)
			missing := map[store.ChunkID]int64{}
			for c, s := range need {
				if _, ok := before[c]; !ok {
					missing[c] = s
				}
			}
			if rep.Chunks != len(missing) {
				t.Errorf("Chunks = %d, want %d (the ones the target lacked)", rep.Chunks, len(missing))
			}
			if rep.ChunksPresent != len(need)-len(missing) {
				t.Errorf("ChunksPresent = %d, want %d", rep.ChunksPresent, len(need)-len(missing))
			}
			if want := storedBytes(t, dstDir) - storedBefore; rep.Bytes != want {
				t.Errorf("Bytes = %d, want %d (what the target grew by)", rep.Bytes, want)
			}
			if len(missing) > 0 && rep.Bytes < sum(missing)/2 {
				t.Errorf("Bytes = %d for %d bytes of incompressible chunks", rep.Bytes, sum(missing))
			}
			// Same IDs, same archives, no damage.
			ids, err := dst.VersionIDs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs := slices.Sorted(slices.Values(append(slices.Clone(present), tt.want...)))
			if !slices.Equal(ids, wantIDs) {
				t.Errorf("target versions %v, want %v", ids, wantIDs)
			}
			for _, id := range tt.want {
				if !bytes.Equal(zipOf(t, dst, id), zipOf(t, f.src, id)) {
					t.Errorf("version %.8s: target's archive differs from the source's", id)
				}
			}
			chk, err := dst.Check(ctx, true)
			if err != nil || !chk.OK() || chk.Unused != 0 {
				t.Errorf("target check = %+v, %v; want sound with no unused chunks", chk, err)
			}
			if _, err := os.Stat(filepath.Join(dstDir, "config")); err != nil {
				t.Errorf("target config: %v", err)
			}
		})
	}
}

func TestCopyVersionsSameRepository(t *testing.T) {
	f := newCopyFixture(t)
	again, err := store.Open(context.Background(), f.src.Backend())
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.CopyVersions(context.Background(), f.src, again, nil)
	if err == nil || !strings.Contains(err.Error(), "same repository") {
		t.Fatalf("copy onto itself = %v; want an error saying it is the same repository", err)
	}
}

// TestCopyVersionsDamagedSource damages the source in several ways: the
// damaged version is reported and never appears in the target, the others
// are copied.
func TestCopyVersionsDamagedSource(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func(t *testing.T, f *copyFixture) string // returns the damaged version
	}{
		{"frame corrupted", func(t *testing.T, f *copyFixture) string {
			id := f.ids["worker1"][1]
			damageFrame(t, f.src, f.srcDir, onlyChunk(t, f, id))
			return id
		}},
		{"pack missing", func(t *testing.T, f *copyFixture) string {
			id := f.ids["worker1"][1]
			pack, _, _, err := store.BlobPlace(ctx, f.src, onlyChunk(t, f, id))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(f.srcDir, pack)); err != nil {
				t.Fatal(err)
			}
			return id
		}},
		{"manifest altered", func(t *testing.T, f *copyFixture) string {
			id := f.ids["leader1"][0]
			p := filepath.Join(f.srcDir, "versions", id+".json")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			writeObject(t, f.srcDir, filepath.Join("versions", id+".json"), bytes.Replace(data, []byte("leader1"), []byte("leader9"), 1))
			return id
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCopyFixture(t)
			bad := tt.damage(t, f)
			dst, _ := newRepo(t)
			rep, err := store.CopyVersions(ctx, f.src, dst, nil)
			if err == nil || !strings.Contains(err.Error(), bad[:8]) || !strings.Contains(err.Error(), "piosnap check") {
				t.Fatalf("CopyVersions = %v; want an error naming version %.8s and `piosnap check`", err, bad)
			}
			if _, ok := rep.Failed[bad]; !ok || len(rep.Failed) != 1 {
				t.Errorf("Failed = %v; want only %.8s", rep.Failed, bad)
			}
			if len(rep.Copied) != 3 {
				t.Errorf("copied %d versions, want the 3 undamaged ones", len(rep.Copied))
			}
			ids, err := dst.VersionIDs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(ids, bad) || len(ids) != 3 {
				t.Errorf("target versions %v; want the 3 undamaged ones, not %.8s", ids, bad)
			}
			if chk, err := dst.Check(ctx, true); err != nil || !chk.OK() {
				t.Errorf("target check = %+v, %v; want sound", chk, err)
			}
		})
	}
}

// TestCopyVersionsInterrupted stops the copy at the first manifest: the
// target shows no version, and the next copy sends no chunk twice.
func TestCopyVersionsInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool  // cancel the context instead of failing the write
		wantErr error // what the error wraps
	}{
		{"cancelled", true, context.Canceled},
		{"target fails", false, errManifestRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCopyFixture(t)
			dst, _ := newRepo(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hook := &manifestHook{Backend: dst.Backend()}
			if tt.cancel {
				hook.before = func() error { cancel(); return nil }
			} else {
				hook.before = func() error { return errManifestRefused }
			}
			hooked, err := store.Open(ctx, hook)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := store.CopyVersions(ctx, f.src, hooked, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CopyVersions = %v; want an error wrapping %v", err, tt.wantErr)
			}
			if len(rep.Copied) != 0 {
				t.Errorf("copied %v; want nothing", rep.Copied)
			}
			bg := context.Background()
			if ids, err := dst.VersionIDs(bg); err != nil || len(ids) != 0 {
				t.Fatalf("target versions after the interruption = %v, %v; want none visible", ids, err)
			}
			sent := rep.Chunks
			if sent == 0 {
				t.Fatal("no chunk was sent before the first manifest")
			}
			if _, err := f.src.Locks(bg); err != nil {
				t.Fatal(err)
			}
			if held, err := f.src.HeldVersions(bg); err != nil || len(held) != 0 {
				t.Errorf("source holds after the copy = %v, %v; want released", held, err)
			}

			rep2, err := store.CopyVersions(bg, f.src, dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep2.Copied) != 4 {
				t.Errorf("second copy sent %d versions, want 4", len(rep2.Copied))
			}
			if total := len(chunksOf(t, f.src, rep2.Copied...)); rep2.Chunks != total-sent {
				t.Errorf("second copy sent %d chunks, want %d (%d in all, %d already sent)", rep2.Chunks, total-sent, total, sent)
			}
		})
	}
}

var errManifestRefused = errors.New("manifest refused")

// manifestHook is a real backend that runs before ahead of the first
// manifest write, to interrupt a copy at that point.
type manifestHook struct {
	store.Backend
	before func() error
	done   bool
}

func (h *manifestHook) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if strings.HasPrefix(name, "versions/") && !h.done {
		h.done = true
		if err := h.before(); err != nil {
			return err
		}
	}
	return h.Backend.Put(ctx, name, r, size)
}

// onlyChunk returns a chunk that version id uses and no other version does.
func onlyChunk(t *testing.T, f *copyFixture, id string) store.ChunkID {
	t.Helper()
	mine := chunksOf(t, f.src, id)
	for _, ids := range f.ids {
		for _, other := range ids {
			if other == id {
				continue
			}
			for c := range chunksOf(t, f.src, other) {
				delete(mine, c)
			}
		}
	}
	for c := range mine {
		return c
	}
	t.Fatalf("version %.8s has no chunk of its own", id)
	return store.ChunkID{}
}

// damageFrame overwrites the middle of the zstd frame holding blob c.
func damageFrame(t *testing.T, r *store.Repository, dir string, c store.ChunkID) string {
	t.Helper()
	pack, off, n, err := store.BlobPlace(context.Background(), r, c)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, pack), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(min(n/2, 64))), off+n/4); err != nil {
		t.Fatal(err)
	}
	return pack
}

// storedBytes sums the sizes of the packs, index objects and manifests
// under dir.
func storedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, sub := range []string{"packs", "index", "versions"} {
		_ = filepath.WalkDir(filepath.Join(dir, sub), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fi, err := d.Info()
				if err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}

func writeObject(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCopyVersions copies one 64 MiB version between two local
// repositories: every chunk is read, verified and written once.
func BenchmarkCopyVersions(b *testing.B) {
	ctx := context.Background()
	src, err := store.Init(ctx, mustLocal(b, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	w, err := store.NewWriter(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	const size = 64 << 20
	p := w.Begin("leader1")
	if _, err := p.Add(ctx, "storage/pioreactor.sqlite", 0o644, time.Now(), bytes.NewReader(randomData(3, size))); err != nil {
		b.Fatal(err)
	}
	if res := p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup}); res[0].Err != nil {
		b.Fatal(res[0].Err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, err := store.Init(ctx, mustLocal(b, b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := store.CopyVersions(ctx, src, dst, nil)
		if err != nil || len(rep.Copied) != 1 {
			b.Fatalf("CopyVersions = %+v, %v", rep, err)
		}
	}
}

func mustLocal(tb testing.TB, dir string) store.Backend {
	tb.Helper()
	be, err := local.Create(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return be
}

// A copy that fails midway leaves no goroutine of its packer behind: the
// first blob fills a frame, so the packer's goroutine runs when the second
// cannot be read from the source.
func TestCopyFailingMidwayStopsThePacker(t *testing.T) {
	ctx := context.Background()
	src, dir := newRepo(t)
	w, err := store.NewWriter(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	backup(t, w, "h", []file{{"a", randomData(1, 400<<10)}, {"b", randomData(2, 400<<10)}})
	failing, err := store.Open(ctx, &failNth{Backend: mustLocal(t, dir), prefix: "packs/", n: 2})
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := newRepo(t)
	const sink = "store.(*packer).runSink"
	before := goroutinesIn(sink)
	if _, err := store.CopyVersions(ctx, failing, dst, nil); !errors.Is(err, errStoreDown) {
		t.Fatalf("CopyVersions = %v, want %v", err, errStoreDown)
	}
	waitGone(t, sink, before)
}
