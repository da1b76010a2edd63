package dir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store"
)

// RestoreOptions say what to restore and where.
type RestoreOptions struct {
	// Version is the version to restore; Repo reads its content.
	Version *store.Version
	Repo    EntryOpener
	// Source gives the hooks and the database (its Paths are not used:
	// the version's paths are).
	Source *Source
	// To maps a path of the version to where it is restored instead; a
	// path not in it is restored in place.
	To map[string]string
	// FilesOnly leaves the database alone; DBOnly the files.
	FilesOnly, DBOnly bool
	// NoHooks leaves the application alone: for a restore to another
	// place, which the configured application does not use.
	NoHooks bool
	// DryRun checks everything (names, every chunk, the database
	// connection, the targets' folders) and changes nothing.
	DryRun bool
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Now gives the time in the names of the kept copies; nil is time.Now.
	Now func() time.Time
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	// Targets are the folders written, in the version's path order.
	Targets []string
	// Kept are the folders the restore replaced, kept as
	// <path>.pre-restore-<time>.
	Kept []string
	// SafetyDump is the dump of the database taken before it was
	// replaced.
	SafetyDump string
	// Checklist lists what must still be edited by hand after a restore
	// to another place.
	Checklist []string
	// OwnersNotRestored counts entries whose owner could not be set.
	OwnersNotRestored int
	// Pruned are the copies earlier restores kept that Source.Kept no
	// longer keeps, deleted after this restore; PruneErr names those that
	// could not be deleted. Neither fails the restore.
	Pruned   []Kept
	PruneErr error
}

// Restore puts a directory version back: it extracts every tree into a
// staging folder beside its target (which reads and checks every chunk)
// while the application still runs, then stops it, dumps the current
// database to a file, swaps each staging folder in by renaming (the old
// folder is kept as <target>.pre-restore-<time>), loads the version's
// database dump and starts the application. If a step after the stop
// fails, the folders and the database are put back as they were and the
// application is started; the error says so.
func Restore(ctx context.Context, o RestoreOptions) (res *RestoreResult, err error) {
	v, s := o.Version, o.Source
	repo := forVersion(o.Repo, v)
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	stamp := now().UTC().Format("20060102T150405Z")
	res = &RestoreResult{}
	trees, err := splitTrees(v)
	if err != nil {
		return nil, fmt.Errorf("nothing was changed: %w", err)
	}
	doFiles, doDB := !o.DBOnly, !o.FilesOnly && v.Database != nil
	if o.DBOnly && v.Database == nil {
		return nil, fmt.Errorf("version %s holds no database dump: nothing to restore with --db-only", v.ShortID())
	}
	if doDB && s.DB == nil {
		return nil, fmt.Errorf("version %s holds a dump of database %s, but the source %s has no [source.database] to load it into: configure it, or pass --files-only", v.ShortID(), v.Database.Name, s.Name)
	}
	if doDB && v.Database.Name != s.DB.Name() {
		return nil, fmt.Errorf("version %s holds database %s but the source is configured for %s: the dump recreates %s, so configure that name", v.ShortID(), v.Database.Name, s.DB.Name(), v.Database.Name)
	}
	var dbEntry *store.Entry
	if doDB {
		for i := range v.Entries {
			if v.Entries[i].Name == v.Database.Entry {
				dbEntry = &v.Entries[i]
			}
		}
		if dbEntry == nil {
			return nil, fmt.Errorf("version %s names the dump %q but holds no such entry (damaged manifest)", v.ShortID(), v.Database.Entry)
		}
	}
	for _, t := range trees {
		target := t.path
		if to, ok := o.To[t.path]; ok {
			target = to
		}
		// A target that is a symbolic link (/var/cells -> /data/cells)
		// is restored where it points, so the link and the data's
		// filesystem stay as they are.
		if real, err := filepath.EvalSymlinks(target); err == nil {
			target = real
		}
		res.Targets = append(res.Targets, target)
	}
	for p := range o.To {
		if !containsPath(v.Paths, p) {
			return nil, fmt.Errorf("--to %s: the version has no path %s; its paths are %v", p, p, v.Paths)
		}
	}

	// Checks that need no change.
	if doDB {
		if err := s.DB.Ping(ctx); err != nil {
			return nil, fmt.Errorf("nothing was changed: cannot reach database %s: %w", s.DB.Name(), err)
		}
	}
	if doFiles {
		for _, target := range res.Targets {
			if fi, err := os.Stat(filepath.Dir(target)); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("nothing was changed: the folder %s that would hold %s does not exist: create it first", filepath.Dir(target), target)
			}
		}
		left, err := Leftovers(res.Targets)
		if err != nil {
			fmt.Fprintf(out, "WARNING: %v\n", err)
		}
		for _, p := range left {
			fmt.Fprintf(out, "WARNING: %s was left by an earlier restore that did not finish; nothing uses it: delete it once no other restore of %s runs (sudo rm -rf %s)\n", p, s.Name, p)
		}
	}

	if o.DryRun {
		n, err := readAll(ctx, repo, v, doFiles, dbEntry)
		if err != nil {
			return nil, fmt.Errorf("nothing was changed: version %s cannot be read back: %w", v.ShortID(), err)
		}
		fmt.Fprintf(out, "dry run: every entry read back and checked (%d bytes); the targets' folders exist", n)
		if doDB {
			fmt.Fprintf(out, "; database %s answers", s.DB.Name())
		}
		fmt.Fprintln(out, "; nothing was changed")
		res.Checklist = checklist(trees, res.Targets, v, doDB)
		return res, nil
	}

	// Stage while the application still runs.
	var staged []string
	cleanStaged := func() {
		for _, st := range staged {
			_ = os.RemoveAll(st)
		}
	}
	if doFiles {
		x := &extractor{src: repo, owners: os.Geteuid() == 0}
		for i, t := range trees {
			st := res.Targets[i] + ".piosnap-restore-" + stamp
			if err := os.Mkdir(st, 0o700); err != nil {
				cleanStaged()
				return nil, fmt.Errorf("nothing was changed: staging %s: %w", t.path, err)
			}
			staged = append(staged, st)
			if err := x.extract(ctx, t, st); err != nil {
				cleanStaged()
				return nil, fmt.Errorf("nothing was changed: staging %s into %s: %w", t.path, st, err)
			}
		}
		res.OwnersNotRestored = x.ownerErrs
		fmt.Fprintf(out, "version %s extracted and checked into %s\n", v.ShortID(), strings.Join(staged, ", "))
	} else if dbEntry != nil {
		if _, err := readAll(ctx, repo, v, false, dbEntry); err != nil {
			return nil, fmt.Errorf("nothing was changed: the database dump cannot be read back: %w", err)
		}
	}

	// Stop; from here on the application is started again whatever
	// happens.
	if len(s.Stop.Argv) > 0 && !o.NoHooks {
		fmt.Fprintf(out, "stopping the application: %s\n", strings.Join(s.Stop.Argv, " "))
		defer func() {
			if serr := start(ctx, s, s.log()); serr != nil {
				err = errors.Join(err, serr)
				return
			}
			fmt.Fprintln(out, "application started")
		}()
		if err := s.Stop.Run(ctx); err != nil {
			cleanStaged()
			return nil, fmt.Errorf("nothing was changed: %w", err)
		}
		if err := waitStopped(ctx, s); err != nil {
			cleanStaged()
			return nil, fmt.Errorf("nothing was changed: %w", err)
		}
	}
	// Nothing below may be cut short by a shutdown half-way.
	ctx = context.WithoutCancel(ctx)
	if doDB {
		res.SafetyDump = res.Targets[0] + ".pre-restore-" + stamp + "." + s.DB.Name() + ".sql"
		if err := safetyDump(ctx, s, res.SafetyDump); err != nil {
			cleanStaged()
			return nil, fmt.Errorf("nothing was changed: safety dump of the current database failed: %w", err)
		}
		fmt.Fprintf(out, "current database dumped to %s\n", res.SafetyDump)
	}
	type swap struct{ target, kept, staged string }
	var swaps []swap
	rollback := func(cause error) error {
		var errs []error
		for i := len(swaps) - 1; i >= 0; i-- {
			sw := swaps[i]
			failed := sw.target + ".piosnap-failed-" + stamp
			if err := os.Rename(sw.target, failed); err != nil {
				errs = append(errs, err)
				continue
			}
			if sw.kept != "" {
				if err := os.Rename(sw.kept, sw.target); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			_ = os.RemoveAll(failed)
		}
		cleanStaged()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("%w; ROLLBACK OF THE FILES FAILED: %v (the old folders are kept as *.pre-restore-%s)", cause, err, stamp)
		}
		return fmt.Errorf("%w; the folders were put back as they were", cause)
	}
	if doFiles {
		for i, target := range res.Targets {
			sw := swap{target: target, staged: staged[i]}
			if _, err := os.Lstat(target); err == nil {
				sw.kept = target + ".pre-restore-" + stamp
				if err := os.Rename(target, sw.kept); err != nil {
					return nil, rollback(fmt.Errorf("restore failed: keep %s: %w", target, err))
				}
			}
			if err := os.Rename(sw.staged, target); err != nil {
				if sw.kept != "" {
					_ = os.Rename(sw.kept, target)
				}
				return nil, rollback(fmt.Errorf("restore failed: move %s into place: %w", sw.staged, err))
			}
			swaps = append(swaps, sw)
			if sw.kept != "" {
				res.Kept = append(res.Kept, sw.kept)
			}
		}
		staged = nil
		fmt.Fprintf(out, "folders swapped in: %s", strings.Join(res.Targets, ", "))
		if len(res.Kept) > 0 {
			fmt.Fprintf(out, " (the replaced ones are kept as %s)", strings.Join(res.Kept, ", "))
		}
		fmt.Fprintln(out)
	}
	if doDB {
		if err := s.DB.Load(ctx, repo.OpenEntry(ctx, dbEntry)); err != nil {
			cause := fmt.Errorf("restore failed: %w", err)
			if rerr := reloadSafety(ctx, s, res.SafetyDump); rerr != nil {
				cause = fmt.Errorf("%w; PUTTING THE DATABASE BACK FAILED too: %v (its dump before the restore is %s)", cause, rerr, res.SafetyDump)
			} else {
				cause = fmt.Errorf("%w; the database was put back from %s", cause, res.SafetyDump)
			}
			if doFiles {
				return nil, rollback(cause)
			}
			return nil, cause
		}
		fmt.Fprintf(out, "database %s loaded from the version\n", s.DB.Name())
	}
	res.Checklist = checklist(trees, res.Targets, v, doDB)
	if s.Kept != nil {
		db := ""
		if s.DB != nil {
			db = s.DB.Name()
		}
		res.Pruned, res.PruneErr = PruneKept(res.Targets, db, *s.Kept, now(), stamp)
		for _, k := range res.Pruned {
			fmt.Fprintf(out, "deleted the state before the restore of %s, which %s no longer keeps: %s\n", k.Time.Format(time.RFC3339), s.Kept, strings.Join(k.Paths, ", "))
		}
		if res.PruneErr != nil {
			fmt.Fprintf(out, "WARNING: %v\n", res.PruneErr)
		}
	}
	return res, nil
}

func containsPath(ps []string, p string) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// readAll reads back the entries a restore would use, checking each.
func readAll(ctx context.Context, src EntryOpener, v *store.Version, files bool, db *store.Entry) (int64, error) {
	var n int64
	for i := range v.Entries {
		e := &v.Entries[i]
		if e.IsDir() || (e != db && !files) || len(e.Chunks) == 0 && e.Size == 0 {
			continue
		}
		m, err := io.Copy(io.Discard, src.OpenEntry(ctx, e))
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func safetyDump(ctx context.Context, s *Source, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = s.DB.Dump(ctx, func(r io.Reader) error {
		_, err := io.Copy(f, r)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

func reloadSafety(ctx context.Context, s *Source, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.DB.Load(ctx, f)
}

// checklist lists what must be edited after restoring to another place.
func checklist(trees []*tree, targets []string, v *store.Version, db bool) []string {
	var out []string
	for i, t := range trees {
		if targets[i] == t.path {
			continue
		}
		hint := fmt.Sprintf("%s was restored to %s: replace the old path in the configuration", t.path, targets[i])
		if i == 0 {
			if data, err := os.ReadFile(filepath.Join(targets[0], "pydio.json")); err == nil {
				if n := bytes.Count(data, []byte(t.path)); n > 0 {
					hint = fmt.Sprintf("pydio.json names the old path %s %d times: sed -i 's#%s#%s#g' %s", t.path, n, t.path, targets[0], filepath.Join(targets[0], "pydio.json"))
				}
			}
			out = append(out, hint,
				fmt.Sprintf("point the service at the new folder: CELLS_WORKING_DIR=%s in its unit", targets[0]))
			continue
		}
		out = append(out, hint)
	}
	if len(out) > 0 {
		out = append(out,
			"if the host name or address changed: edit defaults.urlInternal, the public URL and the datasources' PeerAddress in pydio.json",
			"owners were restored by number: if the service user (pydio) has other IDs here, run chown -R pydio:pydio on the restored folders")
		if db {
			out = append(out, "if the database user, password or host changed: edit the DSN under databases in pydio.json")
		}
	}
	return out
}
