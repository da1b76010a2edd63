package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
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
	compress, stored              bool
	lockWait                      time.Duration
	// filesOnly and dbOnly restore part of a directory source.
	filesOnly, dbOnly bool
	// from and picked, when set, are the store and version already picked
	// (the web's dry run picks them first, for its plan).
	from   snapshot.Store
	picked *store.Version
}

// encoding is how --compress and --stored say to send the archive.
func (o restoreOptions) encoding() restore.Encoding {
	switch {
	case o.compress:
		return restore.EncodingDeflate
	case o.stored:
		return restore.EncodingStored
	}
	return restore.EncodingAuto
}

func cmdRestore(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("restore", "--host H [--at TIME | --version ID] [--to UNIT --rewrite-hostname] [--dry-run] [--yes] [--no-safety-snapshot] [--no-wait] [--compress | --stored] [--store S]; for a directory source: --host NAME [--to PATH] [--files-only | --db-only] [--dry-run] [--yes]")
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
	fs.BoolVar(&o.compress, "compress", false, "always send the archive DEFLATE-compressed (about 4 times smaller for a database; compressed first into a temporary file in $TMPDIR); the default does so above "+strconv.Itoa(restore.DefaultDeflateAbove>>20)+" MiB")
	fs.BoolVar(&o.stored, "stored", false, "always send the archive STORED (uncompressed, rebuilt as it is sent); the default does so up to "+strconv.Itoa(restore.DefaultDeflateAbove>>20)+" MiB")
	fs.StringVar(&o.storeName, "store", "", "read from this store (default: the first that has the version)")
	fs.DurationVar(&o.lockWait, "lock-wait", 10*time.Minute, "how long to wait for an import already running on the unit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if o.host == "" || len(pos) > 0 {
		return usageErrorf("give --host H and no other arguments (run `piosnap restore -h`)")
	}
	if o.compress && o.stored {
		return usageErrorf("give at most one of --compress and --stored")
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
	if o.picked != nil {
		return o.from, o.picked, nil
	}
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
// upload, wait, verify (see package restore). Every step that can fail says
// what was (not) done.
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
		v.ShortID(), v.Host, v.Time.In(loc).Format(time.RFC3339), v.Kind, s.Name, len(v.Entries), web.HumanBytes(v.Size))
	if target != v.Host && !o.rewriteHostname {
		return usageErrorf("version %s belongs to %s; restoring it onto %s would clone %s's configuration onto %s: pass --rewrite-hostname if that is what you want (nothing was uploaded)",
			v.ShortID(), v.Host, target, v.Host, target)
	}
	if !o.dryRun && !o.yes && !isTerminal(a.env.Stdin) {
		return usageErrorf("a restore replaces everything in %s's ~/.pioreactor and reboots it, and standard input is not a terminal to confirm on: pass --yes to restore without asking (nothing was uploaded)", target)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	rp := &restoreReport{a: a, v: v, unit: target}
	r, err := restore.Prepare(ctx, restore.Options{
		Store: s, Version: v, Client: cl, Unit: target,
		RewriteHostname: o.rewriteHostname, Encoding: o.encoding(), CheckAll: o.dryRun,
		NoSafety: o.noSafety, NoWait: o.noWait,
		LockWait: o.lockWait, RebootTimeout: a.cfg.Pioreactor.RebootTimeout.Duration,
		Self: a.restoresItself(cl, target), StateDir: a.cfg.StateDir,
		Safety: func(ctx context.Context, unit, note string) (*snapshot.Report, error) {
			stores := []snapshot.Store{s}
			unlock, err := a.lockAll(ctx, stores, "restore safety snapshot")
			if err != nil {
				return nil, err
			}
			defer unlock()
			return a.backup(ctx, stores, []string{unit}, store.KindSafety, note)
		},
		Report: rp.event,
	})
	if be := (*restore.BlockedError)(nil); errors.As(err, &be) {
		// Refused before anything happened: the user must act first
		// (README, "Exit codes": 2).
		return withCode(exitUsage, err)
	}
	if err != nil {
		return err
	}
	defer r.Close()
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
	return r.Run(ctx)
}

// restoreReport prints a restore's events as `piosnap restore` does, draws
// its long steps on a terminal, and passes its steps to the web page
// following it, if any.
type restoreReport struct {
	a    *app
	v    *store.Version
	unit string

	bar      *progress     // the upload
	wait     *stepProgress // the import and the reboot
	stopTick func()
	verify   *stepProgress // the export that verifies
}

func (p *restoreReport) event(ev restore.Event) {
	out, warn, v := p.a.env.Stdout, p.a.env.Stderr, p.v
	switch ev.Kind {
	case restore.KindStep:
		if ev.Step == restore.StepUpload && ev.State == restore.StateRunning {
			p.bar = newProgress(warn, p.unit, ev.Total)
		}
		p.a.restoreEvent(web.Event{Step: string(ev.Step), State: string(ev.State), Sent: ev.Sent, Total: ev.Total,
			SafetyVersion: ev.SafetyVersion, SafetyStore: ev.SafetyStore})
		switch {
		case ev.Step == restore.StepImport && ev.State == restore.StateRunning:
			p.wait = newStep(warn, fmt.Sprintf("waiting for %s to import and reboot", p.unit), 0)
			p.stopTick = p.wait.tickEvery(time.Second)
		case ev.Step == restore.StepVerify && ev.State == restore.StateRunning:
			p.verify = newStep(warn, "verifying "+p.unit, 0)
		}
	case restore.KindCloning:
		fmt.Fprintf(warn, "WARNING: cloning %s's configuration, calibrations and plugins onto %s; the archive's unit name is rewritten to %s\n", ev.Host, ev.Unit, ev.Unit)
	case restore.KindRebuilt:
		fmt.Fprintf(out, "archive rebuilt from the repository and every chunk checked in %s: %s\n", ev.Took, web.HumanBytes(ev.Size))
	case restore.KindCompressing:
		fmt.Fprintf(out, "archive of %s: compressing it first, as Pioreactor holds an upload in RAM several times over (--stored sends it uncompressed)\n", web.HumanBytes(ev.Size))
	case restore.KindStreaming:
		fmt.Fprintf(out, "archive of %s, rebuilt from the repository as it is sent; every chunk is checked on the way\n", web.HumanBytes(ev.Size))
	case restore.KindImportRunning:
		fmt.Fprintf(out, "%s is running another import; waiting for it to finish (up to %s)\n", ev.Unit, ev.Wait)
	case restore.KindRebootingAfter:
		fmt.Fprintf(out, "%s went down after that import (rebooting); waiting for it to come back (up to %s)\n", ev.Unit, ev.Wait)
	case restore.KindReady:
		fmt.Fprintf(out, "%s answers and nothing blocks an import\n", ev.Unit)
	case restore.KindSelf:
		fmt.Fprintf(out, "%s is the machine piosnap runs on: the import reboots it, which ends this command before it can verify the restore; the verification is saved in %s, and piosnap's daemon finishes it when it starts after the reboot and reports it in its log and in `piosnap status`\n",
			ev.Unit, ev.Path)
	case restore.KindNoSafety:
		fmt.Fprintf(warn, "WARNING: no safety snapshot (--no-safety-snapshot): %s's current state is not kept\n", ev.Unit)
	case restore.KindSafetyTaken:
		fmt.Fprintf(out, "safety snapshot of %s taken in %s: version %s (to undo the restore: %s)\n", ev.Unit, ev.Took, ev.SafetyVersion[:8], ev.Undo)
	case restore.KindRecordNotSaved:
		fmt.Fprintf(warn, "WARNING: cannot save the pending verification in state_dir (%v): after the reboot nothing verifies this restore by itself; run this command as the piosnap user, or check state_dir\n", ev.Err)
	case restore.KindSent:
		p.bar.update(ev.Sent)
		p.a.restoreEvent(web.Event{Sent: ev.Sent, Total: ev.Total})
	case restore.KindUploadEnded:
		p.bar.finish()
	case restore.KindUploaded:
		fmt.Fprintf(out, "uploaded %s to %s through the leader in %s (%s/s)\n",
			web.HumanBytes(ev.Size), ev.Unit, ev.Took.Round(time.Millisecond), web.HumanBytes(int64(float64(ev.Size)/max(ev.Took.Seconds(), 1e-3))))
	case restore.KindLocked:
		fmt.Fprintf(out, "%s is running another import; uploading again in %s\n", ev.Unit, ev.Wait)
	case restore.KindAcceptedNoWait:
		fmt.Fprintf(out, "%s accepted the archive (task %s) and reboots in a few seconds; not waiting (--no-wait), so nothing was verified\n", ev.Unit, ev.TaskID)
		if ev.Self {
			fmt.Fprintf(out, "piosnap's daemon verifies it when it starts after the reboot; `piosnap status` shows the result\n")
		}
	case restore.KindAccepted:
		fmt.Fprintf(out, "%s accepted the archive; waiting for the import and the reboot (up to %s)\n", ev.Unit, ev.Wait)
	case restore.KindWaitEnded:
		p.stopTick()
		p.wait.took()
	case restore.KindRebooted:
		fmt.Fprintf(out, "%s imported the archive, rebooted and answers again after %s; verifying by exporting it\n", ev.Unit, ev.Took)
	case restore.KindExported:
		p.verify.add(ev.Size)
	case restore.KindVerifyEnded:
		p.verify.took()
	case restore.KindRecordNotUpdated:
		fmt.Fprintf(warn, "WARNING: cannot record the verification in state_dir: %v\n", ev.Err)
	case restore.KindDiffers:
		fmt.Fprintf(out, "%s differs from version %s:\n%s", ev.Unit, v.ShortID(), ev.Diff)
	case restore.KindVerified:
		fmt.Fprintf(out, "restored and verified: %s matches version %s of %s (%d entries, exported and compared in %s; config.ini compared by its settings, as Pioreactor rewrites it)\n",
			ev.Unit, v.ShortID(), v.Host, len(v.Entries), ev.Took)
	}
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

// restoreEvent tells the web page following this restore, if any, about a
// step.
func (a *app) restoreEvent(ev web.Event) {
	if a.restoreEvents != nil {
		a.restoreEvents(ev)
	}
}
