package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// lockFailBackend fails every write under locks/ while broken is set, as a
// storage outage would.
type lockFailBackend struct {
	store.Backend
	broken atomic.Bool
}

func (b *lockFailBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if b.broken.Load() && strings.HasPrefix(name, "locks/") {
		return errors.New("storage unreachable")
	}
	return b.Backend.Put(ctx, name, r, size)
}

// A process whose lock could not be refreshed for LockStale may have lost
// the repository to another process: it must write and delete nothing more.
func TestLostLockStopsWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		lb, err := local.Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b := &lockFailBackend{Backend: lb}
		repo, err := store.Init(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		l, err := repo.Lock(ctx, "backup", 0)
		if err != nil {
			t.Fatal(err)
		}
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		p := w.Begin("worker1")
		if _, err := p.Add(ctx, "a", 0o644, time.Now(), strings.NewReader("content")); err != nil {
			t.Fatal(err)
		}

		// A refresh that fails once is no loss yet.
		b.broken.Store(true)
		time.Sleep(store.LockRefresh + time.Second)
		if err := l.Err(); err != nil {
			t.Fatalf("one failed refresh already counts as lost: %v", err)
		}
		time.Sleep(store.LockStale)
		if err := l.Err(); !errors.Is(err, store.ErrLockLost) {
			t.Fatalf("lock unrefreshed for %s: Err = %v, want ErrLockLost", store.LockStale, err)
		}
		res := p.Commit(ctx, store.Version{Time: time.Now()})
		if !errors.Is(res[0].Err, store.ErrLockLost) || !strings.Contains(res[0].Err.Error(), "piosnap check") {
			t.Errorf("commit after the lock was lost: %v", res[0].Err)
		}
		if _, err := repo.Forget(ctx, nil); !errors.Is(err, store.ErrLockLost) {
			t.Errorf("forget after the lock was lost: %v", err)
		}
		if ids, _ := repo.VersionIDs(ctx); len(ids) != 0 {
			t.Errorf("%d versions written after the lock was lost", len(ids))
		}

		// Storage back: the lock stays lost, since another process may
		// have taken the repository meanwhile; refreshing it now would make
		// two holders.
		b.broken.Store(false)
		time.Sleep(store.LockRefresh + time.Second)
		if err := l.Err(); !errors.Is(err, store.ErrLockLost) {
			t.Errorf("after storage came back: Err = %v, want the lock still lost", err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
