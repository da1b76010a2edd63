package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// writerFiles is a version that fills more than one pack and keeps every
// core compressing: a database of compressible pages and an ordinary file
// of incompressible chunks.
func writerFiles() []file {
	return []file{
		{"storage/pioreactor.sqlite", killDB(7)},
		{"config.ini", []byte("[cluster.topology]\nleader_hostname=leader1\n")},
		{"storage/blob.bin", randomData(11, 20<<20)},
	}
}

// objects lists a repository's object names under prefix, sorted.
func objects(t *testing.T, b store.Backend, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.List(context.Background(), prefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// Frames are compressed on every core, and packs still come out the same,
// byte for byte, whatever the number of cores: the pack writer keeps the
// order in which frames were filled.
func TestWriterPacksAreDeterministic(t *testing.T) {
	ctx := context.Background()
	files := writerFiles()
	var packs [][]string
	var repoBackends []store.Backend
	for _, procs := range []int{1, 4, 16} {
		old := runtime.GOMAXPROCS(procs)
		repo, _ := newRepo(t)
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		res := backup(t, w, "leader1", files)
		runtime.GOMAXPROCS(old)
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		if !w.Idle() {
			t.Errorf("GOMAXPROCS %d: a store goroutine or frame is left after the commit", procs)
		}
		if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
			t.Fatalf("GOMAXPROCS %d: check --read-data = %+v, %v", procs, rep, err)
		}
		got := exported(t, repo, res[0].Version)
		for _, f := range files {
			if !bytes.Equal(got[f.name], f.data) {
				t.Errorf("GOMAXPROCS %d: %s reads back different", procs, f.name)
			}
		}
		repoBackends = append(repoBackends, repo.Backend())
		packs = append(packs, append(objects(t, repo.Backend(), "packs/"), objects(t, repo.Backend(), "index/")...))
	}
	if n := len(objects(t, repoBackends[0], "packs/")); n < 2 {
		t.Fatalf("only %d pack; the test needs several", n)
	}
	for i := 1; i < len(packs); i++ {
		if !slices.Equal(packs[i], packs[0]) {
			t.Errorf("packs and index differ with more cores:\n%v\n%v", packs[0], packs[i])
		}
	}
}

// cancelReader is a reader that cancels a context once n bytes were read.
type cancelReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// A run cancelled in the middle of an entry, a database cut into pages
// or a file cut into chunks, stops, leaves no goroutine behind, and
// nothing of the version becomes visible.
func TestWriterCancelled(t *testing.T) {
	files := writerFiles()
	for _, f := range []file{files[0], files[2]} {
		t.Run(f.name, func(t *testing.T) {
			a, _ := newRepo(t)
			b, _ := newRepo(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := store.NewWriter(ctx, a, b)
			if err != nil {
				t.Fatal(err)
			}
			p := w.Begin("leader1")
			_, err = p.Add(ctx, f.name, 0o644, time.Now(), &cancelReader{r: bytes.NewReader(f.data), n: len(f.data) / 2, cancel: cancel})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Add with the context cancelled half-way: %v, want context.Canceled", err)
			}
			if err := p.Abort(context.WithoutCancel(ctx)); err != nil {
				t.Fatal(err)
			}
			if !w.Idle() {
				t.Error("a store goroutine, blob or frame is left after the abort")
			}
			for _, r := range []*store.Repository{a, b} {
				if vs, err := r.Versions(context.Background()); err != nil || len(vs) != 0 {
					t.Errorf("after the cancelled run: %d versions, %v; want none", len(vs), err)
				}
				if rep, err := r.Check(context.Background(), true); err != nil || !rep.OK() {
					t.Errorf("check --read-data after the cancelled run = %+v, %v", rep, err)
				}
			}
		})
	}
}

// failingReader returns its bytes up to n, then fails.
type failingReader struct {
	r io.Reader
	n int
}

var errUnplugged = errors.New("read: input/output error")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errUnplugged
	}
	n, err := f.r.Read(p[:min(len(p), f.n)])
	f.n -= n
	return n, err
}

// An entry whose content fails to read half-way fails with an error that
// names it, leaves nothing being hashed, and the same writer then stores
// the next version whole: nothing of the failed entry leaks into it.
func TestWriterReadFails(t *testing.T) {
	ctx := context.Background()
	files := writerFiles()
	for _, f := range []file{files[0], files[2]} {
		t.Run(f.name, func(t *testing.T) {
			repo, _ := newRepo(t)
			w, err := store.NewWriter(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			p := w.Begin("leader1")
			_, err = p.Add(ctx, f.name, 0o644, time.Now(), &failingReader{r: bytes.NewReader(f.data), n: len(f.data) / 2})
			if !errors.Is(err, errUnplugged) || !strings.Contains(err.Error(), f.name) {
				t.Fatalf("Add of a file that fails half-way: %v, want %v naming %s", err, errUnplugged, f.name)
			}
			if err := p.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if !w.Idle() {
				t.Error("a store goroutine, blob or frame is left after the abort")
			}
			res := backup(t, w, "leader1", files)
			if res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			got := exported(t, repo, res[0].Version)
			for _, f := range files {
				if !bytes.Equal(got[f.name], f.data) {
					t.Errorf("%s reads back different after the failed entry", f.name)
				}
			}
			if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
				t.Errorf("check --read-data = %+v, %v", rep, err)
			}
		})
	}
}

// faultyBackend wraps a local backend: pack writes fail after the first
// okPacks, or, with retrying, behave like a server that refuses every
// connection while its client retries for as long as it is let (until
// the context is cancelled or the test ends); with hold, each pack write
// waits until hold is closed.
type faultyBackend struct {
	store.Backend
	okPacks  int
	retrying bool
	hold     chan struct{}
	end      chan struct{} // closed when the test ends

	mu    sync.Mutex
	packs int
	tries int
}

var errRefused = errors.New("connect: connection refused")

func (f *faultyBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if !strings.HasPrefix(name, "packs/") {
		return f.Backend.Put(ctx, name, r, size)
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.packs++
	n := f.packs
	f.mu.Unlock()
	switch {
	case f.retrying:
		for {
			f.mu.Lock()
			f.tries++
			f.mu.Unlock()
			store.NotifyRetry(ctx, errRefused)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-f.end:
				return errRefused
			case <-time.After(time.Millisecond):
			}
		}
	case n > f.okPacks:
		return errors.New("write: no space left on device")
	}
	return f.Backend.Put(ctx, name, r, size)
}

func newFaultyRepo(t *testing.T, f *faultyBackend) *store.Repository {
	t.Helper()
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.Backend, f.end = b, make(chan struct{})
	t.Cleanup(func() { close(f.end) })
	r, err := store.Init(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A store whose writes fail loses the version; the other store gets it,
// the failing one is left out of the rest of the run, and no goroutine is
// left behind.
func TestWriterFailingStore(t *testing.T) {
	ctx := context.Background()
	for _, okPacks := range []int{0, 1} {
		good, _ := newRepo(t)
		bad := newFaultyRepo(t, &faultyBackend{okPacks: okPacks})
		w, err := store.NewWriter(ctx, bad, good)
		if err != nil {
			t.Fatal(err)
		}
		res := backup(t, w, "leader1", writerFiles())
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no space left on device") || res[0].Version != nil {
			t.Errorf("%d packs fit: failing store's result %+v; want the disk's error", okPacks, res[0])
		}
		if res[1].Err != nil || res[1].Version == nil {
			t.Fatalf("%d packs fit: healthy store's result %+v", okPacks, res[1])
		}
		if !w.Idle() {
			t.Errorf("%d packs fit: a store goroutine or frame is left after the commit", okPacks)
		}
		res = backup(t, w, "worker1", []file{{"config.ini", []byte("x")}})
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "left out of the rest of this run") || res[1].Err != nil {
			t.Errorf("%d packs fit: the next host: %v / %v; want the failed store left out and the other written", okPacks, res[0].Err, res[1].Err)
		}
		for _, r := range []*store.Repository{bad, good} {
			if rep, err := r.Check(ctx, true); err != nil || !rep.OK() {
				t.Errorf("%d packs fit: check --read-data of %s = %+v, %v", okPacks, r.Location(), rep, err)
			}
		}
	}
}

// A store that stops answering while its backend retries does not hold
// the healthy store back: once its write has failed a few attempts in a
// row while the run waits for it, it is left out of the run and its write
// cancelled, and the healthy store gets every host. The dead store would
// retry until the test ends, so without that the test hangs.
func TestWriterDeadStoreDoesNotHoldOthers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []file
	}{
		{"queue full", writerFiles()},     // more than a pack: the run waits to queue a frame
		{"at commit", writerFiles()[1:2]}, // a small version: the run waits for the commit
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dead := &faultyBackend{retrying: true}
			deadRepo := newFaultyRepo(t, dead)
			good, _ := newRepo(t)
			w, err := store.NewWriter(ctx, good, deadRepo)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan [2][]store.Result, 1)
			go func() {
				var out [2][]store.Result
				out[0] = backup(t, w, "leader1", tc.files)
				out[1] = backup(t, w, "worker1", []file{{"config.ini", []byte("x")}})
				done <- out
			}()
			var out [2][]store.Result
			select {
			case out = <-done:
			case <-time.After(5 * time.Minute):
				t.Fatal("the healthy store is still waiting for the dead one")
			}
			for i, host := range []string{"leader1", "worker1"} {
				res := out[i]
				if res[0].Err != nil || res[0].Version == nil {
					t.Errorf("%s: healthy store: %v", host, res[0].Err)
				}
				if res[1].Err == nil {
					t.Errorf("%s: the dead store reports no error", host)
				}
			}
			if e := out[0][1].Err; e == nil || !strings.Contains(e.Error(), "attempts in a row of one write failed") || !strings.Contains(e.Error(), "connection refused") {
				t.Errorf("dead store's error for the first host: %v; want why it was not waited for", e)
			}
			if !w.Idle() {
				t.Error("a store goroutine or frame is left after the run")
			}
			dead.mu.Lock()
			packs := dead.packs
			dead.mu.Unlock()
			if packs != 1 {
				t.Errorf("the dead store was sent %d pack writes; want 1 (left out after it)", packs)
			}
			if vs, _ := good.Versions(ctx); len(vs) != 2 {
				t.Errorf("healthy store holds %d versions, want 2", len(vs))
			}
			if vs, _ := deadRepo.Versions(ctx); len(vs) != 0 {
				t.Errorf("dead store holds %d versions, want 0", len(vs))
			}
		})
	}
}

// Each store is written by its own goroutine: a healthy store's version is
// stored and visible while a slower store is still writing its first pack
// (which waits here until the healthy store's version is visible), and the
// slow store, which fails no attempt, is waited for and gets the version
// too. (A version larger than a store's queue waits for the slow store:
// a store that answers is never dropped for being slow.)
func TestWriterSlowStoreDoesNotDelayOthers(t *testing.T) {
	ctx := context.Background()
	slow := &faultyBackend{okPacks: 1 << 30, hold: make(chan struct{})}
	slowRepo := newFaultyRepo(t, slow)
	fast, _ := newRepo(t)
	w, err := store.NewWriter(ctx, slowRepo, fast)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []store.Result, 1)
	go func() { done <- backup(t, w, "leader1", writerFiles()[:2]) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		vs, err := fast.Versions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) == 1 {
			break
		}
		select {
		case res := <-done:
			t.Fatalf("the run ended before the fast store's version was visible: %+v", res)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the fast store's version is not visible while the slow store writes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(slow.hold)
	res := <-done
	for i, r := range res {
		if r.Err != nil || r.Version == nil {
			t.Errorf("store %d: %v", i, r.Err)
		}
	}
	if res[0].Version != nil && res[1].Version != nil && res[0].Version.ID != res[1].Version.ID {
		t.Errorf("the stores hold different versions: %s and %s", res[0].Version.ID, res[1].Version.ID)
	}
	if !w.Idle() {
		t.Error("a store goroutine or frame is left after the commit")
	}
}

// packsAndIndex lists a repository's pack and index objects.
func packsAndIndex(t *testing.T, r *store.Repository) []string {
	t.Helper()
	return append(objects(t, r.Backend(), "packs/"), objects(t, r.Backend(), "index/")...)
}

// writeVersions backs up each set of files as a version of leader1 into
// repos, each with a writer of its own, and returns how many frames the
// writers compressed.
func writeVersions(t *testing.T, repos []*store.Repository, versions ...[]file) int {
	t.Helper()
	n := 0
	for _, files := range versions {
		w, err := store.NewWriter(context.Background(), repos...)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range backup(t, w, "leader1", files) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		if !w.Idle() {
			t.Error("a store goroutine, blob or frame is left after the commit")
		}
		n += w.FramesCompressed()
	}
	return n
}

// Stores that lack the same blobs fill the same frames; each is
// compressed once for all of them, and every store's packs are byte for
// byte what it gets when written alone. A store that already holds part
// of the version gets frames of its own where they differ.
func TestWriterCompressesOnceForSeveralStores(t *testing.T) {
	v2 := writerFiles()
	v1 := []file{v2[1], v2[2]} // the same config and file, no database
	newRepos := func(n int) []*store.Repository {
		var rs []*store.Repository
		for range n {
			r, _ := newRepo(t)
			rs = append(rs, r)
		}
		return rs
	}

	t.Run("empty", func(t *testing.T) {
		alone := newRepos(1)
		once := writeVersions(t, alone, v2)
		both := newRepos(2)
		if got := writeVersions(t, both, v2); got != once {
			t.Errorf("two empty stores: %d frames compressed, want %d, as many as for one", got, once)
		}
		want := packsAndIndex(t, alone[0])
		for i, r := range both {
			if got := packsAndIndex(t, r); !slices.Equal(got, want) {
				t.Errorf("store %d of two: packs and index differ from one store's alone:\n%v\n%v", i, got, want)
			}
			if rep, err := r.Check(context.Background(), true); err != nil || !rep.OK() {
				t.Errorf("store %d: check --read-data = %+v, %v", i, rep, err)
			}
		}
	})

	t.Run("one behind", func(t *testing.T) {
		// a is empty; b already holds v1.
		aAlone, bAlone := newRepos(1), newRepos(1)
		writeVersions(t, bAlone, v1)
		separate := writeVersions(t, aAlone, v2) + writeVersions(t, bAlone, v2)
		both := newRepos(2)
		writeVersions(t, both[1:], v1)
		if got := writeVersions(t, both, v2); got >= separate {
			t.Errorf("two stores sharing the database's frames: %d frames compressed, want fewer than %d written apart", got, separate)
		}
		for i, alone := range []*store.Repository{aAlone[0], bAlone[0]} {
			want := packsAndIndex(t, alone)
			if got := packsAndIndex(t, both[i]); !slices.Equal(got, want) {
				t.Errorf("store %d of two: packs and index differ from the store's alone:\n%v\n%v", i, got, want)
			}
			if rep, err := both[i].Check(context.Background(), true); err != nil || !rep.OK() {
				t.Errorf("store %d: check --read-data = %+v, %v", i, rep, err)
			}
		}
	})
}

// A store's goroutine may append a frame and let it go before the caller
// has put that frame in the memo the stores share. The memo must still
// hold it then: a buffer it offers that is back in a pool is reused by the
// next compression while another store still appends it, and the packs
// come out damaged (seen under qemu, where the caller is often descheduled
// right after handing the frame over).
func TestWriterMemoOutlivesTheSink(t *testing.T) {
	repos := []*store.Repository{}
	for range 2 {
		r, _ := newRepo(t)
		repos = append(repos, r)
	}
	w, err := store.NewWriter(context.Background(), repos...)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	w.SealSlowly(func(p string) { problems = append(problems, p) })
	for _, res := range backup(t, w, "leader1", writerFiles()) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems, the first: %s", len(problems), problems[0])
	}
	if w.FramesCompressed() < 3 {
		t.Fatalf("%d frames compressed; the test needs several", w.FramesCompressed())
	}
	for i, r := range repos {
		if rep, err := r.Check(context.Background(), true); err != nil || !rep.OK() {
			t.Errorf("store %d: check --read-data = %+v, %v", i, rep, err)
		}
	}
}

// Bytes that change in memory between being hashed and being stored (a
// memory fault, or a buffer reused too early) are caught before the pack
// is stored: the store fails the version with ErrCorruptedInMemory and
// stores no pack. Bytes changed in a store's own copy (its frames, its
// pack header) fail that store only; a frame's content changed before it
// was compressed fails every store that shares the frame.
func TestWriterVerifiesPacksBeforeStoring(t *testing.T) {
	for _, tc := range []struct {
		what     string
		bothFail bool
	}{
		{"plain", true},
		{"frame", false},
		{"header", false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			bad, _ := newRepo(t)
			good, _ := newRepo(t)
			w, err := store.NewWriter(context.Background(), bad, good)
			if err != nil {
				t.Fatal(err)
			}
			w.Mangle(0, tc.what)
			ctx := context.Background()
			p := w.Begin("leader1")
			errs := make([]error, 2)
			for _, f := range writerFiles() {
				if _, err := p.Add(ctx, f.name, 0o644, time.Now(), bytes.NewReader(f.data)); err != nil {
					// No store is left to write to.
					errs[0], errs[1] = err, err
					if err := p.Abort(ctx); err != nil {
						t.Error(err)
					}
					break
				}
			}
			if errs[0] == nil {
				res := p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup, Source: "pioreactor"})
				errs[0], errs[1] = res[0].Err, res[1].Err
				if !tc.bothFail && res[1].Version == nil {
					t.Errorf("healthy store: %+v, want the version", res[1])
				}
			}
			if err := errs[0]; !errors.Is(err, store.ErrCorruptedInMemory) || !strings.Contains(err.Error(), "not stored") {
				t.Errorf("damaged store: %v; want ErrCorruptedInMemory, saying the pack was not stored", err)
			}
			if tc.bothFail != errors.Is(errs[1], store.ErrCorruptedInMemory) {
				t.Errorf("the other store: %v; want ErrCorruptedInMemory only if it shares the damaged frames (%v)", errs[1], tc.bothFail)
			} else if !tc.bothFail && errs[1] != nil {
				t.Errorf("healthy store: %v", errs[1])
			}
			if !w.Idle() {
				t.Error("a store goroutine, blob or frame is left after the commit")
			}
			for i, r := range []*store.Repository{bad, good} {
				if got := objects(t, r.Backend(), "packs/"); (i == 0 || tc.bothFail) && len(got) != 0 {
					t.Errorf("store %d holds packs %v; want none", i, got)
				}
				if rep, err := r.Check(context.Background(), true); err != nil || !rep.OK() {
					t.Errorf("store %d: check --read-data = %+v, %v", i, rep, err)
				}
			}
		})
	}
}
