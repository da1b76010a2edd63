package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// actorKey marks the context of a locker driven by a stepper.
type actorKey struct{}

// stepper runs lockers one backend call at a time, in an order it picks.
// A locker's goroutine parks before each backend call it makes and runs
// only when the stepper grants it; so between two calls of one locker,
// any number of calls of the others can be placed.
type stepper struct {
	events chan stepEvent
	grant  []chan struct{}
}

type stepEvent struct {
	actor int
	what  string // the call about to be made, or "" when the locker ended
}

// park announces the call a locker is about to make and waits for its turn.
// Calls from contexts without an actor (setup, the refresh goroutine) run
// at once.
func (s *stepper) park(ctx context.Context, what string) {
	id, ok := ctx.Value(actorKey{}).(int)
	if !ok {
		return
	}
	s.events <- stepEvent{id, what}
	<-s.grant[id]
}

// stepBackend parks its caller before every call of the wrapped backend.
type stepBackend struct {
	store.Backend
	s *stepper
}

func (b *stepBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	b.s.park(ctx, "put "+name)
	return b.Backend.Put(ctx, name, r, size)
}

func (b *stepBackend) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.s.park(ctx, "get "+name)
	return b.Backend.Get(ctx, name)
}

func (b *stepBackend) Stat(ctx context.Context, name string) (int64, error) {
	b.s.park(ctx, "stat "+name)
	return b.Backend.Stat(ctx, name)
}

func (b *stepBackend) Delete(ctx context.Context, name string) error {
	b.s.park(ctx, "delete "+name)
	return b.Backend.Delete(ctx, name)
}

func (b *stepBackend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	b.s.park(ctx, "list "+prefix)
	return b.Backend.List(ctx, prefix, fn)
}

// interleaving is the outcome of one run of the lockers in one order.
type interleaving struct {
	trace  []string // every call, prefixed with its locker
	widths []int    // how many lockers could run at each choice
	chose  []int    // which one ran
	bad    string   // a mutual exclusion violation, if any
	held   int      // how many times a locker got the lock
}

// runLockers runs lockers that each take the exclusive lock with no wait
// and, if they get it, release it again, choosing at the i-th point where
// several could run the prefix[i]-th of them (the first beyond the prefix).
// If holder is set, locker 0 holds the lock from the start and only
// releases it. It records whether a locker ever got the lock while another
// held it.
func runLockers(t *testing.T, repo *store.Repository, s *stepper, lockers int, holder bool, prefix []int) interleaving {
	t.Helper()
	var out interleaving
	inside := -1 // the locker that holds the lock, or -1
	var held *store.RepoLock
	if holder {
		var err error
		if held, err = repo.Lock(context.Background(), "holder", 0); err != nil {
			t.Fatal(err)
		}
		inside = 0
	}
	results := make(chan error, lockers)
	for id := range lockers {
		go func() {
			ctx := context.WithValue(context.Background(), actorKey{}, id)
			var err error
			defer func() {
				results <- err
				s.events <- stepEvent{id, ""}
			}()
			if id == 0 && held != nil {
				err = held.Unlock(ctx)
				inside = -1
				return
			}
			l, lerr := repo.Lock(ctx, fmt.Sprintf("locker%d", id), 0)
			if errors.Is(lerr, store.ErrLocked) {
				return
			}
			if lerr != nil {
				err = lerr
				return
			}
			// Only one locker runs at a time, so inside needs no mutex.
			out.held++
			if inside >= 0 && out.bad == "" {
				out.bad = fmt.Sprintf("locker %d got the lock while locker %d held it", id, inside)
			}
			inside = id
			err = l.Unlock(ctx)
			if inside == id {
				inside = -1
			}
		}()
	}
	parked := map[int]string{}
	running := lockers // started or granted, not yet parked or ended
	for {
		for ; running > 0; running-- {
			ev := <-s.events
			if ev.what != "" {
				parked[ev.actor] = ev.what
			}
		}
		if len(parked) == 0 {
			break
		}
		ids := make([]int, 0, len(parked))
		for id := range lockers {
			if _, ok := parked[id]; ok {
				ids = append(ids, id)
			}
		}
		c := 0
		if n := len(out.chose); n < len(prefix) {
			c = prefix[n]
		}
		out.widths = append(out.widths, len(ids))
		out.chose = append(out.chose, c)
		id := ids[c]
		out.trace = append(out.trace, fmt.Sprintf("%d: %s", id, parked[id]))
		delete(parked, id)
		running = 1
		s.grant[id] <- struct{}{}
	}
	for range lockers {
		if err := <-results; err != nil {
			t.Fatalf("locker: %v", err)
		}
	}
	return out
}

// nextPrefix returns the choices of the next interleaving in depth-first
// order after the one made by chose, or false after the last.
func nextPrefix(chose, widths []int) ([]int, bool) {
	for i := len(chose) - 1; i >= 0; i-- {
		if chose[i]+1 < widths[i] {
			next := append([]int(nil), chose[:i]...)
			return append(next, chose[i]+1), true
		}
	}
	return nil, false
}

// TestLockEveryInterleaving drives lockers through every order of their
// backend calls, each call taken as atomic, and checks that no order lets
// two of them hold the exclusive lock at once, and that the lock is taken
// at all unless the lockers collided.
func TestLockEveryInterleaving(t *testing.T) {
	host, _ := os.Hostname()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	scenarios := []struct {
		name    string
		lockers int
		holder  bool              // locker 0 holds the lock and releases it
		locks   map[string]string // present before the lockers start
	}{
		{"two lockers", 2, false, nil},
		{"two lockers and a stale lock", 2, false, map[string]string{
			"locks/00000000T000000.000000000Z-dead.json": `{"kind":"exclusive","purpose":"backup","hostname":"` + host + `","pid":999999999,"created":"` + now + `","refreshed":"` + now + `"}`,
		}},
		{"two lockers and a hold", 2, false, map[string]string{
			"locks/00000000T000000.000000000Z-hold.json": `{"kind":"hold","purpose":"restore","version":"abc","hostname":"elsewhere","pid":1,"created":"` + now + `","refreshed":"` + now + `"}`,
		}},
		{"a locker while the holder releases", 2, true, nil},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := fastTempDir(t)
			lb, err := local.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Init(ctx, lb); err != nil {
				t.Fatal(err)
			}
			s := &stepper{events: make(chan stepEvent)}
			for range sc.lockers {
				s.grant = append(s.grant, make(chan struct{}))
			}
			repo, err := store.Open(ctx, &stepBackend{Backend: lb, s: s})
			if err != nil {
				t.Fatal(err)
			}
			var prefix []int
			runs, noneHeld := 0, 0
			for {
				if err := removeLocks(dir); err != nil {
					t.Fatal(err)
				}
				for name, content := range sc.locks {
					if err := lb.Put(ctx, name, strings.NewReader(content), int64(len(content))); err != nil {
						t.Fatal(err)
					}
				}
				il := runLockers(t, repo, s, sc.lockers, sc.holder, prefix)
				runs++
				if il.bad != "" {
					t.Fatalf("%s; calls in order:\n%s", il.bad, strings.Join(il.trace, "\n"))
				}
				if il.held == 0 {
					noneHeld++
				}
				var more bool
				if prefix, more = nextPrefix(il.chose, il.widths); !more {
					break
				}
			}
			if noneHeld == runs {
				t.Errorf("in none of %d interleavings did a locker get the lock", runs)
			}
			t.Logf("%d interleavings, in %d of them every locker backed off", runs, noneHeld)
		})
	}
}

// removeLocks empties the repository's locks folder in dir.
func removeLocks(dir string) error {
	entries, err := os.ReadDir(filepath.Join(dir, "locks"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, "locks", e.Name())); err != nil {
			return err
		}
	}
	return err
}

// fastTempDir returns a temporary directory on tmpfs (/dev/shm) if there is
// one, else t.TempDir(). The interleaving test writes thousands of lock
// files, and every local Put syncs the file and its folder: on tmpfs the
// syncs cost nothing, and the test takes seconds instead of minutes.
func fastTempDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "piosnap-lock-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
