package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/store"
)

// A version whose page-tree root a repair could not salvage stops garbage
// collection at every forget, and the error names the way out; forgetting
// that version by its ID lets collection run again, and the other version
// still restores as before.
func TestForgetIncompleteVersionUnblocksGC(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	v := backup(t, w, "leader1", []file{{"storage/pioreactor.sqlite", killDB(0)}})[0].Version
	keep := backup(t, w, "worker1", []file{{"config.ini", randomData(31, 300<<10)}})[0].Version
	want := zipOf(t, repo, keep.ID)
	if v.Entries[1].Tree == nil {
		t.Fatal("the database was not stored as a page tree")
	}
	damageFrame(t, repo, dir, *v.Entries[1].Tree)
	lockRepo(t, repo)
	rep, err := repo.Repair(ctx, store.RepairOptions{})
	if err != nil || len(rep.Incomplete) != 1 {
		t.Fatalf("repair = %+v, %v; want leader1's version incomplete", rep, err)
	}
	_, err = repo.Forget(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "garbage collection stopped") || !strings.Contains(err.Error(), "piosnap forget --version "+v.ID[:8]) {
		t.Fatalf("forget with an unreadable tree: %v; want collection stopped, naming forget --version %s", err, v.ID[:8])
	}
	g, err := repo.Forget(ctx, []string{v.ID})
	if err != nil || g.VersionsDeleted != 1 {
		t.Fatalf("forget of the incomplete version = %+v, %v", g, err)
	}
	if _, err := repo.Forget(ctx, nil); err != nil {
		t.Errorf("forget after the incomplete version is gone: %v", err)
	}
	if ps := problemsOf(t, repo); len(ps) != 0 {
		t.Errorf("problems after forgetting the incomplete version: %v", ps)
	}
	if got := zipOf(t, repo, keep.ID); !bytes.Equal(got, want) {
		t.Error("worker1's version does not restore as before")
	}
}
