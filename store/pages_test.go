package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// sqliteDB is a real SQLite database in a temporary directory, aged by
// appending rows and updating rows in place as a Pioreactor leader's is.
type sqliteDB struct {
	t    *testing.T
	path string
	db   *sql.DB
	rows int
	rng  *rand.Rand
}

func newSQLiteDB(t *testing.T, pageSize, rows int, wal bool) *sqliteDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pioreactor.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mode := "DELETE"
	if wal {
		mode = "WAL"
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA page_size=%d", pageSize),
		"PRAGMA journal_mode=" + mode,
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE od_readings (experiment TEXT, unit TEXT, timestamp TEXT, od REAL)",
		"CREATE INDEX od_by_unit ON od_readings (unit, timestamp)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := &sqliteDB{t: t, path: path, db: db, rng: rand.New(rand.NewPCG(uint64(pageSize), 7))}
	s.append(rows)
	return s
}

// append inserts n rows in one transaction.
func (s *sqliteDB) append(n int) {
	s.t.Helper()
	tx, err := s.db.Begin()
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		unit := fmt.Sprintf("worker%d", s.rng.IntN(4))
		_, err := tx.Exec("INSERT INTO od_readings VALUES (?, ?, ?, ?)", "exp-2026", unit, time.Unix(int64(1_780_000_000+s.rows*5), 0).UTC().Format(time.RFC3339), s.rng.Float64())
		if err != nil {
			s.t.Fatal(err)
		}
		s.rows++
	}
	if err := tx.Commit(); err != nil {
		s.t.Fatal(err)
	}
}

// update changes n random rows in place, in one transaction.
func (s *sqliteDB) update(n int) {
	s.t.Helper()
	tx, err := s.db.Begin()
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := tx.Exec("UPDATE od_readings SET od = ? WHERE rowid = ?", s.rng.Float64(), 1+s.rng.IntN(s.rows)); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sqliteDB) bytes() []byte {
	s.t.Helper()
	b, err := os.ReadFile(s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// pageBackup stores files as one version of host in a new writer's run.
func pageBackup(t *testing.T, repo *store.Repository, host string, files []file) store.Result {
	t.Helper()
	w, err := store.NewWriter(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	res := backup(t, w, host, files)[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res
}

// exported returns the content of every file of a version, as restore
// rebuilds it. The DEFLATE archive (export), the STORED archive (restore)
// and OpenEntry must agree byte for byte.
func exported(t *testing.T, repo *store.Repository, v *store.Version) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	if err := repo.WriteZip(ctx, &buf, v); err != nil {
		t.Fatal(err)
	}
	files := readZip(t, buf.Bytes())
	z, err := repo.StoredZip(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := z.WriteTo(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	stored := readZip(t, buf.Bytes())
	for i := range v.Entries {
		e := &v.Entries[i]
		if e.IsDir() {
			continue
		}
		one, err := io.ReadAll(repo.OpenEntry(ctx, e))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored[e.Name], files[e.Name]) || !bytes.Equal(one, files[e.Name]) {
			t.Fatalf("%s: the STORED archive (%d bytes), OpenEntry (%d) and the DEFLATE archive (%d) differ", e.Name, len(stored[e.Name]), len(one), len(files[e.Name]))
		}
	}
	return files
}

func entry(t *testing.T, v *store.Version, name string) store.Entry {
	t.Helper()
	for _, e := range v.Entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("version %s has no entry %q", v.ShortID(), name)
	return store.Entry{}
}

// TestDatabasePages stores databases of several page sizes night after
// night: each night costs about its changed pages, another host with the
// same database costs nothing, and every version is rebuilt byte for byte.
func TestDatabasePages(t *testing.T) {
	for _, ps := range []int{1024, 4096, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			ctx := context.Background()
			repo, _ := newRepo(t)
			db := newSQLiteDB(t, ps, 20000, false)
			night1 := db.bytes()
			first := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", night1}})
			if e := entry(t, first.Version, "storage/pioreactor.sqlite"); e.Tree == nil || len(e.Chunks) != 0 {
				t.Fatalf("database entry %+v: want a page tree and no chunks", e)
			}
			// Another host holding the same database adds nothing.
			if other := pageBackup(t, repo, "leader2", []file{{"storage/pioreactor.sqlite", night1}}); other.Stored != 0 {
				t.Errorf("same database on a second host stored %d bytes, want 0", other.Stored)
			}
			// A night: 1 % appended, a few rows updated in place.
			db.append(200)
			db.update(20)
			night2 := db.bytes()
			second := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", night2}})
			// The limit: the changed pages uncompressed, plus the page
			// tree (33 bytes a page), plus pack header and index records
			// (49 bytes each) per new page.
			changed, pages := changedPages(night1, night2, ps), (len(night2)+ps-1)/ps
			if limit := int64(changed*(ps+2*49) + 33*pages + 4<<10); second.Stored > limit {
				t.Errorf("night 2 stored %d bytes for %d changed of %d pages of %d bytes (limit %d)", second.Stored, changed, pages, ps, limit)
			}
			vs, err := repo.Versions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				want := night1
				if v.ID == second.Version.ID {
					want = night2
				}
				if got := exported(t, repo, v)["storage/pioreactor.sqlite"]; !bytes.Equal(got, want) {
					t.Errorf("version %s of %s: database rebuilt as %d bytes differing from the %d stored", v.ShortID(), v.Host, len(got), len(want))
				}
			}
			if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() || rep.Unused != 0 {
				t.Errorf("check = %+v, %v", rep, err)
			}
		})
	}
}

// changedPages counts the pages of b that differ from a's or are new.
func changedPages(a, b []byte, ps int) int {
	n := 0
	for off := 0; off < len(b); off += ps {
		end := min(off+ps, len(b))
		if end > len(a) || !bytes.Equal(a[off:end], b[off:end]) {
			n++
		}
	}
	return n
}

// TestOddFiles stores files that look like SQLite but are not whole
// databases, and -wal files: each is rebuilt byte for byte.
func TestOddFiles(t *testing.T) {
	db := newSQLiteDB(t, 4096, 5000, false).bytes()
	badSize := bytes.Clone(db)
	badSize[16], badSize[17] = 0x03, 0xe8 // 1000: not a power of two
	zeroSize := bytes.Clone(db[:10000])
	zeroSize[16], zeroSize[17] = 0, 0
	corrupt := bytes.Clone(db)
	for i := 4096 * 2; i < 4096*3; i++ {
		corrupt[i] ^= 0x5a
	}
	walDB := newSQLiteDB(t, 1024, 3000, true)
	walDB.update(50)
	wal, err := os.ReadFile(walDB.path + "-wal")
	if err != nil || len(wal) < 32+24+1024 {
		t.Fatalf("-wal file: %d bytes, %v", len(wal), err)
	}
	tests := []struct {
		name string
		data []byte
		tree bool // stored page by page
	}{
		{"header only", db[:100], true},
		{"shorter than its header", db[:60], false},
		{"truncated inside a page", db[:4096*3+1234], true},
		{"page size not a power of two", badSize, false},
		{"page size zero", zeroSize, false},
		{"corrupt pages", corrupt, true},
		{"wal", wal, true},
		{"wal cut inside a frame header", wal[:32+1048+10], true},
		{"wal cut inside a page", wal[:32+1048+24+500], true},
		{"wal header only", wal[:32], true},
		{"wal with a bad page size", append(append(bytes.Clone(wal[:8]), 0, 0, 0x11, 0), wal[12:]...), false},
	}
	ctx := context.Background()
	repo, _ := newRepo(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := pageBackup(t, repo, "leader1", []file{{"storage/odd", tt.data}})
			if e := entry(t, res.Version, "storage/odd"); (e.Tree != nil) != tt.tree {
				t.Errorf("stored with a page tree: %v, want %v", e.Tree != nil, tt.tree)
			}
			if got := exported(t, repo, res.Version)["storage/odd"]; !bytes.Equal(got, tt.data) {
				t.Errorf("rebuilt %d bytes differing from the %d stored", len(got), len(tt.data))
			}
		})
	}
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
		t.Errorf("check = %+v, %v", rep, err)
	}
}

// TestWALSharesPages checks that a -wal file's pages are stored once: the
// same pages in the database after a checkpoint cost nothing more.
func TestWALSharesPages(t *testing.T) {
	s := newSQLiteDB(t, 4096, 2000, true)
	s.update(200)
	wal, err := os.ReadFile(s.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := newRepo(t)
	first := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite-wal", wal}})
	if first.Stored == 0 {
		t.Fatal("the -wal file stored nothing")
	}
	if _, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	db := s.bytes()
	second := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db}})
	if second.Stored > first.Stored {
		t.Errorf("database after checkpoint stored %d bytes, its -wal %d; the WAL's pages were not shared", second.Stored, first.Stored)
	}
}

// TestForgetFreesDroppedPages forgets a version whose pages were mostly
// rewritten since: the space its own pages took is given back.
func TestForgetFreesDroppedPages(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	s := newSQLiteDB(t, 4096, 20000, false)
	v1 := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", s.bytes()}}).Version
	s.update(4000)
	night2 := s.bytes()
	pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", night2}})
	before := storedBytes(t, dir)
	l, err := repo.Lock(ctx, "forget", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	rep, err := repo.Forget(ctx, []string{v1.ID})
	if err != nil {
		t.Fatal(err)
	}
	after := storedBytes(t, dir)
	// What the remaining version needs on its own.
	alone, aloneDir := newRepo(t)
	pageBackup(t, alone, "leader1", []file{{"storage/pioreactor.sqlite", night2}})
	need := storedBytes(t, aloneDir)
	if after > need*13/10 || rep.BytesFreed != before-after || rep.ChunksDeleted == 0 {
		t.Errorf("forget: %+v; repository %d -> %d bytes; the remaining version alone needs %d", rep, before, after, need)
	}
	if chk, err := repo.Check(ctx, true); err != nil || !chk.OK() {
		t.Errorf("check after forget = %+v, %v", chk, err)
	}
	vs, _ := repo.Versions(ctx)
	if len(vs) != 1 || !bytes.Equal(exported(t, repo, vs[0])["storage/pioreactor.sqlite"], night2) {
		t.Error("the remaining version is not rebuilt byte for byte")
	}
}

// copyDir copies a directory tree, for tests that change a fixture.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// TestFormat1Repository reads, checks, extends, copies and prunes a
// repository written by piosnap before packs (testdata/format1, made by
// that version's code): old versions stay readable throughout.
func TestFormat1Repository(t *testing.T) {
	ctx := context.Background()
	dir := copyDir(t, filepath.Join("testdata", "format1"))
	b, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if repo.Config().Format != 1 {
		t.Fatalf("fixture format %d, want 1", repo.Config().Format)
	}
	old, err := repo.Versions(ctx)
	if err != nil || len(old) != 2 {
		t.Fatalf("Versions = %d, %v; want the fixture's 2", len(old), err)
	}
	oldContent := map[string]map[string][]byte{}
	for _, v := range old {
		oldContent[v.ID] = exported(t, repo, v)
		if len(oldContent[v.ID]["storage/pioreactor.sqlite"]) != 66536 || !strings.Contains(string(oldContent[v.ID]["config.ini"]), v.Host) {
			t.Fatalf("fixture version %s exported wrongly", v.ShortID())
		}
	}
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() || rep.Chunks != 4 || rep.ChunksRead != 4 {
		t.Fatalf("check of the format-1 repository = %+v, %v", rep, err)
	}

	// A backup upgrades it: new blobs go into packs, the old config.ini
	// chunk is shared.
	l, err := repo.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := newSQLiteDB(t, 4096, 3000, false)
	res := pageBackup(t, repo, "leader1", []file{{"config.ini", oldContent[old[1].ID]["config.ini"]}, {"storage/pioreactor.sqlite", s.bytes()}})
	if e := entry(t, res.Version, "config.ini"); len(e.Chunks) != 1 || e.Chunks[0] != entry(t, old[1], "config.ini").Chunks[0] {
		t.Errorf("config.ini was not shared with the format-1 version")
	}
	reopened, err := store.Open(ctx, b)
	if err != nil || reopened.Config().Format != store.FormatVersion || reopened.Config().ID != repo.Config().ID {
		t.Fatalf("after a backup: config %+v, %v; want format %d, same ID", reopened.Config(), err, store.FormatVersion)
	}
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() || rep.Versions != 3 || rep.Packs == 0 {
		t.Errorf("check after the first new backup = %+v, %v", rep, err)
	}

	// Copy everything to a new repository: old versions keep their IDs.
	dst, _ := newRepo(t)
	if rep, err := store.CopyVersions(ctx, repo, dst, nil); err != nil || len(rep.Copied) != 3 {
		t.Fatalf("copy = %+v, %v", rep, err)
	}
	for id, want := range oldContent {
		v, err := dst.LoadVersion(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := exported(t, dst, v); !bytes.Equal(got["storage/pioreactor.sqlite"], want["storage/pioreactor.sqlite"]) {
			t.Errorf("copied version %s differs", v.ShortID())
		}
	}

	// Forget the oldest: its own chunk goes, the shared one stays.
	gc, err := repo.Forget(ctx, []string{old[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	if gc.ChunksDeleted != 1 {
		t.Errorf("forget deleted %d chunks, want the 1 only the old version used", gc.ChunksDeleted)
	}
	_ = l.Unlock(ctx)
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() || rep.Unused != 0 {
		t.Errorf("check after forget = %+v, %v", rep, err)
	}
	kept, err := repo.LoadVersion(ctx, old[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := exported(t, repo, kept); !bytes.Equal(got["storage/pioreactor.sqlite"], oldContent[kept.ID]["storage/pioreactor.sqlite"]) {
		t.Error("the remaining format-1 version changed")
	}
}

// TestNewerFormatRefused checks the message an older piosnap's check gives
// is matched by this one for a format it does not know.
func TestNewerFormatRefused(t *testing.T) {
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"format": 9, "id": "x", "chunker_polynomial": "340fc2266be4ad"}`
	if err := b.Put(context.Background(), "config", strings.NewReader(cfg), int64(len(cfg))); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "format 9 is not supported") || !strings.Contains(err.Error(), "upgrade piosnap") {
		t.Errorf("Open of format 9 = %v; want a refusal naming the format and the fix", err)
	}
}

// failIndexDelete is a real backend whose deletes of index objects fail,
// as if forget were killed right after storing its new index.
type failIndexDelete struct{ store.Backend }

func (f failIndexDelete) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "index/") {
		return fmt.Errorf("delete %s: refused by the test", name)
	}
	return f.Backend.Delete(ctx, name)
}

// TestForgetAfterInterruptedForget interrupts a forget after its new index
// (old and new index objects then name the same blobs in old and new
// packs) and runs forget again: whichever copy it keeps, nothing a version
// uses is lost. The second forget may write a pack with the very name of
// one the first wrote.
func TestForgetAfterInterruptedForget(t *testing.T) {
	for seed := range 6 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			repo, dir := newRepo(t)
			keep := randomData(uint64(100+seed), 600<<10)
			v1 := pageBackup(t, repo, "leader1", []file{{"a", keep}, {"b", randomData(uint64(200+seed), 600<<10)}}).Version
			pageBackup(t, repo, "leader1", []file{{"a", keep}})
			b, err := local.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			broken, err := store.Open(ctx, failIndexDelete{b})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := broken.Forget(ctx, []string{v1.ID}); err == nil {
				t.Fatal("forget succeeded though index deletes fail")
			}
			if _, err := repo.Forget(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
				t.Fatalf("check = %+v, %v", rep, err)
			}
			vs, _ := repo.Versions(ctx)
			if len(vs) != 1 || !bytes.Equal(exported(t, repo, vs[0])["a"], keep) {
				t.Error("the remaining version is not rebuilt")
			}
		})
	}
}

// TestDeltaLeaves backs up a database night after night: changed leaves
// are stored as deltas against the previous night's, chains stay bounded,
// and forgetting every older version keeps the bases the newest needs, in
// the repository and in a copy.
func TestDeltaLeaves(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	s := newSQLiteDB(t, 4096, 40000, false)
	var nights [][]byte
	var ids []string
	var treeBytes []int64
	for night := 0; night < 20; night++ {
		if night > 0 {
			s.append(150)
			s.update(15)
		}
		db := s.bytes()
		res := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db}})
		nights = append(nights, db)
		ids = append(ids, res.Version.ID)
		depths, err := store.LeafDepths(ctx, repo, *entry(t, res.Version, "storage/pioreactor.sqlite").Tree)
		if err != nil {
			t.Fatal(err)
		}
		deltas := 0
		for i, d := range depths {
			if d > 8+i%9 {
				t.Errorf("night %d: leaf %d at delta depth %d, over its bound %d", night, i, d, 8+i%9)
			}
			if d > 0 {
				deltas++
			}
		}
		if night > 1 && deltas == 0 {
			t.Errorf("night %d: no leaf of %d is a delta", night, len(depths))
		}
		treeBytes = append(treeBytes, res.Stored)
	}
	for _, i := range []int{0, 9, 19} {
		v, err := repo.LoadVersion(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(exported(t, repo, v)["storage/pioreactor.sqlite"], nights[i]) {
			t.Errorf("night %d rebuilt wrongly", i)
		}
	}
	// Keep only the newest: its leaves' bases stay, the pages only they
	// named go.
	l, err := repo.Lock(ctx, "forget", 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Forget(ctx, ids[:19])
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock(ctx)
	if rep.ChunksDeleted == 0 {
		t.Errorf("forget freed nothing: %+v", rep)
	}
	if chk, err := repo.Check(ctx, true); err != nil || !chk.OK() {
		t.Fatalf("check after forget = %+v, %v", chk, err)
	}
	last, err := repo.LoadVersion(ctx, ids[19])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exported(t, repo, last)["storage/pioreactor.sqlite"], nights[19]) {
		t.Error("the newest night is not rebuilt after forget")
	}
	dst, _ := newRepo(t)
	if _, err := store.CopyVersions(ctx, repo, dst, nil); err != nil {
		t.Fatal(err)
	}
	if chk, err := dst.Check(ctx, true); err != nil || !chk.OK() {
		t.Fatalf("check of the copy = %+v, %v", chk, err)
	}
	if !bytes.Equal(exported(t, dst, last)["storage/pioreactor.sqlite"], nights[19]) {
		t.Error("the newest night is not rebuilt from the copy")
	}
	// The next night, on top of a base whose own base is gone, still works.
	s.append(150)
	s.update(15)
	db := s.bytes()
	res := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db}})
	if !bytes.Equal(exported(t, repo, res.Version)["storage/pioreactor.sqlite"], db) {
		t.Error("a night after forget is rebuilt wrongly")
	}
	t.Logf("stored per night: %v", treeBytes)
}
