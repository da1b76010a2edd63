package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/web"
)

// restoreDir restores a version of a directory source; the work is done
// by dir.Restore.
func (a *app) restoreDir(ctx context.Context, o restoreOptions, cs *config.Source) error {
	out := a.env.Stdout
	if o.filesOnly && o.dbOnly {
		return usageErrorf("give at most one of --files-only and --db-only")
	}
	if o.rewriteHostname || o.noSafety || o.noWait || o.compress || o.stored {
		return usageErrorf("--rewrite-hostname, --no-safety-snapshot, --no-wait, --compress and --stored are for Pioreactor units; %s is a directory source", o.host)
	}
	s, v, err := a.restoreVersion(ctx, o)
	if err != nil {
		return err
	}
	if v.Source != dir.SourceKind {
		return fmt.Errorf("version %s of %s is a %q version, not a directory version: nothing was changed", v.ShortID(), v.Host, v.Source)
	}
	loc := a.cfg.Location()
	fmt.Fprintf(out, "version %s of %s, taken %s (%s), store %s: %d entries, %s\n",
		v.ShortID(), v.Host, v.Time.In(loc).Format(time.RFC3339), v.Kind, s.Name, len(v.Entries), web.HumanBytes(v.Size))
	to := map[string]string{}
	if o.to != "" {
		old, dst, ok := strings.Cut(o.to, "=")
		if !ok {
			old, dst = v.Paths[0], o.to
		}
		if !filepath.IsAbs(dst) {
			abs, err := filepath.Abs(dst)
			if err != nil {
				return err
			}
			dst = abs
		}
		to[old] = dst
	}
	src, err := a.dirSource(cs)
	if err != nil {
		return err
	}
	if o.dbOnly && v.Database == nil {
		return fmt.Errorf("version %s of %s holds no database dump: nothing to restore with --db-only", v.ShortID(), v.Host)
	}
	if !o.dryRun && !o.yes {
		what := "the folders " + strings.Join(v.Paths, ", ")
		if o.to != "" {
			what = "the folder " + o.to
		}
		if v.Database != nil && !o.filesOnly {
			what += " and database " + v.Database.Name
		}
		if o.dbOnly {
			what = "database " + v.Database.Name
		}
		if !isTerminal(a.env.Stdin) {
			return usageErrorf("a restore replaces %s, and standard input is not a terminal to confirm on: pass --yes to restore without asking (nothing was changed)", what)
		}
		q := fmt.Sprintf("This stops %s, replaces %s with version %s from %s and starts %s again.\n", cs.Name, what, v.ShortID(), v.Time.In(loc).Format("2006-01-02 15:04 MST"), cs.Name)
		if len(cs.Hooks.Stop) == 0 {
			q = fmt.Sprintf("This replaces %s with version %s from %s (no hooks are configured: stop %s first if it runs).\n", what, v.ShortID(), v.Time.In(loc).Format("2006-01-02 15:04 MST"), cs.Name)
		}
		if o.to != "" {
			q = fmt.Sprintf("This writes version %s from %s to %s (%s is neither stopped nor started: --to).\n", v.ShortID(), v.Time.In(loc).Format("2006-01-02 15:04 MST"), what, cs.Name)
		}
		ok, err := confirm(a.env.Stdin, a.env.Stderr, q+fmt.Sprintf("The current folders are kept as <path>.pre-restore-<time>, and the current database is dumped beside them (%s).\nRestore? [y/N] ", src.Kept))
		if err != nil {
			return err
		}
		if !ok {
			return withCode(exitFailure, errors.New("not confirmed: nothing was changed"))
		}
	}
	hold, err := s.Repo.Hold(ctx, "restore", v.ID)
	if err != nil {
		return fmt.Errorf("hold version %s against retention: %w", v.ShortID(), err)
	}
	defer hold.Unlock(context.WithoutCancel(ctx))
	res, err := dir.Restore(ctx, dir.RestoreOptions{
		Version: v, Repo: s.Repo, Source: src, To: to,
		FilesOnly: o.filesOnly, DBOnly: o.dbOnly, DryRun: o.dryRun, Out: out,
		NoHooks: o.to != "", // the application does not run from there
	})
	if err != nil {
		return err
	}
	if !o.dryRun {
		fmt.Fprintf(out, "restored version %s of %s\n", v.ShortID(), v.Host)
		if res.OwnersNotRestored > 0 {
			fmt.Fprintf(a.env.Stderr, "WARNING: the owners of %d entries could not be set (run the restore as root)\n", res.OwnersNotRestored)
		}
		kept := res.Kept
		if res.SafetyDump != "" {
			kept = append(kept, res.SafetyDump)
		}
		if len(kept) > 0 {
			fmt.Fprintf(out, "the state before the restore is kept in %s; delete these once the restored %s works (else later restores and backups delete them as %s says)\n", strings.Join(kept, ", "), cs.Name, src.Kept)
		}
	}
	if len(res.Checklist) > 0 {
		fmt.Fprintln(out, "still to do by hand before starting the application at its new place:")
		for _, c := range res.Checklist {
			fmt.Fprintf(out, "  - %s\n", c)
		}
	}
	return nil
}
