package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/piosnap/piosnap/archive/dbdump"
	"github.com/piosnap/piosnap/archive/hooks"
	"github.com/piosnap/piosnap/store"
)

// SourceKind is the store.Version Source of directory versions.
const SourceKind = "dir"

// Source is a directory source: trees, a database, and the hooks that stop
// and start the application that owns them.
type Source struct {
	// Name is the host of the source's versions.
	Name string
	// Paths are the absolute directories, the working directory first.
	Paths []string
	// Excludes are globs relative to each path (see Match).
	Excludes []string
	// Stop, Start and ReadyCheck quiesce the application; Start runs
	// whenever Stop was run, whatever happens after.
	Stop, Start, ReadyCheck hooks.Hook
	// RequireUnlocked are globs of files that no process may hold a flock
	// on once the application stopped. They are checked until Stop's
	// timeout runs out.
	RequireUnlocked []string
	// DB is the database to dump; nil for none.
	DB *dbdump.DB
	// Kept, when set, says which copies of the state before a restore
	// stay beside the folders: a restore deletes the others when it has
	// succeeded (see PruneKept). nil keeps every copy.
	Kept *KeepPolicy
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

func (s *Source) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log.With("source", s.Name)
}

// Taken is a version of a source, read in full and ready to commit.
type Taken struct {
	// Pending holds the content.
	Pending *store.Pending
	// Version carries the source's fields for Commit (Source, Paths,
	// Database).
	Version store.Version
	// Skipped lists what was left out and why (hard links, sockets, …).
	Skipped []Skipped
	// Downtime is how long the application was stopped.
	Downtime time.Duration
	// StartErr is set when the copy is complete but the start hook failed:
	// the version is good, and the application is not running.
	StartErr error
}

// Take stops the application, checks that it stopped, dumps the database
// and reads the trees into a pending version of w, then starts the
// application again. Start runs even when something fails or ctx is
// cancelled on the way. On failure nothing of the version remains and the
// error says what happened, including a failed start.
func Take(ctx context.Context, w *store.Writer, s *Source) (t *Taken, err error) {
	log := s.log()
	p := w.Begin(s.Name)
	t = &Taken{Pending: p, Version: store.Version{Source: SourceKind, Paths: s.Paths}}
	defer func() {
		if err != nil {
			_ = p.Abort(context.WithoutCancel(ctx))
			t = nil
		}
	}()
	if len(s.Stop.Argv) > 0 {
		stopped := time.Now()
		log.Info("stopping the application", "hook", strings.Join(s.Stop.Argv, " "))
		defer func() {
			serr := start(ctx, s, log)
			t2 := time.Since(stopped)
			if t != nil {
				t.Downtime = t2
			}
			if serr == nil {
				log.Info("application started again", "downtime", t2.Round(time.Millisecond))
				return
			}
			if err != nil {
				err = fmt.Errorf("%w; and then: %w", err, serr)
				return
			}
			t.StartErr = serr
		}()
		if err := s.Stop.Run(ctx); err != nil {
			return nil, fmt.Errorf("nothing was copied: %w", err)
		}
		if err := waitStopped(ctx, s); err != nil {
			return nil, fmt.Errorf("nothing was copied: %w", err)
		}
	}
	if s.DB != nil {
		name := s.DB.EntryName()
		err := s.DB.Dump(ctx, func(r io.Reader) error {
			_, err := p.Add(ctx, name, 0o600, time.Now(), r)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("no version stored: %w", err)
		}
		t.Version.Database = &store.Database{Engine: s.DB.Engine(), Name: s.DB.Name(), Entry: name}
		log.Info("database dumped", "database", s.DB.Name(), "bytes", p.Entries()[len(p.Entries())-1].Size)
	}
	wk := &walker{p: p, excludes: s.Excludes, links: map[inode]string{}}
	for _, root := range s.Paths {
		if err := wk.addTree(ctx, root); err != nil {
			return nil, fmt.Errorf("no version stored: %w", err)
		}
	}
	t.Skipped = wk.skipped
	for _, sk := range wk.skipped {
		log.Warn("left out of the version", "path", sk.Path, "reason", sk.Reason)
	}
	return t, nil
}

// start runs the start hook on a context that a shutdown does not cancel,
// so the application comes back even when piosnap is being stopped.
func start(ctx context.Context, s *Source, log *slog.Logger) error {
	if len(s.Start.Argv) == 0 {
		return nil
	}
	log.Info("starting the application", "hook", strings.Join(s.Start.Argv, " "))
	err := s.Start.Run(context.WithoutCancel(ctx))
	if err != nil {
		log.Error("THE APPLICATION WAS NOT STARTED AGAIN: start it by hand", "err", err)
		return fmt.Errorf("the application is NOT running: %w", err)
	}
	return nil
}

// waitStopped runs the ready check and the lock probe until both pass or
// the stop hook's timeout runs out.
func waitStopped(ctx context.Context, s *Source) error {
	if len(s.ReadyCheck.Argv) == 0 && len(s.RequireUnlocked) == 0 {
		return nil
	}
	limit := s.Stop.Timeout
	if limit == 0 {
		limit = 2 * time.Minute
	}
	deadline := time.Now().Add(limit)
	for {
		err := s.ReadyCheck.Run(ctx)
		if err == nil {
			err = CheckUnlocked(s.Paths, s.RequireUnlocked)
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("the application has not stopped %s after the stop hook: %w", limit, err)
			}
			return err
		}
		if err := store.Sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// ErrLocked means a process still holds a lock on a file that must be free.
var ErrLocked = errors.New("file is locked by a running process")

// CheckUnlocked tries an exclusive, non-blocking flock on every regular file
// under paths that matches one of patterns, and releases it at once. A lock
// held by another process (BoltDB and Bleve hold one on every open store)
// is an error naming the file.
func CheckUnlocked(paths, patterns []string) error {
	if len(patterns) == 0 {
		return nil
	}
	var locked []string
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if !d.Type().IsRegular() || !matchAny(patterns, filepath.ToSlash(rel)) {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			defer f.Close()
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if errors.Is(err, syscall.EWOULDBLOCK) {
				locked = append(locked, path)
				return nil
			}
			if err != nil {
				return fmt.Errorf("probe lock on %s: %w", path, err)
			}
			return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		})
		if err != nil {
			return err
		}
	}
	switch len(locked) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: %w", locked[0], ErrLocked)
	}
	return fmt.Errorf("%s and %d more: %w", locked[0], len(locked)-1, ErrLocked)
}
