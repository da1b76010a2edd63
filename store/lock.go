package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The exclusive lock protocol.
//
// No compare-and-swap is assumed: not every S3-compatible store honours a
// conditional PUT (If-None-Match), and one that ignores it would silently
// let two writers in. The protocol needs only what local disk and S3 both
// guarantee: a Put is atomic (the object is whole or absent), and a List
// started after a Put returned includes that object as long as it exists
// (list-after-write consistency: local file systems, MinIO, AWS S3 since
// 2020).
//
// A locker
//
//  1. lists the locks and backs off if another live exclusive lock exists
//     (this only spares a holder needless collisions);
//  2. writes its own lock object under a name no other locker uses;
//  3. lists the locks again and, if it sees ANY other live exclusive lock,
//     whatever its name or time, deletes its own and backs off;
//  4. otherwise holds the lock until it deletes its object.
//
// Two lockers A and B never both hold it. Say both passed step 3, and B's
// step-3 List started no earlier than A's. A's List started after A's Put
// returned, so B's List started after A's lock existed; A, passing, did not
// delete it; so B's List showed it, and B backed off: a contradiction. Each
// backend call may take any time and the two lockers' calls may interleave
// in any way; nothing depends on clocks or on the order of names. (The
// former rule, "the older name wins", failed exactly there: a locker that
// chose its name early but wrote it late found the other's name younger
// and went on, while the other had already passed its check.)
//
// Both lockers may see each other and back off. A collision costs each a
// jittered, growing wait, so they come back at different times and one of
// them most likely wins the next round: no locker is shut out for good by
// colliding.
//
// The only locks a process deletes other than its own are stale ones (see
// lockIsStale) and objects that are not locks at all, so a holder must never rely on a lock another process may
// call stale: it counts the lock as lost once unrefreshed for LockStale
// (RepoLock.Err), sets every refresh a deadline well before that, and gives
// the lock up if a refresh finds it removed. This assumes the clocks of the
// hosts sharing a repository agree to within LockRefresh.

// Lock timing. A lock is refreshed every LockRefresh while held; one whose
// refresh is older than LockStale is left over by a crashed process and is
// removed by the next process that wants the repository. On the same host a
// lock whose process is gone is stale at once.
const (
	LockRefresh = time.Minute
	LockStale   = 5 * time.Minute
)

// Lock kinds.
const (
	// LockExclusive is taken by writers: backup, forget, import, copy.
	LockExclusive = "exclusive"
	// LockHold is taken while a version is restored or exported; it keeps that
	// version from being deleted by retention and does not block writers.
	LockHold = "hold"
)

const lockPrefix = "locks/"

// A locker that finds the repository locked tries again after a jittered
// wait that starts at lockBackoff and doubles up to lockBackoffMax.
const (
	lockBackoff    = 20 * time.Millisecond
	lockBackoffMax = time.Second
)

// LockInfo is the content of a lock object.
type LockInfo struct {
	// Kind is LockExclusive or LockHold.
	Kind string `json:"kind"`
	// Purpose is what the holder is doing, e.g. "backup".
	Purpose string `json:"purpose"`
	// Version is the held version's ID (LockHold only).
	Version string `json:"version,omitempty"`
	// Hostname and PID identify the holding process.
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	// Created is when the lock was taken, Refreshed when last renewed.
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`

	name string
}

// ErrLocked is returned when another process holds the repository.
var ErrLocked = errors.New("repository is locked")

// RepoLock is a held lock. Release it when done.
type RepoLock struct {
	repo    *Repository
	info    LockInfo
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error     // the last refresh failure
	lastOK  time.Time // when the lock was last written successfully
	lost    bool      // unrefreshed for LockStale once: lost for good
	removed bool      // another process removed the lock object as stale
	closed  bool
}

// Lock takes the repository's exclusive lock for purpose. If another process
// holds it, Lock tries again, backing off with jitter, until wait has passed
// (a zero wait makes one attempt) and then returns an error wrapping
// ErrLocked that names the holder. Stale locks are removed, and so are the
// temporary files a process killed while writing its lock left behind.
func (r *Repository) Lock(ctx context.Context, purpose string, wait time.Duration) (*RepoLock, error) {
	if tr, ok := r.backend.(TempRemover); ok {
		// Best effort: such files are invisible and harmless otherwise.
		_, _ = tr.RemoveStaleTemp(ctx, lockPrefix, LockStale)
	}
	return r.takeLock(ctx, LockInfo{Kind: LockExclusive, Purpose: purpose}, wait)
}

// Hold marks a version as in use (restore, export) so that retention keeps
// it. Holds never block other processes.
func (r *Repository) Hold(ctx context.Context, purpose, versionID string) (*RepoLock, error) {
	return r.takeLock(ctx, LockInfo{Kind: LockHold, Purpose: purpose, Version: versionID}, 0)
}

func (r *Repository) takeLock(ctx context.Context, info LockInfo, wait time.Duration) (*RepoLock, error) {
	host, _ := os.Hostname()
	info.Hostname = host
	info.PID = os.Getpid()
	deadline := time.Now().Add(wait)
	backoff := lockBackoff
	for {
		l, err := r.tryLock(ctx, info)
		if err == nil || !errors.Is(err, ErrLocked) {
			return l, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		if err := Sleep(ctx, min(Jitter(backoff), left)); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, lockBackoffMax)
	}
}

// tryLock makes one attempt at steps 1 to 3 of the protocol described at
// the top of this file. Holds skip steps 1 and 3.
func (r *Repository) tryLock(ctx context.Context, info LockInfo) (*RepoLock, error) {
	if info.Kind == LockExclusive {
		if err := r.checkLocks(ctx, ""); err != nil {
			return nil, err
		}
	}
	rnd := make([]byte, 8)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	info.Created, info.Refreshed = now, now
	info.name = fmt.Sprintf("%s%s-%s.json", lockPrefix, now.Format("20060102T150405.000000000Z"), hex.EncodeToString(rnd))
	if err := r.writeLock(ctx, &info); err != nil {
		// The write may have landed although it reported a failure (a
		// reply lost on the network): leave no lock behind.
		_ = r.backend.Delete(context.WithoutCancel(ctx), info.name)
		return nil, err
	}
	if info.Kind == LockExclusive {
		if err := r.checkLocks(ctx, info.name); err != nil {
			// Another locker wrote its lock too: yield to it, whichever
			// came first. It may yield as well; both back off.
			_ = r.backend.Delete(context.WithoutCancel(ctx), info.name)
			return nil, err
		}
	}
	l := &RepoLock{repo: r, info: info, stop: make(chan struct{}), lastOK: now}
	if info.Kind == LockExclusive {
		r.lockMu.Lock()
		r.held = l
		r.lockMu.Unlock()
	}
	l.wg.Add(1)
	go l.refresh()
	return l, nil
}

// checkHeld fails when the exclusive lock this process holds on r has gone
// unrefreshed long enough for another process to call it stale: writing or
// deleting then could collide with that process (a forget deleting chunks a
// backup is about to reference, or the reverse).
func (r *Repository) checkHeld() error {
	r.lockMu.Lock()
	l := r.held
	r.lockMu.Unlock()
	if l == nil {
		return nil
	}
	return l.Err()
}

func (r *Repository) writeLock(ctx context.Context, info *LockInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := r.backend.Put(ctx, info.name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("lock repository at %s: %w", r.Location(), err)
	}
	return nil
}

// checkLocks fails with ErrLocked if a live exclusive lock other than own
// (the caller's, once written; "" before) exists. Holds never block.
func (r *Repository) checkLocks(ctx context.Context, own string) error {
	locks, err := r.Locks(ctx)
	if err != nil {
		return err
	}
	for _, l := range locks {
		if l.name == own || l.Kind == LockHold {
			continue
		}
		return fmt.Errorf("%w by piosnap %s (pid %d on %s) since %s: wait for it to finish, or if that process is gone, the lock expires %s after its last refresh",
			ErrLocked, l.Purpose, l.PID, l.Hostname, l.Created.Local().Format(time.RFC3339), LockStale)
	}
	return nil
}

// errBadLock marks a lock object that is not a lock: a Put is atomic, so
// it will never become one.
var errBadLock = errors.New("not a piosnap lock")

// Locks lists the live locks, removing stale ones on the way. A lock that
// cannot be read is an error, never taken for stale.
func (r *Repository) Locks(ctx context.Context) ([]LockInfo, error) {
	var names []string
	err := r.backend.List(ctx, lockPrefix, func(name string, _ int64) error {
		if strings.HasSuffix(name, ".json") {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks in %s: %w", r.Location(), err)
	}
	sort.Strings(names)
	host, _ := os.Hostname()
	var live []LockInfo
	for _, name := range names {
		info, err := r.readLock(ctx, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // released meanwhile
		case errors.Is(err, errBadLock):
			_ = r.backend.Delete(ctx, name)
			continue
		case err != nil:
			return nil, fmt.Errorf("read lock in %s: %w", r.Location(), err)
		}
		if lockIsStale(info, host, time.Now()) {
			_ = r.backend.Delete(ctx, name)
			continue
		}
		live = append(live, info)
	}
	return live, nil
}

func (r *Repository) readLock(ctx context.Context, name string) (LockInfo, error) {
	var info LockInfo
	rc, err := r.backend.Get(ctx, name)
	if err != nil {
		return info, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("lock %s: %w: %w", name, errBadLock, err)
	}
	info.name = name
	return info, nil
}

func lockIsStale(l LockInfo, host string, now time.Time) bool {
	if now.Sub(l.Refreshed) > LockStale {
		return true
	}
	if l.Hostname == host && l.PID > 0 && l.PID != os.Getpid() {
		return !processAlive(l.PID)
	}
	return false
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (l *RepoLock) refresh() {
	defer l.wg.Done()
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.refreshOnce()
		}
	}
}

// refreshOnce rewrites the lock with a new refresh time, unless it is lost.
func (l *RepoLock) refreshOnce() {
	l.mu.Lock()
	if time.Since(l.lastOK) > LockStale {
		// Another process may have removed the lock as stale and taken
		// the repository: writing it again would make two holders. Lost
		// for good.
		l.lost = true
	}
	lost, lastOK := l.lost, l.lastOK
	l.mu.Unlock()
	if lost {
		return
	}
	// The write must land well before another process may call the lock
	// stale (LockStale after lastOK), or it could bring back a lock that
	// was removed and taken over meanwhile.
	deadline := lastOK.Add(LockStale - LockRefresh)
	if !time.Now().Before(deadline) {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, err := l.repo.backend.Stat(ctx, l.info.name)
	if errors.Is(err, fs.ErrNotExist) {
		l.mu.Lock()
		l.lost, l.removed = true, true
		l.mu.Unlock()
		return
	}
	info := l.info
	if err == nil {
		info.Refreshed = time.Now().UTC()
		err = l.repo.writeLock(ctx, &info)
	}
	l.mu.Lock()
	if err != nil {
		l.err = err
	} else {
		l.info.Refreshed, l.lastOK = info.Refreshed, info.Refreshed
	}
	l.mu.Unlock()
}

// ErrLockLost is wrapped by the errors of writes refused because this
// process's lock went unrefreshed for LockStale.
var ErrLockLost = errors.New("repository lock lost")

// Err reports whether the lock may have been lost: it has not been
// refreshed for LockStale (the storage failed every refresh), so another
// process may have removed it as stale and taken the repository over.
func (l *RepoLock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.removed {
		return fmt.Errorf("%w: the lock on %s was removed by another process, which took it for stale, so another piosnap may have taken the repository over; nothing more is written by this process: run `piosnap check` and try again",
			ErrLockLost, l.repo.Location())
	}
	if since := time.Since(l.lastOK); l.lost || since > LockStale {
		return fmt.Errorf("%w: the lock on %s could not be refreshed for %s (last error: %v), so another piosnap may have taken the repository over; nothing more is written by this process: run `piosnap check` and try again",
			ErrLockLost, l.repo.Location(), since.Round(time.Second), l.err)
	}
	return nil
}

// Unlock releases the lock.
func (l *RepoLock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	l.repo.lockMu.Lock()
	if l.repo.held == l {
		l.repo.held = nil
	}
	l.repo.lockMu.Unlock()
	if err := l.repo.backend.Delete(context.WithoutCancel(ctx), l.info.name); err != nil {
		return fmt.Errorf("unlock repository at %s: %w", l.repo.Location(), err)
	}
	return nil
}

// HeldVersions returns the IDs of versions under a live hold.
func (r *Repository) HeldVersions(ctx context.Context) (map[string]bool, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return nil, err
	}
	held := make(map[string]bool)
	for _, l := range locks {
		if l.Kind == LockHold && l.Version != "" {
			held[l.Version] = true
		}
	}
	return held, nil
}
