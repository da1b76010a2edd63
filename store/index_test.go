package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
)

// TestIndexKeepsWhatEachReadingNeeds backs up a database on two hosts and
// again after it changed, then loads the index as check and forget do
// (every blob's place, the slice sized once from the index objects'
// headers) and as a writer does (places of tree nodes, IDs of pages), and
// checks both against what the repository holds.
func TestIndexKeepsWhatEachReadingNeeds(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := newSQLiteDB(t, 4096, 3000, false)
	config := file{"config.ini", randomData(3, 700_000)}
	v1 := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db.bytes()}, config}).Version
	pageBackup(t, repo, "worker1", []file{{"storage/pioreactor.sqlite", db.bytes()}, config})
	db.update(40)
	db.append(300)
	v2 := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db.bytes()}, config}).Version

	chunks, err := repo.Chunks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := store.LoadIndexShape(ctx, repo, "whole")
	if err != nil {
		t.Fatal(err)
	}
	// The same pages on two hosts and in two versions are stored once.
	if whole.Places != len(chunks) || whole.IDs != 0 {
		t.Errorf("whole index: %d places and %d bare IDs, want %d places (one per blob)", whole.Places, whole.IDs, len(chunks))
	}
	// Sized once: each index object's header bounds its records, within
	// less than one record per pack (the pack IDs in the object).
	if whole.PlacesCap < whole.Places || whole.PlacesCap > whole.Places+whole.Packs {
		t.Errorf("whole index: room for %d records, holds %d in %d packs; want it sized from the headers", whole.PlacesCap, whole.Places, whole.Packs)
	}
	if whole.Frames*4 > whole.Places {
		t.Errorf("whole index: %d frames for %d blobs, want the blobs of a frame to share it", whole.Frames, whole.Places)
	}
	// check --read-data compares every record with its pack's header and
	// every blob with its hash.
	rep, err := repo.Check(ctx, true)
	if err != nil || !rep.OK() || rep.ChunksRead != len(chunks) {
		t.Errorf("check --read-data = %+v, %v; want sound, %d blobs read", rep, err, len(chunks))
	}

	writer, err := store.LoadIndexShape(ctx, repo, "writer")
	if err != nil {
		t.Fatal(err)
	}
	if writer.Places+writer.IDs != len(chunks) || writer.Places == 0 || writer.Places*10 > writer.IDs {
		t.Errorf("writer's index: %d places and %d IDs for %d blobs, want the few tree nodes placed and every page by ID", writer.Places, writer.IDs, len(chunks))
	}
	for id := range chunks {
		if !writer.Has(id) {
			t.Fatalf("writer's index lacks blob %s", id)
		}
	}
	for _, v := range []*store.Version{v1, v2} {
		for _, e := range v.Entries {
			if e.Tree != nil && !writer.Placed(*e.Tree) {
				t.Errorf("writer's index does not place the root of %s's tree", e.Name)
			}
			for _, c := range e.Chunks {
				if writer.Placed(c) {
					t.Errorf("writer's index keeps the place of data blob %s of %s", c, e.Name)
				}
			}
		}
	}
	if unknown := store.HashChunk([]byte("never stored")); writer.Has(unknown) || whole.Has(unknown) || whole.Placed(unknown) {
		t.Error("an index knows a blob never stored")
	}
}

// TestRunAddsBlobsOnce checks the blobs a run adds: a second host with
// the same database in the same run stores nothing, and a version aborted
// while its pages still wait in an open frame leaves them to be stored
// by the next version that has them.
func TestRunAddsBlobsOnce(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := newSQLiteDB(t, 4096, 2000, false)
	content := db.bytes()
	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	dropped := w.Begin("worker2")
	if _, err := dropped.Add(ctx, "storage/pioreactor.sqlite", 0o644, time.Now(), bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := dropped.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	first := backup(t, w, "leader1", []file{{"storage/pioreactor.sqlite", content}})[0]
	second := backup(t, w, "worker1", []file{{"storage/pioreactor.sqlite", content}})[0]
	if first.Err != nil || second.Err != nil {
		t.Fatal(first.Err, second.Err)
	}
	if first.Stored == 0 || second.Stored != 0 {
		t.Errorf("stored %d then %d bytes for the same database twice in a run, want some then none", first.Stored, second.Stored)
	}
	if rep, err := repo.Check(ctx, true); err != nil || !rep.OK() {
		t.Fatalf("check --read-data = %+v, %v", rep, err)
	}
	for _, v := range []*store.Version{first.Version, second.Version} {
		if got := exported(t, repo, v)["storage/pioreactor.sqlite"]; !bytes.Equal(got, content) {
			t.Errorf("version of %s: database differs after restore", v.Host)
		}
	}
}

// TestRestoreLoadsOnlyItsBlobs backs up a database night after night, and
// another host's, and checks that rebuilding the last version keeps the
// places of exactly the blobs it uses, not of the history, and still
// rebuilds it byte for byte.
func TestRestoreLoadsOnlyItsBlobs(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	db := newSQLiteDB(t, 4096, 3000, false)
	other := newSQLiteDB(t, 8192, 3000, false)
	config := file{"config.ini", randomData(4, 900_000)}
	pageBackup(t, repo, "worker1", []file{{"storage/pioreactor.sqlite", other.bytes()}})
	var last *store.Version
	for night := 0; night < 4; night++ {
		db.update(50)
		db.append(400)
		last = pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", db.bytes()}, config}).Version
	}
	used, err := store.UsedBlobs(ctx, repo, last)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := store.LoadIndexShape(ctx, repo, "whole")
	if err != nil {
		t.Fatal(err)
	}
	needed, err := store.NeededIndexShape(ctx, repo, last)
	if err != nil {
		t.Fatal(err)
	}
	if needed.Places != len(used) || needed.PlacesCap != len(used) || needed.IDs != 0 {
		t.Errorf("restore's index: %d places (room for %d), %d bare IDs; want the %d blobs the version uses", needed.Places, needed.PlacesCap, needed.IDs, len(used))
	}
	if whole.Places < needed.Places*3/2 {
		t.Fatalf("the repository holds %d blobs, the version %d: want a history the restore leaves out", whole.Places, needed.Places)
	}
	for id := range used {
		if !needed.Placed(id) {
			t.Fatalf("restore's index lacks blob %s the version uses", id)
		}
	}
	got := exported(t, repo, last)
	if !bytes.Equal(got["storage/pioreactor.sqlite"], db.bytes()) || !bytes.Equal(got["config.ini"], config.data) {
		t.Error("the last version is not rebuilt byte for byte")
	}
	for _, e := range last.Entries {
		if e.Name == "config.ini" {
			b, err := io.ReadAll(repo.OpenEntryAlone(ctx, &e))
			if err != nil || !bytes.Equal(b, config.data) {
				t.Errorf("OpenEntryAlone(config.ini) = %d bytes, %v; want the %d bytes stored", len(b), err, len(config.data))
			}
		}
	}
	// A folder restore reads the files one by one, with the version's
	// places and not the whole index.
	fresh, err := store.Open(ctx, mustLocal(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	vr := fresh.ForVersion(last)
	for i := range last.Entries {
		e := &last.Entries[i]
		if e.IsDir() {
			continue
		}
		b, err := io.ReadAll(vr.OpenEntry(ctx, e))
		if err != nil || !bytes.Equal(b, got[e.Name]) {
			t.Errorf("ForVersion.OpenEntry(%s) = %d bytes, %v; want the %d bytes stored", e.Name, len(b), err, len(got[e.Name]))
		}
	}
	if store.WholeIndexLoaded(fresh) {
		t.Error("reading a version's files loaded the whole index")
	}
}

// TestReadPrefixCollision reads a version whose compact places (found by
// the first 8 bytes of a blob's ID) offer, for one blob, the place of
// another blob first, as two IDs sharing their first 8 bytes would: the
// read-ahead of a restore and a read of the blob alone find the hash
// wrong, try the next place and rebuild the version byte for byte. When
// no place holds the blob, reading it is damage, not another blob's
// content.
func TestReadPrefixCollision(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := newSQLiteDB(t, 4096, 2000, false)
	want := map[string][]byte{
		"storage/pioreactor.sqlite": db.bytes(),
		"config.ini":                randomData(11, 3000),
		"unit.json":                 randomData(12, 5000),
	}
	var fs []file
	for name, data := range want {
		fs = append(fs, file{name, data})
	}
	v := pageBackup(t, repo, "leader1", fs).Version
	chunk := func(name string) store.ChunkID {
		for _, e := range v.Entries {
			if e.Name == name && len(e.Chunks) == 1 {
				return e.Chunks[0]
			}
		}
		t.Fatalf("no entry %s of one chunk", name)
		return store.ChunkID{}
	}
	a, b := chunk("config.ini"), chunk("unit.json")
	for _, tc := range []struct {
		name    string
		dropOwn bool
	}{
		{"other blob's place first", false},
		{"only the other blob's place", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, blobErr, err := store.ReadWithPrefixCollision(ctx, repo, v, a, b, tc.dropOwn)
			if tc.dropOwn {
				if !errors.Is(blobErr, store.ErrDamaged) {
					t.Errorf("reading the blob alone: %v, want damage", blobErr)
				}
				if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "unit.json") {
					t.Errorf("reading the version: %v, want damage naming unit.json", err)
				}
				return
			}
			if blobErr != nil || err != nil {
				t.Fatalf("reading the blob alone: %v; the version: %v", blobErr, err)
			}
			for name, data := range want {
				if !bytes.Equal(got[name], data) {
					t.Errorf("%s: %d bytes differ from the %d stored", name, len(got[name]), len(data))
				}
			}
		})
	}
}

// TestReadInWindows reads a version, a database of several nights (delta
// leaves) with its -wal file (inline frame headers), ordinary files and an
// empty one, through a read-ahead that looks its blobs up a few at a time:
// each window holds the places of at most its blobs, and the version is
// rebuilt byte for byte whatever the window's size.
func TestReadInWindows(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := newSQLiteDB(t, 1024, 3000, true)
	var v *store.Version
	want := map[string][]byte{}
	for night := 0; night < 3; night++ {
		db.update(40)
		wal, err := os.ReadFile(db.path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		want = map[string][]byte{
			"config.ini":                    randomData(uint64(20+night), 3000),
			"storage/pioreactor.sqlite":     db.bytes(),
			"storage/pioreactor.sqlite-wal": wal,
			"storage/empty":                 nil,
			"unit.json":                     randomData(30, 1500),
		}
		var fs []file
		for _, name := range []string{"config.ini", "storage/pioreactor.sqlite", "storage/pioreactor.sqlite-wal", "storage/empty", "unit.json"} {
			fs = append(fs, file{name, want[name]})
		}
		v = pageBackup(t, repo, "leader1", fs).Version
	}
	for _, tc := range []struct {
		window      int
		manyWindows bool
	}{
		{1, true},
		{7, true},
		{100, true},
		{1 << 18, false},
	} {
		t.Run(strconv.Itoa(tc.window), func(t *testing.T) {
			got, windows, most, err := store.ReadInWindows(ctx, repo, v, tc.window)
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range want {
				if !bytes.Equal(got[name], data) {
					t.Errorf("%s: %d bytes differ from the %d stored", name, len(got[name]), len(data))
				}
			}
			if most > tc.window || (windows > 1) != tc.manyWindows {
				t.Errorf("%d windows, the largest of %d places; want at most %d places, several windows %v", windows, most, tc.window, tc.manyWindows)
			}
		})
	}
}

// TestRestoreAfterForgetRepacked starts reading a version, then lets a
// forget repack the pack holding its pages: the reading finds the places
// it kept gone, reads them again and rebuilds the version byte for byte.
func TestRestoreAfterForgetRepacked(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	db := newSQLiteDB(t, 4096, 2000, false)
	content := db.bytes()
	v1 := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", content}, {"big", randomData(8, 3<<20)}}).Version
	v2 := pageBackup(t, repo, "leader1", []file{{"storage/pioreactor.sqlite", content}, {"small", randomData(9, 1000)}}).Version
	read, err := store.StaleVersionReader(ctx, repo, v2)
	if err != nil {
		t.Fatal(err)
	}
	l, err := repo.Lock(ctx, "forget", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	rep, err := repo.Forget(ctx, []string{v1.ID})
	if err != nil || rep.PacksWritten == 0 || rep.PacksDeleted == 0 {
		t.Fatalf("forget = %+v, %v; want the pack of the pages repacked", rep, err)
	}
	got, err := read()
	if err != nil {
		t.Fatalf("reading after the forget: %v", err)
	}
	if !bytes.Equal(got["storage/pioreactor.sqlite"], content) {
		t.Error("database differs after the forget repacked its pages")
	}
}

// TestDamagedIndexHeader plants an index object whose zstd header claims
// a terabyte of records: the load sizes its slice within what a writer
// ever puts in one object, leaves the object out, and check names it.
func TestDamagedIndexHeader(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	pageBackup(t, repo, "leader1", []file{{"config.ini", randomData(5, 1000)}})
	// Magic, a single-segment frame with an 8-byte content size, then
	// bytes that are no block.
	bad := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff}
	name := store.HashChunk(bad).String()
	if err := os.WriteFile(filepath.Join(dir, "index", name), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	whole, err := store.LoadIndexShape(ctx, repo, "whole")
	if err != nil {
		t.Fatal(err)
	}
	if whole.Places != 1 || whole.PlacesCap > 1+whole.Packs+100_000 {
		t.Errorf("index with a damaged object: %d places, room for %d; want 1, room bounded", whole.Places, whole.PlacesCap)
	}
	rep, err := repo.Check(ctx, false)
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Object != "index/"+name {
		t.Errorf("check = %+v, %v; want index/%s named", rep, err, name)
	}
}
