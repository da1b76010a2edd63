package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// restoreOptions are the flags of `piosnap restore`.
type restoreOptions struct {
	host, at, id, to, storeName   string
	dryRun, yes, noSafety, noWait bool
	rewriteHostname, withSafety   bool
	compress                      bool
	lockWait                      time.Duration
	// filesOnly and dbOnly restore part of a directory source.
	filesOnly, dbOnly bool
}

func cmdRestore(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("restore", "--host H [--at TIME | --version ID] [--to UNIT --rewrite-hostname] [--dry-run] [--yes] [--no-safety-snapshot] [--no-wait] [--compress] [--store S]; for a directory source: --host NAME [--to PATH] [--files-only | --db-only] [--dry-run] [--yes]")
	var o restoreOptions
	fs.StringVar(&o.host, "host", "", "the unit whose version is restored (required)")
	fs.StringVar(&o.at, "at", "", "newest version at or before TIME: latest, yesterday, 3d-ago, 2026-05-01, RFC 3339 (default latest; safety snapshots are skipped)")
	fs.BoolVar(&o.withSafety, "include-safety", false, "with --at: consider safety snapshots (taken before a restore) too")
	fs.StringVar(&o.id, "version", "", "version ID (at least 4 characters, as `piosnap list` shows)")
	fs.StringVar(&o.to, "to", "", "restore onto this unit instead of --host (needs --rewrite-hostname); for a directory source: restore its folder to this path (or OLD=NEW for one of several paths)")
	fs.BoolVar(&o.filesOnly, "files-only", false, "directory source: restore the folders, leave the database alone")
	fs.BoolVar(&o.dbOnly, "db-only", false, "directory source: restore the database, leave the folders alone")
	fs.BoolVar(&o.rewriteHostname, "rewrite-hostname", false, "with --to: rewrite the archive's unit name, cloning one unit's configuration onto another")
	fs.BoolVar(&o.dryRun, "dry-run", false, "do every check, then stop before the safety snapshot and the upload")
	fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (required when standard input is not a terminal)")
	fs.BoolVar(&o.noSafety, "no-safety-snapshot", false, "do not snapshot the unit's current state first (no way back)")
	fs.BoolVar(&o.noWait, "no-wait", false, "stop once the unit has accepted the upload; do not wait for the reboot or verify")
	fs.BoolVar(&o.compress, "compress", false, "send the archive DEFLATE-compressed (about 4 times smaller for a database) instead of STORED: for a slow link or a unit short of RAM; it is compressed first into a temporary file in $TMPDIR")
	fs.StringVar(&o.storeName, "store", "", "read from this store (default: the first that has the version)")
	fs.DurationVar(&o.lockWait, "lock-wait", 10*time.Minute, "how long to wait for an import already running on the unit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.host == "" || len(pos) > 0 {
		return usageErrorf("give --host H and no other arguments (run `piosnap restore -h`)")
	}
	if o.id == "" && o.at == "" {
		o.at = "latest"
	}
	if cs := a.cfg.Source(o.host); cs != nil {
		return a.restoreDir(ctx, o, cs)
	}
	if o.filesOnly || o.dbOnly {
		return usageErrorf("--files-only and --db-only are for directory sources; %s is not one", o.host)
	}
	if o.rewriteHostname && o.to == "" {
		return usageErrorf("--rewrite-hostname needs --to UNIT, the unit to restore onto")
	}
	return a.restore(ctx, o)
}

// restoreVersion opens the stores a restore may read (--store, or every
// store that answers) and picks the version o names.
func (a *app) restoreVersion(ctx context.Context, o restoreOptions) (snapshot.Store, *store.Version, error) {
	var names []string
	if o.storeName != "" {
		names = []string{o.storeName}
	}
	stores, err := a.openReadable(ctx, names...)
	if err != nil {
		return snapshot.Store{}, nil, err
	}
	return a.pickVersion(ctx, stores, o.host, o.id, o.at, o.withSafety)
}

// restore runs one restore: pick, check, probe, confirm, safety snapshot,
// upload, wait, verify. Every step that can fail says what was (not) done.
func (a *app) restore(ctx context.Context, o restoreOptions) error {
	out := a.env.Stdout
	target := o.to
	if target == "" {
		target = o.host
	}
	s, v, err := a.restoreVersion(ctx, o)
	if err != nil {
		return err
	}
	if v.Source == dir.SourceKind {
		return fmt.Errorf("version %s of %s is a directory source's version, and the configuration has no [[source]] named %s: add it back (kind = \"dir\") to restore it, or unpack `piosnap export --host %s --version %s -o %s.tar` by hand (nothing was changed)",
			v.ShortID(), v.Host, v.Host, v.Host, v.ShortID(), v.Host)
	}
	loc := a.cfg.Location()
	fmt.Fprintf(out, "version %s of %s, taken %s (%s), store %s: %d entries, %s\n",
		v.ShortID(), v.Host, v.Time.In(loc).Format(time.RFC3339), v.Kind, s.Name, len(v.Entries), humanBytes(v.Size))
	if target != v.Host && !o.rewriteHostname {
		return usageErrorf("version %s belongs to %s; restoring it onto %s would clone %s's configuration onto %s: pass --rewrite-hostname if that is what you want (nothing was uploaded)",
			v.ShortID(), v.Host, target, v.Host, target)
	}
	if !o.dryRun && !o.yes && !isTerminal(a.env.Stdin) {
		return usageErrorf("a restore replaces everything in %s's ~/.pioreactor and reboots it, and standard input is not a terminal to confirm on: pass --yes to restore without asking (nothing was uploaded)", target)
	}
	hold, err := s.Repo.Hold(ctx, "restore", v.ID)
	if err != nil {
		return fmt.Errorf("hold version %s against retention: %w", v.ShortID(), err)
	}
	defer hold.Unlock(context.WithoutCancel(ctx))

	a.restoreEvent(web.Event{Step: web.StepCheck, State: web.StateRunning})
	replace, err := restore.CheckVersion(ctx, s.Repo, v, target, o.rewriteHostname)
	if err != nil {
		return fmt.Errorf("version %s cannot be restored onto %s: %w (nothing was uploaded)", v.ShortID(), target, err)
	}
	if target != v.Host {
		fmt.Fprintf(a.env.Stderr, "WARNING: cloning %s's configuration, calibrations and plugins onto %s; the archive's unit name is rewritten to %s\n", v.Host, target, target)
	}
	src, err := restore.NewSource(ctx, s.Repo, v, replace, o.compress)
	if err != nil {
		return fmt.Errorf("rebuild version %s from store %s: %w (nothing was uploaded; run `piosnap check --read-data`)", v.ShortID(), s.Name, err)
	}
	defer src.Close()
	size := src.Size()
	if o.dryRun || o.compress {
		start := time.Now()
		if err := src.Check(ctx); err != nil {
			return fmt.Errorf("rebuild version %s from store %s: %w (nothing was uploaded; run `piosnap check --read-data`)", v.ShortID(), s.Name, err)
		}
		fmt.Fprintf(out, "archive rebuilt from the repository and every chunk checked in %s: %s\n", time.Since(start).Round(100*time.Millisecond), humanBytes(size))
	} else {
		fmt.Fprintf(out, "archive of %s, rebuilt from the repository as it is sent; every chunk is checked on the way\n", humanBytes(size))
	}

	cl, err := a.client()
	if err != nil {
		return err
	}
	if err := a.waitUnitReady(ctx, cl, target, o.lockWait); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s answers and nothing blocks an import\n", target)
	a.restoreEvent(web.Event{Step: web.StepCheck, State: web.StateDone})
	self := a.restoresItself(cl, target)
	if self {
		fmt.Fprintf(out, "%s is the machine piosnap runs on: the import reboots it, which ends this command before it can verify the restore; the verification is saved in %s, and piosnap's daemon finishes it when it starts after the reboot and reports it in its log and in `piosnap status`\n",
			target, selfRestorePath(a.cfg.StateDir))
	}
	if o.dryRun {
		fmt.Fprintf(out, "dry run: every check passed; no safety snapshot was taken and nothing was uploaded\n")
		return nil
	}
	if !o.yes {
		q := fmt.Sprintf("This replaces everything in %s's ~/.pioreactor (config.ini, calibrations, plugins%s) with version %s of %s from %s, then %s reboots.\n",
			target, databaseNote(v), v.ShortID(), v.Host, v.Time.In(loc).Format("2006-01-02 15:04 MST"), target)
		if o.noSafety {
			q += "No safety snapshot will be taken: the current state cannot be brought back.\n"
		} else {
			q += "A safety snapshot of the current state is taken first; restoring it undoes this.\n"
		}
		ok, err := confirm(a.env.Stdin, a.env.Stderr, q+"Restore? [y/N] ")
		if err != nil {
			return err
		}
		if !ok {
			return withCode(exitFailure, errors.New("not confirmed: nothing was uploaded"))
		}
	}

	undo := ""
	if o.noSafety {
		fmt.Fprintf(a.env.Stderr, "WARNING: no safety snapshot (--no-safety-snapshot): %s's current state is not kept\n", target)
		a.restoreEvent(web.Event{Step: web.StepSafety, State: web.StateSkipped})
	} else {
		a.restoreEvent(web.Event{Step: web.StepSafety, State: web.StateRunning})
		start := time.Now()
		id, err := a.safetySnapshot(ctx, s, target, v)
		if err != nil {
			return err
		}
		took := time.Since(start).Round(100 * time.Millisecond)
		a.restoreEvent(web.Event{Step: web.StepSafety, State: web.StateDone, SafetyVersion: id, SafetyStore: s.Name})
		undo = fmt.Sprintf("piosnap restore --host %s --version %s --store %s", target, id[:8], s.Name)
		fmt.Fprintf(out, "safety snapshot of %s taken in %s: version %s (to undo the restore: %s)\n", target, took, id[:8], undo)
	}

	var sr *selfRestore
	if self {
		sr = &selfRestore{Unit: target, Host: v.Host, Version: v.ID, Store: s.Name, Started: time.Now().UTC(), Undo: undo}
		if err := writeSelfRestore(a.cfg.StateDir, sr); err != nil {
			fmt.Fprintf(a.env.Stderr, "WARNING: cannot save the pending verification in state_dir (%v): after the reboot nothing verifies this restore by itself; run this command as the piosnap user, or check state_dir\n", err)
			sr = nil
		}
	}

	deadline := time.Now().Add(o.lockWait)
	for {
		task, err := a.upload(ctx, cl, target, src, size)
		if errors.Is(err, pioreactor.ErrImportLocked) && time.Now().Before(deadline) {
			if err := a.waitLocked(ctx, target, task); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			dropSelfRestore(a.cfg.StateDir, sr) // the unit imported nothing
			return withUndo(err, undo)
		}
		if o.noWait {
			fmt.Fprintf(out, "%s accepted the archive (task %s) and reboots in a few seconds; not waiting (--no-wait), so nothing was verified\n", target, task.TaskID)
			if sr != nil {
				fmt.Fprintf(out, "piosnap's daemon verifies it when it starts after the reboot; `piosnap status` shows the result\n")
			}
			return nil
		}
		fmt.Fprintf(out, "%s accepted the archive; waiting for the import and the reboot (up to %s)\n", target, a.cfg.Pioreactor.RebootTimeout.Duration)
		a.restoreEvent(web.Event{Step: web.StepImport, State: web.StateRunning})
		rt := a.cfg.Pioreactor.RebootTimeout.Duration
		wait := newStep(a.env.Stderr, fmt.Sprintf("waiting for %s to import and reboot", target), 0)
		stopTick := wait.tickEvery(time.Second)
		outcome, err := cl.WaitImport(ctx, target, task, pioreactor.WaitOptions{RebootTimeout: rt, ComeBackTimeout: rt, Imported: func() {
			a.restoreEvent(web.Event{Step: web.StepImport, State: web.StateDone})
			a.restoreEvent(web.Event{Step: web.StepReboot, State: web.StateRunning})
		}})
		stopTick()
		waited := wait.took()
		if errors.Is(err, pioreactor.ErrImportLocked) && time.Now().Before(deadline) {
			if err := a.waitLocked(ctx, target, task); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if errors.Is(err, pioreactor.ErrImportFailed) {
				dropSelfRestore(a.cfg.StateDir, sr) // the unit kept its files
			}
			return withUndo(fmt.Errorf("restore of version %s onto %s: %w", v.ShortID(), target, err), undo)
		}
		fmt.Fprintf(out, "%s imported the archive, rebooted and answers again after %s; verifying by exporting it\n", outcome.Unit, waited)
		a.restoreEvent(web.Event{Step: web.StepReboot, State: web.StateDone})
		break
	}
	a.restoreEvent(web.Event{Step: web.StepVerify, State: web.StateRunning})
	verify := newStep(a.env.Stderr, "verifying "+target, 0)
	diff, err := restore.Verify(ctx, cl, s.Repo, v, target, verify.add)
	verified := verify.took()
	if err != nil {
		return withUndo(fmt.Errorf("verify %s: %w", target, err), undo)
	}
	if sr != nil {
		// This command survived the reboot and verified the restore itself.
		now := time.Now().UTC()
		sr.Finished, sr.Verified = &now, diff.Empty()
		sr.Result = fmt.Sprintf("restored and verified: %s matches version %s of %s", target, v.ShortID(), v.Host)
		if !diff.Empty() {
			sr.Result = fmt.Sprintf("%s differs from version %s: %s", target, v.ShortID(), diff.Summary())
		}
		if err := writeSelfRestore(a.cfg.StateDir, sr); err != nil {
			fmt.Fprintf(a.env.Stderr, "WARNING: cannot record the verification in state_dir: %v\n", err)
		}
	}
	if !diff.Empty() {
		fmt.Fprintf(out, "%s differs from version %s:\n%s", target, v.ShortID(), diff)
		return withUndo(fmt.Errorf("%s was restored but does not match version %s (%s)", target, v.ShortID(), diff.Summary()), undo)
	}
	fmt.Fprintf(out, "restored and verified: %s matches version %s of %s (%d entries, exported and compared in %s; config.ini compared by its settings, as Pioreactor rewrites it)\n",
		target, v.ShortID(), v.Host, len(v.Entries), verified)
	return nil
}

// withUndo appends how to undo a half-done restore to err.
func withUndo(err error, undo string) error {
	if undo == "" {
		return err
	}
	return fmt.Errorf("%w; to go back to the state before the restore: %s", err, undo)
}

func databaseNote(v *store.Version) string {
	for _, e := range v.Entries {
		if e.Name == "storage/pioreactor.sqlite" {
			return ", the experiment database"
		}
	}
	return ""
}

// confirm asks question on w and reads one line from r; only "y" or "yes"
// agrees.
func confirm(r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read confirmation: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// rebootGrace is how long a unit that just finished another import is
// watched for the reboot a successful import triggers (2 s on Pioreactor,
// plus shutdown).
const rebootGrace = 15 * time.Second

// waitUnitReady asks the unit itself what would block an import, since the
// leader hides the unit's reasons behind a 502. An import already running is
// waited for up to lockWait, and the reboot that follows it up to the
// configured reboot timeout; anything else stops the restore.
func (a *app) waitUnitReady(ctx context.Context, cl *pioreactor.Client, unit string, lockWait time.Duration) error {
	lockDeadline := time.Now().Add(lockWait)
	var downSince time.Time // when the unit went down after the import we waited for
	var upSince time.Time   // when the unit was free again, before its reboot
	sawImport := false
	for {
		err := cl.Probe(ctx, unit)
		switch {
		case err == nil && (!sawImport || !downSince.IsZero()):
			return nil
		case err == nil && upSince.IsZero():
			// The other import finished; a successful one reboots the unit
			// seconds later, which must not hit our upload.
			upSince = time.Now()
		case err == nil && time.Since(upSince) > rebootGrace:
			return nil // it did not reboot: that import failed
		}
		if err == nil {
			if err := store.Sleep(ctx, 500*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		locked := errors.Is(err, pioreactor.ErrImportLocked)
		rebooting := sawImport && errors.Is(err, pioreactor.ErrUnreachable)
		blocked := errors.Is(err, pioreactor.ErrSentinel) || errors.Is(err, pioreactor.ErrWrongUnit) || errors.Is(err, pioreactor.ErrUnauthorized)
		switch {
		case blocked:
			// Refused before anything happened: the user must act first
			// (README, "Exit codes": 2).
			return withCode(exitUsage, fmt.Errorf("%s cannot take an import now: %w (nothing was uploaded)", unit, err))
		case !locked && !rebooting:
			return fmt.Errorf("%s cannot take an import now: %w (nothing was uploaded)", unit, err)
		case locked && time.Now().After(lockDeadline):
			return fmt.Errorf("%s is still running another import after %s: %w (nothing was uploaded; retry later or raise --lock-wait)", unit, lockWait, err)
		case locked:
			downSince = time.Time{}
			if !sawImport {
				fmt.Fprintf(a.env.Stdout, "%s is running another import; waiting for it to finish (up to %s)\n", unit, lockWait)
			}
			sawImport = true
		case downSince.IsZero():
			downSince = time.Now()
			fmt.Fprintf(a.env.Stdout, "%s went down after that import (rebooting); waiting for it to come back (up to %s)\n", unit, a.cfg.Pioreactor.RebootTimeout.Duration)
		case time.Since(downSince) > a.cfg.Pioreactor.RebootTimeout.Duration:
			return fmt.Errorf("%s did not come back within %s (reboot_timeout) after the import it was running: %w (nothing was uploaded)", unit, a.cfg.Pioreactor.RebootTimeout.Duration, err)
		}
		if err := store.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitLocked pauses before uploading again after the unit said another
// import holds its lock.
func (a *app) waitLocked(ctx context.Context, unit string, task *pioreactor.Task) error {
	d := time.Second
	if task != nil && task.RetryAfter > d {
		d = task.RetryAfter
	}
	fmt.Fprintf(a.env.Stdout, "%s is running another import; uploading again in %s\n", unit, d)
	return store.Sleep(ctx, d)
}

// safetySnapshot stores the unit's current state as a KindSafety version in
// s and returns its ID.
func (a *app) safetySnapshot(ctx context.Context, s snapshot.Store, unit string, v *store.Version) (string, error) {
	fail := func(err error) error {
		return fmt.Errorf("safety snapshot of %s failed: %w (nothing was uploaded; fix this, or pass --no-safety-snapshot to restore with no way back)", unit, err)
	}
	stores := []snapshot.Store{s}
	unlock, err := a.lockAll(ctx, stores, "restore safety snapshot")
	if err != nil {
		return "", fail(err)
	}
	defer unlock()
	rep, err := a.backup(ctx, stores, []string{unit}, store.KindSafety, "before restore of version "+v.ShortID())
	if err != nil {
		return "", fail(err)
	}
	for _, h := range rep.Hosts {
		if h.Host != unit {
			continue
		}
		if err := h.Err(); err != nil {
			return "", fail(err)
		}
		for _, sr := range h.Stores {
			if sr.Error != "" {
				return "", fail(fmt.Errorf("store %q: %s", sr.Store, sr.Error))
			}
			if len(sr.VersionID) >= 8 {
				return sr.VersionID, nil
			}
		}
	}
	return "", fail(errors.New("the run stored no version of it"))
}

// upload streams the rebuilt archive to the unit through the leader. When
// the leader masks the unit's refusal, the unit is asked for the reason.
func (a *app) upload(ctx context.Context, cl *pioreactor.Client, unit string, src *restore.Source, size int64) (*pioreactor.Task, error) {
	body, wait := src.Stream(ctx)
	bar := newProgress(a.env.Stderr, unit, size)
	a.restoreEvent(web.Event{Step: web.StepUpload, State: web.StateRunning, Total: size})
	start := time.Now()
	task, err := cl.Import(ctx, unit, body, size, func(sent int64) {
		bar.update(sent)
		a.restoreEvent(web.Event{Sent: sent, Total: size})
	})
	body.Close()
	werr := wait()
	bar.finish()
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) && ctx.Err() == nil {
		// The archive broke off before its end, so the unit never received a
		// whole one and imported nothing.
		return nil, fmt.Errorf("rebuild the archive of the version from the repository: %w (the upload to %s was cut short, so it imported nothing; run `piosnap check --read-data`)", werr, unit)
	}
	if err != nil {
		if errors.Is(err, pioreactor.ErrLeaderMasked) {
			if perr := cl.Probe(ctx, unit); perr != nil {
				return nil, fmt.Errorf("upload to %s refused: %w", unit, perr)
			}
		}
		return task, fmt.Errorf("upload to %s: %w", unit, err)
	}
	el := time.Since(start)
	a.restoreEvent(web.Event{Step: web.StepUpload, State: web.StateDone, Sent: size, Total: size})
	fmt.Fprintf(a.env.Stdout, "uploaded %s to %s through the leader in %s (%s/s)\n",
		humanBytes(size), unit, el.Round(time.Millisecond), humanBytes(int64(float64(size)/max(el.Seconds(), 1e-3))))
	return task, nil
}

// restoreEvent tells the web page following this restore, if any, about a
// step.
func (a *app) restoreEvent(ev web.Event) {
	if a.restoreEvents != nil {
		a.restoreEvents(ev)
	}
}
