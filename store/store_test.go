package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

func newRepo(t *testing.T) (*store.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Init(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// randomData returns n pseudo-random (incompressible, chunkable) bytes.
func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type file struct {
	name string
	data []byte
}

func backup(t *testing.T, w *store.Writer, host string, files []file) []store.Result {
	t.Helper()
	ctx := context.Background()
	p := w.Begin(host)
	if _, err := p.Add(ctx, "storage/", fs.ModeDir|0o755, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := p.Add(ctx, f.name, 0o644, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), bytes.NewReader(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	return p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup, Source: "pioreactor"})
}

func TestInitOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, b); !errors.Is(err, store.ErrNoRepository) || !strings.Contains(err.Error(), "piosnap init") {
		t.Errorf("Open empty = %v, want ErrNoRepository naming piosnap init", err)
	}
	r, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Init(ctx, b); err == nil {
		t.Error("second Init succeeded; it must refuse an existing repository")
	}
	r2, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Config().ID != r.Config().ID || r2.Config().Polynomial != store.DefaultPolynomial {
		t.Errorf("config did not round-trip: %+v vs %+v", r2.Config(), r.Config())
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, b); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Open with damaged config = %v", err)
	}
}

func TestDedupAndExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := randomData(1, 5<<20)
	files := []file{{"config.ini", []byte("[cluster]\nA=1\n")}, {"empty", nil}, {"storage/pioreactor.sqlite", db}}

	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	first := backup(t, w, "leader1", files)[0]
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	// Same content again: only the manifest is new.
	w2, _ := store.NewWriter(ctx, repo)
	second := backup(t, w2, "leader1", files)[0]
	if second.Err != nil {
		t.Fatal(second.Err)
	}
	if second.Stored != 0 {
		t.Errorf("unchanged backup stored %d chunk bytes, want 0", second.Stored)
	}
	// Append 1%: far less than the file is stored again.
	grown := append(append([]byte{}, db...), randomData(2, len(db)/100)...)
	w3, _ := store.NewWriter(ctx, repo)
	third := backup(t, w3, "leader1", []file{{"storage/pioreactor.sqlite", grown}})[0]
	if third.Stored > int64(len(db))/4 {
		t.Errorf("1%% growth stored %d bytes of a %d byte file", third.Stored, len(db))
	}

	vs, err := repo.Versions(ctx)
	if err != nil || len(vs) != 3 {
		t.Fatalf("Versions = %d, %v", len(vs), err)
	}
	v := first.Version
	var buf bytes.Buffer
	if err := repo.WriteZip(ctx, &buf, v); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := repo.WriteZip(ctx, &again, v); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("WriteZip twice: %v, same bytes %v; want a deterministic archive", err, bytes.Equal(buf.Bytes(), again.Bytes()))
	}
	got := readZip(t, buf.Bytes())
	for _, f := range files {
		if !bytes.Equal(got[f.name], f.data) {
			t.Errorf("%s: exported content differs", f.name)
		}
	}
	if _, ok := got["storage/"]; !ok {
		t.Error("directory entry missing from export")
	}
}

func TestCheckFindsDamageAndForgetCollects(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	shared := randomData(3, 2<<20)
	w, _ := store.NewWriter(ctx, repo)
	a := backup(t, w, "worker1", []file{{"a", shared}, {"only-a", randomData(4, 1<<20)}})[0].Version
	b := backup(t, w, "worker2", []file{{"b", shared}})[0].Version

	rep, err := repo.Check(ctx, true)
	if err != nil || !rep.OK() || rep.Versions != 2 {
		t.Fatalf("clean repo: %+v, %v", rep, err)
	}
	// Forget a: the shared chunks stay, a's own chunk goes.
	l, err := repo.Lock(ctx, "forget", 0)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := repo.Chunks(ctx)
	gc, err := repo.Forget(ctx, []string{a.ID})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := repo.Chunks(ctx)
	if gc.VersionsDeleted != 1 || gc.ChunksDeleted != len(before)-len(after) || gc.ChunksDeleted == 0 {
		t.Errorf("gc = %+v, chunks %d -> %d", gc, len(before), len(after))
	}
	for _, e := range b.Entries {
		for _, c := range e.Chunks {
			if _, ok := after[c]; !ok {
				t.Errorf("chunk %s still used by %s was deleted", c, b.ShortID())
			}
		}
	}
	_ = l.Unlock(ctx)
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
		t.Errorf("after forget: %+v, %v", rep, err)
	}

	// Corrupt one blob's frame, then delete its pack: check names the pack
	// and the version.
	c0 := b.Entries[1].Chunks[0] // Entries[0] is the directory
	pack := damageFrame(t, repo, dir, c0)
	rep, err = repo.Check(ctx, false)
	if err != nil || !rep.OK() {
		t.Errorf("check without --read-data reads no content: %+v %v", rep, err)
	}
	rep, err = repo.Check(ctx, true)
	if err != nil || rep.OK() {
		t.Fatalf("corrupt pack not found: %+v %v", rep, err)
	}
	if p := rep.Problems[0]; p.Object != pack || len(p.Versions) != 1 || !strings.HasPrefix(p.Versions[0], b.ShortID()) {
		t.Errorf("problem = %+v, want %s affecting %s", p, pack, b.ShortID())
	}
	if err := os.Remove(filepath.Join(dir, pack)); err != nil {
		t.Fatal(err)
	}
	rep, _ = repo.Check(ctx, false)
	if rep.OK() || rep.Problems[0].Reason != "pack missing" || rep.Problems[0].Object != pack {
		t.Errorf("missing pack: %+v", rep)
	}
	// Export of a damaged version fails and names the entry.
	err = repo.WriteZip(ctx, io.Discard, b)
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("export of damaged version: %v", err)
	}
}

func TestAbortLeavesOnlyUnusedBlobs(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	w, _ := store.NewWriter(ctx, repo)
	shared := randomData(5, 1<<20)
	good := w.Begin("worker1")
	bad := w.Begin("worker2")
	if _, err := bad.Add(ctx, "x", 0o644, time.Now(), bytes.NewReader(shared)); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Add(ctx, "y", 0o644, time.Now(), bytes.NewReader(randomData(6, 1<<20))); err != nil {
		t.Fatal(err)
	}
	if _, err := good.Add(ctx, "x", 0o644, time.Now(), bytes.NewReader(shared)); err != nil {
		t.Fatal(err)
	}
	res := good.Commit(ctx, store.Version{Time: time.Now()})
	if err := bad.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	// The blobs only the rejected version used are unused until the next
	// forget, which repacks the half-unused pack without them.
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() || rep.Unused == 0 {
		t.Errorf("check after abort = %+v, %v; want sound with unused blobs", rep, err)
	}
	if _, err := repo.Forget(ctx, nil); err != nil {
		t.Fatal(err)
	}
	chunks, _ := repo.Chunks(ctx)
	want := map[store.ChunkID]bool{}
	for _, e := range res[0].Version.Entries {
		for _, c := range e.Chunks {
			want[c] = true
		}
	}
	if len(chunks) != len(want) {
		t.Errorf("after abort and forget %d chunks remain, want %d (those worker1 uses)", len(chunks), len(want))
	}
	if rep, _ := repo.Check(ctx, true); !rep.OK() {
		t.Errorf("abort damaged a committed version: %+v (%v)", rep, res[0].Version.ID)
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	l, err := repo.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Lock(ctx, "forget", 0)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "piosnap backup") {
		t.Errorf("second lock = %v, want ErrLocked naming the holder", err)
	}
	h, err := repo.Hold(ctx, "restore", "abc")
	if err != nil {
		t.Fatalf("a hold must not be blocked by a writer: %v", err)
	}
	held, _ := repo.HeldVersions(ctx)
	if !held["abc"] {
		t.Errorf("held = %v", held)
	}
	_ = h.Unlock(ctx)
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := repo.Lock(ctx, "forget", 0)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	_ = l2.Unlock(ctx)

	// A lock left by a dead process on this host is stale at once; one whose
	// refresh is old is stale anywhere.
	host, _ := os.Hostname()
	stale := []string{
		`{"kind":"exclusive","purpose":"backup","hostname":"` + host + `","pid":999999999,"created":"` + time.Now().UTC().Format(time.RFC3339) + `","refreshed":"` + time.Now().UTC().Format(time.RFC3339) + `"}`,
		`{"kind":"exclusive","purpose":"backup","hostname":"elsewhere","pid":1,"created":"2020-01-01T00:00:00Z","refreshed":"2020-01-01T00:00:00Z"}`,
	}
	for i, s := range stale {
		p := filepath.Join(dir, "locks", "0000"+string(rune('a'+i))+".json")
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l3, err := repo.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatalf("stale locks blocked: %v", err)
	}
	_ = l3.Unlock(ctx)
	// A live lock on another host blocks, and waiting gives up after the wait.
	live := `{"kind":"exclusive","purpose":"backup","hostname":"elsewhere","pid":1,"created":"` + time.Now().UTC().Format(time.RFC3339) + `","refreshed":"` + time.Now().UTC().Format(time.RFC3339) + `"}`
	if err := os.WriteFile(filepath.Join(dir, "locks", "0000z.json"), []byte(live), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := repo.Lock(ctx, "backup", 1500*time.Millisecond); !errors.Is(err, store.ErrLocked) {
		t.Errorf("live foreign lock: %v", err)
	}
	if time.Since(start) < time.Second {
		t.Error("Lock did not wait before giving up")
	}
}

func TestVersionAtAndFind(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 1, 30, 0, 0, time.UTC) }
	vs := []*store.Version{
		{ID: "aaaa1111" + strings.Repeat("0", 56), Host: "w1", Time: day(1)},
		{ID: "aaaa2222" + strings.Repeat("0", 56), Host: "w1", Time: day(3)},
		{ID: "bbbb3333" + strings.Repeat("0", 56), Host: "w2", Time: day(2)},
	}
	tests := []struct {
		at      time.Time
		want    string
		wantErr string
	}{
		{day(2), "aaaa1111", ""},
		{day(3), "aaaa2222", ""},
		{day(30), "aaaa2222", ""},
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), "", "the oldest is from 2026-03-01T01:30:00Z"},
		// Both times are given in the zone the user asked in.
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600)), "", "at or before 2026-02-01T00:00:00+01:00: the oldest is from 2026-03-01T02:30:00+01:00"},
	}
	for _, tt := range tests {
		v, err := store.VersionAt(vs, "w1", tt.at)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("VersionAt(%v) err = %v, want %q", tt.at, err, tt.wantErr)
			}
			continue
		}
		if err != nil || v.ShortID() != tt.want {
			t.Errorf("VersionAt(%v) = %v, %v; want %s", tt.at, v, err, tt.want)
		}
	}
	if _, err := store.VersionAt(vs, "w9", day(3)); err == nil || !strings.Contains(err.Error(), "no versions of host") {
		t.Errorf("unknown host: %v", err)
	}
	if _, err := store.FindVersion(vs, "", "aaaa"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if v, err := store.FindVersion(vs, "w2", "bbbb"); err != nil || v.Host != "w2" {
		t.Errorf("FindVersion = %v, %v", v, err)
	}
	if _, err := store.FindVersion(vs, "", "ab"); err == nil {
		t.Error("short prefix accepted")
	}
}

// hookBackend runs a hook once, just before the first listing of a prefix,
// to make another process's work happen in the middle of a check.
type hookBackend struct {
	store.Backend
	prefix string
	hook   func()
}

func (h *hookBackend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	if prefix == h.prefix && h.hook != nil {
		hook := h.hook
		h.hook = nil
		hook()
	}
	return h.Backend.List(ctx, prefix, fn)
}

// check runs concurrently with backups and forgets: neither may make it
// report damage that is not there.
func TestCheckDuringBackupAndForget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := store.NewWriter(ctx, writer)
	old := backup(t, w, "worker1", []file{{"a", randomData(7, 3<<20)}})[0].Version

	hb := &hookBackend{Backend: b, prefix: "versions/"}
	checker, err := store.Open(ctx, hb)
	if err != nil {
		t.Fatal(err)
	}
	// A backup lands between the check's chunk listing and its manifest
	// listing: the new manifest names chunks the listing lacks.
	hb.hook = func() {
		w2, _ := store.NewWriter(ctx, writer)
		backup(t, w2, "worker2", []file{{"b", randomData(8, 3<<20)}})
	}
	rep, err := checker.Check(ctx, true)
	if err != nil || !rep.OK() {
		t.Errorf("check during a backup: %+v, %v", rep, err)
	}
	// A forget removes a version and its chunks after the check listed
	// them: reading them then fails, but nothing present needs them.
	hb.prefix = "versions/"
	hb.hook = func() {
		if _, err := writer.Forget(ctx, []string{old.ID}); err != nil {
			t.Error(err)
		}
	}
	rep, err = checker.Check(ctx, true)
	if err != nil || !rep.OK() {
		t.Errorf("check during a forget: %+v, %v", rep, err)
	}
}

// goroutinesIn counts the goroutines running fn (a function's name as
// stack traces print it).
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			count := 0
			for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
				if strings.Contains(g, fn+"(") {
					count++
				}
			}
			return count
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitGone fails t unless the goroutines running fn are soon back to
// before, the count before the call under test: a goroutine the call has
// waited for may still be on its way out, and the deadline only bounds a
// leak.
func waitGone(t *testing.T, fn string, before int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); goroutinesIn(fn) > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines running %s are left after the call returned", goroutinesIn(fn)-before, fn)
		}
	}
}

// failNth wraps a backend: the n-th read (Get or GetRange) of an object
// under prefix fails, as a store that stops answering would.
type failNth struct {
	store.Backend
	prefix string
	mu     sync.Mutex
	n      int
}

var errStoreDown = errors.New("connect: connection refused")

func (f *failNth) fail(name string) bool {
	if !strings.HasPrefix(name, f.prefix) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	return f.n == 0
}

func (f *failNth) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if f.fail(name) {
		return nil, errStoreDown
	}
	return f.Backend.Get(ctx, name)
}

func (f *failNth) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if f.fail(name) {
		return nil, errStoreDown
	}
	return f.Backend.GetRange(ctx, name, off, length)
}

// A forget that fails while repacking leaves no goroutine of its packer
// behind: each of the packs it repacks fills a frame, so the packer's
// goroutine runs when the second pack cannot be read.
func TestForgetFailingToRepackStopsThePacker(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.NewWriter(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	a1, b1, a2, b2 := randomData(1, 400<<10), randomData(2, 400<<10), randomData(3, 400<<10), randomData(4, 400<<10)
	v1 := backup(t, w, "h", []file{{"a1", a1}, {"b1", b1}})[0].Version
	v2 := backup(t, w, "h", []file{{"a2", a2}, {"b2", b2}})[0].Version
	backup(t, w, "h", []file{{"a1", a1}, {"a2", a2}}) // half of each pack stays used
	r2, err := store.Open(ctx, &failNth{Backend: b, prefix: "packs/", n: 2})
	if err != nil {
		t.Fatal(err)
	}
	const sink = "store.(*packer).runSink"
	before := goroutinesIn(sink)
	if _, err := r2.Forget(ctx, []string{v1.ID, v2.ID}); !errors.Is(err, errStoreDown) {
		t.Fatalf("Forget = %v, want %v", err, errStoreDown)
	}
	waitGone(t, sink, before)
}

func TestParseSubset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want store.Subset
		ok   bool
	}{
		{"1/7", store.Subset{Part: 1, Of: 7}, true},
		{"7/7", store.Subset{Part: 7, Of: 7}, true},
		{"1/1", store.Subset{Part: 1, Of: 1}, true},
		{"0/7", store.Subset{}, false},
		{"8/7", store.Subset{}, false},
		{"1/0", store.Subset{}, false},
		{"-1/7", store.Subset{}, false},
		{"1/7x", store.Subset{}, false},
		{" 1/7", store.Subset{}, false},
		{"1", store.Subset{}, false},
		{"a/b", store.Subset{}, false},
		{"", store.Subset{}, false},
	} {
		got, err := store.ParseSubset(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSubset(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "1/7") {
			t.Errorf("ParseSubset(%q): %v; the error should show an example", tc.in, err)
		}
	}
}

// The parts of a subset check read every pack exactly once between them,
// and damage is found by the part that holds its pack.
func TestCheckReadingSubsets(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	w, _ := store.NewWriter(ctx, repo)
	var versions []*store.Version
	for i := range 8 {
		versions = append(versions, backup(t, w, "worker1", []file{{"f", randomData(uint64(100+i), 512<<10)}})[0].Version)
	}
	all, err := repo.Check(ctx, true)
	if err != nil || !all.OK() {
		t.Fatalf("clean repository: %+v, %v", all, err)
	}
	if all.Packs < 8 || all.PacksRead != all.Packs {
		t.Fatalf("read-data read %d of %d packs; the test needs 8 or more, all read", all.PacksRead, all.Packs)
	}
	const parts = 3
	packs, chunks := 0, 0
	for part := 1; part <= parts; part++ {
		rep, err := repo.CheckReading(ctx, store.Subset{Part: part, Of: parts})
		if err != nil || !rep.OK() {
			t.Fatalf("part %d/%d: %+v, %v", part, parts, rep, err)
		}
		if rep.PacksRead == rep.Packs {
			t.Errorf("part %d/%d read all %d packs", part, parts, rep.Packs)
		}
		packs += rep.PacksRead
		chunks += rep.ChunksRead
	}
	if packs != all.PacksRead || chunks != all.ChunksRead {
		t.Errorf("the %d parts read %d packs and %d blobs; a full read: %d and %d", parts, packs, chunks, all.PacksRead, all.ChunksRead)
	}
	if rep, err := repo.CheckReading(ctx, store.Subset{}); err != nil || rep.PacksRead != 0 || rep.ChunksRead != 0 {
		t.Errorf("no subset: %+v, %v; want nothing read", rep, err)
	}

	damageFrame(t, repo, dir, versions[5].Entries[1].Chunks[0])
	found := 0
	for part := 1; part <= parts; part++ {
		rep, err := repo.CheckReading(ctx, store.Subset{Part: part, Of: parts})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			found++
			if len(rep.Problems) != 1 || !slices.Contains(rep.Problems[0].Versions, versions[5].ShortID()+" (worker1 "+versions[5].Time.Format("2006-01-02 15:04")+")") {
				t.Errorf("part %d/%d: %+v; want the damaged pack and its version", part, parts, rep.Problems)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d parts found the damaged pack, want exactly 1", found)
	}
}
