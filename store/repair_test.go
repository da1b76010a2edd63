package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// repairFixture is a repository of two versions: worker1's holds a1 and
// a2, each a blob in a frame of its own, in one pack; worker2's holds a1
// too (stored once, in worker1's pack) and b. a2's frame is damaged, so
// a1 can be salvaged and a2 cannot.
type repairFixture struct {
	repo         *store.Repository
	dir          string
	a1, a2, b    []byte
	w1, w2       *store.Version
	zip1, zip2   []byte // the versions as ZIPs, before the damage
	pack         string // the damaged pack
	lostID       store.ChunkID
	other        *store.Repository // a copy of both versions, made before the damage
	otherDir     string
	beforeRepair map[string]string // object listing right after the damage
}

func newRepairFixture(t *testing.T) *repairFixture {
	t.Helper()
	ctx := context.Background()
	f := &repairFixture{a1: randomData(11, 300<<10), a2: randomData(12, 300<<10), b: randomData(13, 300<<10)}
	f.repo, f.dir = newRepo(t)
	w, err := store.NewWriter(ctx, f.repo)
	if err != nil {
		t.Fatal(err)
	}
	f.w1 = backup(t, w, "worker1", []file{{"a1", f.a1}, {"a2", f.a2}})[0].Version
	f.w2 = backup(t, w, "worker2", []file{{"a1", f.a1}, {"b", f.b}})[0].Version
	f.zip1, f.zip2 = zipOf(t, f.repo, f.w1.ID), zipOf(t, f.repo, f.w2.ID)
	f.other, f.otherDir = newRepo(t)
	if _, err := store.CopyVersions(ctx, f.repo, f.other, nil); err != nil {
		t.Fatal(err)
	}
	f.lostID = f.w1.Entries[2].Chunks[0] // a2; Entries[0] is the directory
	f.pack = damageFrame(t, f.repo, f.dir, f.lostID)
	f.beforeRepair = listing(t, f.dir)
	return f
}

// listing returns every object under dir (locks aside) with the SHA-256
// of its content.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "locks") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = string(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lockRepo(t *testing.T, r *store.Repository) {
	t.Helper()
	l, err := r.Lock(context.Background(), "repair", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Unlock(context.Background()) })
}

// problemsOf returns check --read-data's problems as "object: versions".
func problemsOf(t *testing.T, r *store.Repository) []string {
	t.Helper()
	rep, err := r.Check(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.Object+": "+strings.Join(p.Versions, ","))
	}
	return out
}

func TestRepairSalvagesAndReportsLoss(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	if ps := problemsOf(t, f.repo); len(ps) != 1 || !strings.HasPrefix(ps[0], f.pack) {
		t.Fatalf("before repair: problems %v, want the damaged pack %s", ps, f.pack)
	}
	lockRepo(t, f.repo)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].Pack != f.pack || rep.BlobsSalvaged != 1 || rep.BlobsLost != 1 || rep.BlobsFetched != 0 ||
		rep.PacksWritten != 1 || rep.PacksDeleted != 1 || rep.PacksRead != 2 {
		t.Errorf("report = %+v; want pack %s damaged, a1 salvaged, a2 lost, 1 pack written and 1 deleted of 2 read", rep, f.pack)
	}
	if len(rep.Incomplete) != 1 || !strings.HasPrefix(rep.Incomplete[0], f.w1.ShortID()+" (worker1 ") {
		t.Errorf("incomplete = %v, want worker1's version %s only", rep.Incomplete, f.w1.ShortID())
	}
	if _, err := os.Stat(filepath.Join(f.dir, f.pack)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("damaged pack still stored: %v", err)
	}
	// No pack is damaged any more; only the lost blob is missing, for
	// worker1's version alone. worker2's restores byte for byte.
	ps := problemsOf(t, f.repo)
	if len(ps) != 1 || !strings.Contains(ps[0], f.lostID.String()) || !strings.Contains(ps[0], f.w1.ShortID()) || strings.Contains(ps[0], f.w2.ShortID()) {
		t.Errorf("after repair: problems %v, want only blob %s of version %s", ps, f.lostID, f.w1.ShortID())
	}
	if got := zipOf(t, f.repo, f.w2.ID); !bytes.Equal(got, f.zip2) {
		t.Error("worker2's version does not restore as before the damage")
	}
	// A backup of the same data stores the lost blob again, and the old
	// version is complete too.
	w, err := store.NewWriter(ctx, f.repo)
	if err != nil {
		t.Fatal(err)
	}
	res := backup(t, w, "worker1", []file{{"a1", f.a1}, {"a2", f.a2}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if ps := problemsOf(t, f.repo); len(ps) != 0 {
		t.Errorf("after a new backup: problems %v, want none", ps)
	}
	if got := zipOf(t, f.repo, f.w1.ID); !bytes.Equal(got, f.zip1) {
		t.Error("worker1's old version does not restore as before the damage")
	}
	// A second repair finds nothing to do.
	rep, err = f.repo.Repair(ctx, store.RepairOptions{})
	if err != nil || len(rep.Damaged) != 0 || rep.PacksWritten != 0 {
		t.Errorf("second repair = %+v, %v; want nothing to do", rep, err)
	}
}

func TestRepairFetchesFromAnotherStore(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	lockRepo(t, f.repo)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{From: f.other})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsSalvaged != 1 || rep.BlobsFetched != 1 || rep.BlobsLost != 0 || len(rep.Incomplete) != 0 {
		t.Errorf("report = %+v; want a1 salvaged, a2 fetched, nothing lost", rep)
	}
	if ps := problemsOf(t, f.repo); len(ps) != 0 {
		t.Errorf("after repair --from: problems %v, want none", ps)
	}
	if got := zipOf(t, f.repo, f.w1.ID); !bytes.Equal(got, f.zip1) {
		t.Error("worker1's version does not restore as before the damage")
	}
}

func TestRepairFromAStoreLackingTheBlobs(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	empty, _ := newRepo(t)
	lockRepo(t, f.repo)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{From: empty})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsFetched != 0 || rep.BlobsLost != 1 || len(rep.Incomplete) != 1 {
		t.Errorf("report = %+v; want a2 lost and worker1's version incomplete", rep)
	}
	// The same repository is no other store.
	if _, err := f.repo.Repair(ctx, store.RepairOptions{From: f.repo}); err == nil || !strings.Contains(err.Error(), "same repository") {
		t.Errorf("repair from itself = %v", err)
	}
}

func TestRepairDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{DryRun: true, From: f.other})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || len(rep.Damaged) != 1 || rep.BlobsSalvaged != 1 || rep.BlobsFetched != 1 || rep.PacksWritten != 0 || rep.PacksDeleted != 0 {
		t.Errorf("dry run = %+v; want the damage found, a1 salvageable, a2 fetchable, nothing written", rep)
	}
	rep, err = f.repo.Repair(ctx, store.RepairOptions{DryRun: true})
	if err != nil || rep.BlobsLost != 1 || len(rep.Incomplete) != 1 {
		t.Errorf("dry run without --from = %+v, %v; want a2 lost for worker1's version", rep, err)
	}
	if after := listing(t, f.dir); !maps.Equal(after, f.beforeRepair) {
		t.Errorf("a dry run changed the repository: %d objects before, %d after", len(f.beforeRepair), len(after))
	}
}

func TestRepairNeedsTheLock(t *testing.T) {
	f := newRepairFixture(t)
	if _, err := f.repo.Repair(context.Background(), store.RepairOptions{}); err == nil || !strings.Contains(err.Error(), "lock") {
		t.Errorf("repair without the lock = %v", err)
	}
	if after := listing(t, f.dir); !maps.Equal(after, f.beforeRepair) {
		t.Error("a refused repair changed the repository")
	}
}

// failDelete wraps a backend whose deletions of objects under prefix
// fail, as a crash right before them would leave the repository.
type failDelete struct {
	store.Backend
	prefix string
}

func (f *failDelete) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, f.prefix) {
		return errStoreDown
	}
	return f.Backend.Delete(ctx, name)
}

// A repair stopped after its new packs and index are stored, before the
// old index or the damaged pack is deleted, leaves a repository that check
// accepts and whose versions restore; a second repair completes it.
func TestRepairInterrupted(t *testing.T) {
	for _, prefix := range []string{"index/", "packs/"} {
		t.Run(strings.TrimSuffix(prefix, "/"), func(t *testing.T) {
			ctx := context.Background()
			f := newRepairFixture(t)
			b, err := local.Open(f.dir)
			if err != nil {
				t.Fatal(err)
			}
			broken, err := store.Open(ctx, &failDelete{Backend: b, prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			l, err := broken.Lock(ctx, "repair", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := broken.Repair(ctx, store.RepairOptions{}); !errors.Is(err, errStoreDown) {
				t.Fatalf("repair = %v, want %v", err, errStoreDown)
			}
			_ = l.Unlock(ctx)
			// The lost blob is still indexed in the damaged pack while
			// the old index remains, and missing once it is gone.
			rep, err := f.repo.Check(ctx, false)
			if err != nil || rep.Versions != 2 || len(rep.Problems) > 1 || len(rep.Problems) == 1 && !strings.Contains(rep.Problems[0].Object, f.lostID.String()) {
				t.Errorf("check after the interrupted repair = %+v, %v; want at most the lost blob", rep, err)
			}
			if got := zipOf(t, f.repo, f.w2.ID); !bytes.Equal(got, f.zip2) {
				t.Error("worker2's version does not restore after the interrupted repair")
			}
			lockRepo(t, f.repo)
			rrep, err := f.repo.Repair(ctx, store.RepairOptions{})
			if err != nil || len(rrep.Damaged) != 1 || rrep.PacksDeleted != 1 {
				t.Errorf("second repair = %+v, %v; want the damaged pack deleted", rrep, err)
			}
			ps := problemsOf(t, f.repo)
			if len(ps) != 1 || !strings.Contains(ps[0], f.lostID.String()) || slices.ContainsFunc(ps, func(p string) bool { return strings.HasPrefix(p, "packs/") }) {
				t.Errorf("after the second repair: problems %v, want only the lost blob", ps)
			}
			if _, err := os.Stat(filepath.Join(f.dir, f.pack)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("damaged pack still stored: %v", err)
			}
		})
	}
}

// A missing pack is repaired like a damaged one: its blobs are fetched
// from the other store.
func TestRepairMissingPack(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	if err := os.Remove(filepath.Join(f.dir, f.pack)); err != nil {
		t.Fatal(err)
	}
	lockRepo(t, f.repo)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{From: f.other})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].Reason != "pack missing" || rep.BlobsFetched < 2 || rep.BlobsLost != 0 || rep.PacksDeleted != 0 {
		t.Errorf("report = %+v; want the missing pack's blobs fetched", rep)
	}
	if ps := problemsOf(t, f.repo); len(ps) != 0 {
		t.Errorf("after repair: problems %v", ps)
	}
}

// A repair without --from loses a2; a later repair --from fetches it: the
// store heals whichever is run first.
func TestRepairFromLater(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	lockRepo(t, f.repo)
	if rep, err := f.repo.Repair(ctx, store.RepairOptions{}); err != nil || rep.BlobsLost != 1 {
		t.Fatalf("repair = %+v, %v; want a2 lost", rep, err)
	}
	rep, err := f.repo.Repair(ctx, store.RepairOptions{From: f.other})
	if err != nil || len(rep.Damaged) != 0 || rep.BlobsFetched != 1 || rep.BlobsLost != 0 || len(rep.Incomplete) != 0 {
		t.Errorf("repair --from after the loss = %+v, %v; want a2 fetched", rep, err)
	}
	if ps := problemsOf(t, f.repo); len(ps) != 0 {
		t.Errorf("problems %v, want none", ps)
	}
}

// A damaged frame of page-tree nodes hides every page below them: with
// --from, the nodes are fetched (read from the other store to find the
// pages below, sound where they are); without, the nodes are lost and the
// next backup of the same database stores them again.
func TestRepairPageTree(t *testing.T) {
	ctx := context.Background()
	db := killDB(0)
	for _, withFrom := range []bool{true, false} {
		repo, dir := newRepo(t)
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		v := backup(t, w, "leader1", []file{{"storage/pioreactor.sqlite", db}})[0].Version
		root := v.Entries[1].Tree
		if root == nil {
			t.Fatal("the database was not stored as a page tree")
		}
		want := zipOf(t, repo, v.ID)
		other, _ := newRepo(t)
		if _, err := store.CopyVersions(ctx, repo, other, nil); err != nil {
			t.Fatal(err)
		}
		damageFrame(t, repo, dir, *root)
		lockRepo(t, repo)
		if withFrom {
			rep, err := repo.Repair(ctx, store.RepairOptions{From: other})
			if err != nil || rep.BlobsFetched == 0 || rep.BlobsLost != 0 || len(rep.Incomplete) != 0 {
				t.Fatalf("repair --from = %+v, %v; want the nodes fetched, nothing lost", rep, err)
			}
		} else {
			rep, err := repo.Repair(ctx, store.RepairOptions{})
			if err != nil || rep.BlobsLost == 0 || len(rep.Incomplete) != 1 {
				t.Fatalf("repair = %+v, %v; want the nodes lost, the version incomplete", rep, err)
			}
			if ps := problemsOf(t, repo); len(ps) == 0 {
				t.Error("check finds nothing missing before the next backup")
			}
			w, err := store.NewWriter(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			backup(t, w, "leader1", []file{{"storage/pioreactor.sqlite", db}})
		}
		if ps := problemsOf(t, repo); len(ps) != 0 {
			t.Errorf("from %v: problems %v, want none", withFrom, ps)
		}
		if got := zipOf(t, repo, v.ID); !bytes.Equal(got, want) {
			t.Errorf("from %v: the database does not restore as before the damage", withFrom)
		}
	}
}

// Damaged index objects are replaced by an index read from the packs'
// own headers, as restic's repair index does: nothing they named is
// lost, and the damaged pack is still salvaged.
func TestRepairDamagedIndex(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	names, err := filepath.Glob(filepath.Join(f.dir, "index", "*"))
	if err != nil || len(names) < 2 {
		t.Fatalf("index objects %v, %v", names, err)
	}
	for _, n := range names {
		if err := os.WriteFile(n, []byte("rot"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lockRepo(t, f.repo)
	rep, err := f.repo.Repair(ctx, store.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.IndexDamaged) != len(names) || rep.PacksIndexed != 2 || len(rep.Damaged) != 1 || rep.Damaged[0].Pack != f.pack ||
		rep.BlobsSalvaged != 1 || rep.BlobsLost != 1 || len(rep.Incomplete) != 1 {
		t.Errorf("report = %+v; want %d index objects replaced, 2 packs indexed again, a1 salvaged and a2 lost", rep, len(names))
	}
	for _, n := range names {
		if _, err := os.Stat(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("damaged index object %s still stored", n)
		}
	}
	ps := problemsOf(t, f.repo)
	if len(ps) != 1 || !strings.Contains(ps[0], f.lostID.String()) {
		t.Errorf("after repair: problems %v, want only blob %s", ps, f.lostID)
	}
	if got := zipOf(t, f.repo, f.w2.ID); !bytes.Equal(got, f.zip2) {
		t.Error("worker2's version does not restore as before the damage")
	}
}

// A lost tree node ends the walk of its entry only: the blobs of the
// entries after it, in the same damaged pack, are still salvaged.
func TestRepairWalksPastALostTree(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	after := randomData(21, 300<<10)
	v := backup(t, w, "leader1", []file{{"storage/pioreactor.sqlite", killDB(0)}, {"config.ini", after}})[0].Version
	afterID := v.Entries[2].Chunks[0]
	pack := damageFrame(t, repo, dir, *v.Entries[1].Tree)
	if p, _, _, err := store.BlobPlace(ctx, repo, afterID); err != nil || p != pack {
		t.Fatalf("config.ini's blob in %s (%v), want the damaged pack %s", p, err, pack)
	}
	lockRepo(t, repo)
	rep, err := repo.Repair(ctx, store.RepairOptions{})
	if err != nil || rep.BlobsLost == 0 || rep.BlobsSalvaged == 0 {
		t.Fatalf("repair = %+v, %v; want the nodes lost and the rest salvaged", rep, err)
	}
	for _, p := range problemsOf(t, repo) {
		if strings.Contains(p, afterID.String()) {
			t.Errorf("config.ini's blob was dropped: %s", p)
		}
	}
	var buf bytes.Buffer
	if err := repo.WriteZip(ctx, &buf, v); err == nil {
		t.Error("the version with a lost tree restores")
	}
}

// Repair can read only the packs it is given: the damaged one is
// repaired as by a full repair; a sound one changes nothing.
func TestRepairOnlyGivenPacks(t *testing.T) {
	ctx := context.Background()
	f := newRepairFixture(t)
	lockRepo(t, f.repo)
	sound, _, _, err := store.BlobPlace(ctx, f.repo, f.w2.Entries[2].Chunks[0]) // b
	if err != nil || sound == f.pack {
		t.Fatalf("b in %s (%v), want a pack other than %s", sound, err, f.pack)
	}
	rep, err := f.repo.Repair(ctx, store.RepairOptions{Packs: []string{sound}})
	if err != nil || rep.PacksRead != 1 || len(rep.Damaged) != 0 || rep.PacksWritten != 0 {
		t.Errorf("repair of a sound pack = %+v, %v; want it read and nothing done", rep, err)
	}
	if after := listing(t, f.dir); !maps.Equal(after, f.beforeRepair) {
		t.Error("a repair of a sound pack changed the repository")
	}
	rep, err = f.repo.Repair(ctx, store.RepairOptions{Packs: []string{f.pack}})
	if err != nil || rep.PacksRead != 1 || len(rep.Damaged) != 1 || rep.BlobsSalvaged != 1 || rep.BlobsLost != 1 {
		t.Errorf("repair of the damaged pack = %+v, %v; want a1 salvaged and a2 lost", rep, err)
	}
	for _, name := range []string{"packs/zz", "index/" + strings.Repeat("0", 64)} {
		if _, err := f.repo.Repair(ctx, store.RepairOptions{Packs: []string{name}}); err == nil || !strings.Contains(err.Error(), "not a pack's name") {
			t.Errorf("repair of %q = %v, want it refused", name, err)
		}
	}
}
