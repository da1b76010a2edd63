package store_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// countBackend counts the listings of locks/, one per lock attempt.
type countBackend struct {
	store.Backend
	lists atomic.Int64
}

func (b *countBackend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	if prefix == "locks/" {
		b.lists.Add(1)
	}
	return b.Backend.List(ctx, prefix, fn)
}

// writeForeignLock writes a live exclusive lock of a process on another
// host into the repository at dir.
func writeForeignLock(t *testing.T, dir string) string {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	live := `{"kind":"exclusive","purpose":"backup","hostname":"elsewhere","pid":1,"created":"` + now + `","refreshed":"` + now + `"}`
	p := filepath.Join(dir, "locks", "00000000T000000.000000000Z-elsewhere.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(live), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// openCounted opens the repository at dir through a countBackend.
func openCounted(t *testing.T, dir string) (*store.Repository, *countBackend) {
	t.Helper()
	lb, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &countBackend{Backend: lb}
	repo, err := store.Open(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return repo, b
}

// A locked repository is tried again and again, backing off, for exactly
// the wait given: no rounding up to whole seconds, and a zero wait is one
// attempt.
func TestLockWaitsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, dir := newRepo(t)
		writeForeignLock(t, dir)
		repo, b := openCounted(t, dir)
		tests := []struct {
			wait        time.Duration
			minAttempts int64
		}{
			{0, 1},
			{time.Millisecond, 2},
			{50 * time.Millisecond, 2},
			{1500 * time.Millisecond, 5},
		}
		for _, tt := range tests {
			b.lists.Store(0)
			start := time.Now()
			_, err := repo.Lock(context.Background(), "forget", tt.wait)
			if !errors.Is(err, store.ErrLocked) {
				t.Fatalf("wait %v: %v, want ErrLocked", tt.wait, err)
			}
			if got := time.Since(start); got != tt.wait {
				t.Errorf("wait %v: gave up after %v", tt.wait, got)
			}
			if n := b.lists.Load(); n < tt.minAttempts || tt.wait == 0 && n != 1 {
				t.Errorf("wait %v: %d attempts, want at least %d", tt.wait, n, tt.minAttempts)
			}
		}
	})
}

// A waiting process gets the lock soon after the holder releases it.
func TestLockWaiterGetsItAfterRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		repo, dir := newRepo(t)
		held, err := repo.Lock(ctx, "backup", 0)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := openCounted(t, dir)
		got := make(chan time.Time, 1)
		go func() {
			l, err := other.Lock(ctx, "forget", time.Minute)
			if err != nil {
				t.Error(err)
				got <- time.Time{}
				return
			}
			got <- time.Now()
			_ = l.Unlock(ctx)
		}()
		time.Sleep(10 * time.Second)
		released := time.Now()
		if err := held.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		at := <-got
		if d := at.Sub(released); d < 0 || d > time.Second {
			t.Errorf("waiter took the lock %v after it was released, want within a second", d)
		}
	})
}

// A refresh that finds its lock removed (another process took it for
// stale) must not write it back: the lock is lost, and writes stop.
func TestLockRemovedIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		repo, dir := newRepo(t)
		l, err := repo.Lock(ctx, "backup", 0)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "locks", "*.json"))
		if len(files) != 1 {
			t.Fatalf("lock files: %v", files)
		}
		if err := os.Remove(files[0]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(store.LockRefresh + time.Second)
		if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the refresh wrote a removed lock back: %v", err)
		}
		if err := l.Err(); !errors.Is(err, store.ErrLockLost) || !strings.Contains(err.Error(), "removed") {
			t.Errorf("Err = %v, want ErrLockLost saying the lock was removed", err)
		}
		if _, err := repo.Forget(ctx, nil); !errors.Is(err, store.ErrLockLost) {
			t.Errorf("forget after the lock was removed: %v", err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// lockReadFailBackend fails every read of a lock, as a flaky network would.
type lockReadFailBackend struct{ store.Backend }

func (b lockReadFailBackend) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "locks/") {
		return nil, errors.New("connection reset by peer")
	}
	return b.Backend.Get(ctx, name)
}

// A lock that cannot be read is not taken for stale: deleting it would let
// a second writer in.
func TestLockUnreadableIsKept(t *testing.T) {
	ctx := context.Background()
	_, dir := newRepo(t)
	p := writeForeignLock(t, dir)
	lb, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(ctx, lockReadFailBackend{lb})
	if err != nil {
		t.Fatal(err)
	}
	l, err := repo.Lock(ctx, "backup", 0)
	if err == nil {
		_ = l.Unlock(ctx)
		t.Fatal("took the lock while another process's lock could not be read")
	}
	if !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("error does not say why: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the unreadable live lock was removed: %v", err)
	}

	// A lock object that is not JSON never becomes one (Puts are atomic):
	// it is removed.
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo, _ = openCounted(t, dir)
	l, err = repo.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatalf("a garbage lock object blocks: %v", err)
	}
	_ = l.Unlock(ctx)
}

// The temporary file of a lock write cut short by a kill is removed by the
// next writer once it is old enough not to be a live write.
func TestLockRemovesStaleTemp(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	old := filepath.Join(dir, "locks", ".tmp-killed")
	fresh := filepath.Join(dir, "locks", ".tmp-inflight")
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte(`{"kind":`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-store.LockStale - time.Minute)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	l, err := repo.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a killed process's temporary lock file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent temporary file (a write in progress) was removed: %v", err)
	}
}

// Forget also removes old temporary files anywhere in the repository: a
// backup killed while writing chunks leaves them behind.
func TestForgetRemovesStaleTemp(t *testing.T) {
	ctx := context.Background()
	repo, dir := newRepo(t)
	old := filepath.Join(dir, "chunks", "ab", ".tmp-killed")
	fresh := filepath.Join(dir, "chunks", "ab", ".tmp-inflight")
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial chunk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-store.LockStale - time.Minute)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Forget(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a killed backup's temporary chunk file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent temporary file (a write in progress) was removed: %v", err)
	}
}

// deadlineBackend fails every lock write, recording when each was tried
// and the deadline it was given.
type deadlineBackend struct {
	store.Backend
	broken atomic.Bool
	mu     sync.Mutex
	tries  []time.Time
	limits []time.Time
}

func (b *deadlineBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if b.broken.Load() && strings.HasPrefix(name, "locks/") {
		d, _ := ctx.Deadline()
		b.mu.Lock()
		b.tries, b.limits = append(b.tries, time.Now()), append(b.limits, d)
		b.mu.Unlock()
		return errors.New("storage unreachable")
	}
	return b.Backend.Put(ctx, name, r, size)
}

// A refresh never writes the lock when another process may already call it
// stale and have removed it: every refresh must be over LockRefresh before
// LockStale has passed since the last good write.
func TestLockRefreshDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, dir := newRepo(t)
		lb, err := local.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		b := &deadlineBackend{Backend: lb}
		repo, err := store.Open(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		l, err := repo.Lock(ctx, "backup", 0)
		if err != nil {
			t.Fatal(err)
		}
		taken := time.Now()
		b.broken.Store(true)
		time.Sleep(2*store.LockStale + time.Second)
		b.mu.Lock()
		tries, limits := b.tries, b.limits
		b.mu.Unlock()
		if len(tries) == 0 {
			t.Fatal("no refresh was tried")
		}
		limit := taken.Add(store.LockStale - store.LockRefresh)
		for i, d := range limits {
			if d.IsZero() || d.After(limit) {
				t.Errorf("refresh at +%v had deadline %v, want by +%v", tries[i].Sub(taken), d.Sub(taken), limit.Sub(taken))
			}
		}
		if err := l.Err(); !errors.Is(err, store.ErrLockLost) {
			t.Errorf("Err = %v, want ErrLockLost", err)
		}
		_ = l.Unlock(ctx)
	})
}

// lostReplyBackend stores lock objects but reports failure, as when the
// server's reply is lost on the network.
type lostReplyBackend struct{ store.Backend }

func (b lostReplyBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := b.Backend.Put(ctx, name, r, size); err != nil || !strings.HasPrefix(name, "locks/") {
		return err
	}
	return errors.New("connection reset by peer")
}

// A lock write that failed may still have landed: the failed locker must
// not leave it behind to block everyone else.
func TestLockFailedWriteLeavesNoLock(t *testing.T) {
	ctx := context.Background()
	_, dir := newRepo(t)
	lb, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(ctx, lostReplyBackend{lb})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Lock(ctx, "backup", 0); err == nil || errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock = %v, want the write's error", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "locks", "*.json")); len(files) != 0 {
		t.Errorf("a failed lock attempt left %v", files)
	}
}
