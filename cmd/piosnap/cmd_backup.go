package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/web"
)

func cmdBackup(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("backup", "[--host H]... [--store S]... [--json]")
	var hosts, storeNames stringList
	fs.Var(&hosts, "host", "back up only this unit (repeatable; default: every unit the leader lists)")
	fs.Var(&storeNames, "store", "write only to this store (repeatable; default: every store)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	stores, err := a.openStoresForBackup(ctx, storeNames...)
	if err != nil {
		return err
	}
	unlock, err := a.lockForBackup(ctx, stores, "backup")
	if err != nil {
		return err
	}
	defer unlock()
	rep, err := a.backup(ctx, stores, hosts, "", "")
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(a.env.Stdout, rep); err != nil {
			return err
		}
	} else {
		printBackupReport(a.env.Stdout, rep)
	}
	return backupVerdict(rep)
}

// backupVerdict turns a report into the command's result: exit 3 when some
// host or store failed but at least one version was stored, 1 when nothing
// was stored at all.
func backupVerdict(rep *snapshot.Report) error {
	failed := rep.Failed()
	if len(failed) == 0 {
		return nil
	}
	stored := 0
	for _, h := range rep.Hosts {
		for _, s := range h.Stores {
			if s.VersionID != "" {
				stored++
			}
		}
	}
	if stored == 0 {
		return withCode(exitFailure, fmt.Errorf("nothing was stored: %d of %d hosts failed: %v", len(failed), len(rep.Hosts), failed))
	}
	return withCode(exitPartial, fmt.Errorf("%d of %d hosts are missing from at least one store: %v", len(failed), len(rep.Hosts), failed))
}

// backup runs one snapshot run; the caller holds the stores' locks.
func (a *app) backup(ctx context.Context, stores []snapshot.Store, hosts []string, kind, note string) (*snapshot.Report, error) {
	return a.backupRun(ctx, stores, hosts, nil, kind, note, "")
}

// backupRun is backup with a given run ID (empty: a new one), so that the
// daemon's log lines, status and pings for one run share it. When hosts is
// empty, the sources named in except are left out (the daemon backs them
// up on schedules of their own).
func (a *app) backupRun(ctx context.Context, stores []snapshot.Store, hosts, except []string, kind, note, runID string) (*snapshot.Report, error) {
	units, sources := a.splitHosts(hosts)
	if runID == "" {
		runID = snapshot.NewRunID()
	}
	rep := &snapshot.Report{RunID: runID, Time: time.Now().UTC()}
	var pioErr error
	if a.cfg.PioreactorEnabled() && (len(hosts) == 0 || len(units) > 0) {
		cl, err := a.client()
		if err != nil {
			return nil, err
		}
		opts := snapshot.Options{
			Client: cl, Pull: a.cfg.Pioreactor.Pull, Zone: a.cfg.ZoneName(),
			Kind: kind, Note: note, Log: a.log, RunID: runID,
		}
		if isTerminal(a.env.Stderr) {
			step := newStep(a.env.Stderr, "pulling from the cluster", 0)
			opts.Progress = step.add
			defer step.took()
		}
		r, err := snapshot.Run(ctx, opts, stores, units)
		if r != nil {
			rep = r
		}
		if err != nil && (len(a.cfg.Sources) == 0 || ctx.Err() != nil) {
			return rep, err
		}
		pioErr = err
	}
	if len(hosts) == 0 || len(sources) > 0 {
		if len(hosts) == 0 {
			sources = nil // every source
			if len(except) > 0 {
				sources = []string{}
				for _, s := range a.cfg.Sources {
					if !slices.Contains(except, s.Name) {
						sources = append(sources, s.Name)
					}
				}
			}
		}
		if err := a.backupDirs(ctx, stores, sources, kind, note, rep); err != nil {
			return rep, err
		}
		if rep.Units != nil {
			for _, s := range a.cfg.Sources {
				rep.Units = append(rep.Units, s.Name)
			}
		}
	}
	if pioErr != nil {
		return rep, fmt.Errorf("%w (the directory sources were backed up: %v)", pioErr, hostNames(rep))
	}
	return rep, nil
}

func hostNames(rep *snapshot.Report) []string {
	var out []string
	for _, h := range rep.Hosts {
		out = append(out, h.Host)
	}
	return out
}

func printBackupReport(w io.Writer, rep *snapshot.Report) {
	fmt.Fprintf(w, "backup run %s at %s\n", rep.RunID, rep.Time.Local().Format(time.RFC3339))
	if rep.BroadcastError != "" {
		fmt.Fprintf(w, "  cluster archive unusable, units pulled directly: %s\n", rep.BroadcastError)
	}
	for _, h := range rep.Hosts {
		if h.Err() != nil {
			fmt.Fprintf(w, "  %-12s FAILED  %s\n", h.Host, h.Error)
			continue
		}
		for _, s := range h.Stores {
			if s.Error != "" {
				fmt.Fprintf(w, "  %-12s FAILED  store %s: %s\n", h.Host, s.Store, s.Error)
				continue
			}
			fmt.Fprintf(w, "  %-12s ok      store %-8s version %s  new %9s  total %9s  %s (%s)\n",
				h.Host, s.Store, s.VersionID[:8], web.HumanBytes(s.Stored), web.HumanBytes(h.Size), h.Duration.Round(time.Millisecond), h.Via)
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// count formats n with its noun, singular for one: "1 version", "3 versions".
// The plural is the noun with an s, which every noun piosnap counts takes.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
