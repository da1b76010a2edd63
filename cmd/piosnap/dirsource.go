package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/dbdump"
	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/archive/hooks"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
)

// dirSource turns a configured directory source into the archive's.
func (a *app) dirSource(cs *config.Source) (*dir.Source, error) {
	h := cs.Hooks
	t := h.Timeout.Duration
	src := &dir.Source{
		Name: cs.Name, Paths: cs.Paths, Excludes: cs.Excludes,
		Stop:            hooks.Hook{Name: "stop", Argv: h.Stop, Timeout: t},
		Start:           hooks.Hook{Name: "start", Argv: h.Start, Timeout: t},
		ReadyCheck:      hooks.Hook{Name: "ready_check", Argv: h.ReadyCheck, Timeout: t},
		RequireUnlocked: h.RequireUnlocked,
		Log:             a.log,
	}
	last, within, err := cs.PreRestore.Policy()
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", cs.Name, err)
	}
	src.Kept = &dir.KeepPolicy{Last: last, Within: within}
	if d := cs.Database; d != nil {
		o := dbdump.Options{
			Engine: d.Engine, Name: d.Name, OptionsFile: d.OptionsFile,
			User: d.User, Host: d.Host, Port: d.Port, Socket: d.Socket,
			Dump: d.Dump, Load: d.Load, Timeout: d.Timeout.Duration,
		}
		if d.Credential != "" {
			p, err := dbdump.CredentialPath(a.env.Getenv, d.Credential)
			if err != nil {
				return nil, fmt.Errorf("source %q: database: %w", cs.Name, err)
			}
			o.OptionsFile = p
		}
		db, err := dbdump.New(o)
		if err != nil {
			return nil, fmt.Errorf("source %q: database: %w", cs.Name, err)
		}
		src.DB = db
	}
	return src, nil
}

// splitHosts separates --host names that are directory sources from
// Pioreactor units.
func (a *app) splitHosts(hosts []string) (units, sources []string) {
	for _, h := range hosts {
		if a.cfg.Source(h) != nil {
			sources = append(sources, h)
		} else {
			units = append(units, h)
		}
	}
	return units, sources
}

// backupDirs takes a version of each directory source named in names (all
// when names is nil) into the stores and adds their reports to rep.
func (a *app) backupDirs(ctx context.Context, stores []snapshot.Store, names []string, kind, note string, rep *snapshot.Report) error {
	var healthy, broken []snapshot.Store
	var repos []*store.Repository
	for _, s := range stores {
		if s.Err != nil || s.Repo == nil {
			broken = append(broken, s)
			continue
		}
		healthy = append(healthy, s)
		repos = append(repos, s.Repo)
	}
	if kind == "" {
		kind = store.KindBackup
	}
	log := a.log.With("run", rep.RunID)
	for i := range a.cfg.Sources {
		cs := &a.cfg.Sources[i]
		if names != nil && !slices.Contains(names, cs.Name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		hr := &snapshot.HostReport{Host: cs.Name, Via: "dir"}
		rep.Hosts = append(rep.Hosts, hr)
		start := time.Now()
		src, err := a.dirSource(cs)
		if err == nil && len(repos) == 0 {
			err = fmt.Errorf("no store can be written")
		}
		if err != nil {
			hr.Fail(err)
			log.Error("source not backed up", "source", cs.Name, "err", err)
			continue
		}
		src.Log = log
		w, err := store.NewWriter(ctx, repos...)
		if err != nil {
			hr.Fail(err)
			continue
		}
		taken, err := dir.Take(ctx, w, src)
		hr.Duration = time.Since(start)
		if err != nil {
			hr.Fail(err)
			log.Error("source not backed up", "source", cs.Name, "err", err)
			continue
		}
		v := taken.Version
		v.Time, v.Zone, v.Kind, v.Note = start, a.cfg.ZoneName(), kind, note
		snapshot.CommitHost(ctx, taken.Pending, v, hr, healthy, broken, log)
		if taken.StartErr != nil {
			hr.Fail(fmt.Errorf("the version was stored, but %w", taken.StartErr))
		}
		if hr.OK() {
			pruneKept(src, log)
		}
	}
	return nil
}

// pruneKept deletes what earlier restores of src kept beside its folders
// and its [source.pre_restore] no longer keeps, so that those copies age
// out without another restore. A backup calls it once every store holds
// the source's current state.
func pruneKept(src *dir.Source, log *slog.Logger) {
	db := ""
	if src.DB != nil {
		db = src.DB.Name()
	}
	left, err := dir.Leftovers(src.Paths)
	for _, p := range left {
		log.Warn("an earlier restore that did not finish left a folder nothing uses: delete it once no restore runs", "source", src.Name, "path", p, "command", "sudo rm -rf "+p)
	}
	if err != nil {
		log.Warn("cannot look for what interrupted restores left", "source", src.Name, "err", err)
	}
	deleted, err := dir.PruneKept(src.Paths, db, *src.Kept, time.Now(), "")
	for _, k := range deleted {
		log.Info("deleted the state before an earlier restore", "source", src.Name, "restore", k.Time.Format(time.RFC3339), "paths", strings.Join(k.Paths, ", "), "policy", src.Kept.String())
	}
	if err != nil {
		log.Warn("the state before an earlier restore is past [source.pre_restore] but was not deleted", "source", src.Name, "err", err)
	}
}

// sourceWarnings checks what `config check` can check of the directory
// sources without stopping anything: the folders exist and the database
// credentials can be used.
func (a *app) sourceWarnings(cfg *config.Config) []string {
	var out []string
	for i := range cfg.Sources {
		cs := &cfg.Sources[i]
		for _, p := range cs.Paths {
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
				out = append(out, fmt.Sprintf("source %q: %s is not a folder here: a backup would fail", cs.Name, p))
			}
		}
		if _, err := a.dirSource(cs); err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}
