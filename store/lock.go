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
	repo   *Repository
	info   LockInfo
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error     // the last refresh failure
	lastOK time.Time // when the lock was last written successfully
	lost   bool      // unrefreshed for LockStale once: lost for good
	closed bool
}

// Lock takes the repository's exclusive lock for purpose. If another process
// holds it, Lock retries until wait has passed and then returns an error
// wrapping ErrLocked that names the holder. Stale locks are removed.
func (r *Repository) Lock(ctx context.Context, purpose string, wait time.Duration) (*RepoLock, error) {
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
	for {
		l, err := r.tryLock(ctx, info)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (r *Repository) tryLock(ctx context.Context, info LockInfo) (*RepoLock, error) {
	if info.Kind == LockExclusive {
		if err := r.checkLocks(ctx, "", info.Kind); err != nil {
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
		return nil, err
	}
	if info.Kind == LockExclusive {
		// Two processes may both have seen no lock; the older lock wins.
		if err := r.checkLocks(ctx, info.name, info.Kind); err != nil {
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

// checkLocks fails with ErrLocked if a live lock conflicts with taking one of
// kind. own is the caller's own lock name (after writing it): only locks
// that sort before it conflict then.
func (r *Repository) checkLocks(ctx context.Context, own, kind string) error {
	locks, err := r.Locks(ctx)
	if err != nil {
		return err
	}
	for _, l := range locks {
		if l.name == own || l.Kind != LockExclusive && kind != LockExclusive {
			continue
		}
		if l.Kind == LockHold {
			continue // holds never block writers
		}
		if own != "" && l.name > own {
			continue
		}
		return fmt.Errorf("%w by piosnap %s (pid %d on %s) since %s: wait for it to finish, or if that process is gone, the lock expires %s after its last refresh",
			ErrLocked, l.Purpose, l.PID, l.Hostname, l.Created.Local().Format(time.RFC3339), LockStale)
	}
	return nil
}

// Locks lists the live locks, removing stale ones on the way.
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
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || lockIsStale(info, host, time.Now()) {
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
		return info, fmt.Errorf("lock %s unreadable: %w", name, err)
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
			l.mu.Lock()
			if time.Since(l.lastOK) > LockStale {
				// Another process may have removed the lock as stale and
				// taken the repository: writing it again would make two
				// holders. Lost for good.
				l.lost = true
			}
			lost := l.lost
			l.mu.Unlock()
			if lost {
				continue
			}
			info := l.info
			info.Refreshed = time.Now().UTC()
			ctx, cancel := context.WithTimeout(context.Background(), LockRefresh)
			err := l.repo.writeLock(ctx, &info)
			cancel()
			l.mu.Lock()
			if err != nil {
				l.err = err
			} else {
				l.info.Refreshed, l.lastOK = info.Refreshed, info.Refreshed
			}
			l.mu.Unlock()
		}
	}
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
