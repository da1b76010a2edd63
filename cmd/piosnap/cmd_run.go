package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store/retention"
	"github.com/piosnap/piosnap/systemd"
)

func cmdRun(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("run", "")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	d, err := newDaemon(a)
	if err != nil {
		return err
	}
	return d.Run(ctx, sigs)
}

// newDaemon returns the daemon of a's configuration, doing its work with
// a copy of a.
func newDaemon(a *app) (*daemon.Daemon, error) {
	var warnings []string
	if w := a.machine.leaderDiskWarning(a.cfg); w != "" {
		warnings = append(warnings, w)
	}
	d, err := daemon.New(daemon.Options{
		ConfigPath: a.configPath,
		Config:     a.cfg,
		Log:        a.log,
		Version:    piosnapVersion(),
		Warnings:   warnings,
		NewLogger: func(cfg *config.Config) *slog.Logger {
			return newLogger(a.env.Stderr, a.env.Getenv, cfg.Log.Format, cfg.Log.Level)
		},
		App: func(cfg *config.Config, log *slog.Logger) daemon.App {
			run := *a
			run.cfg, run.log = cfg, log
			return daemonApp{&run}
		},
		Systemd: systemd.New(a.env.Getenv),
	})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return d, nil
}

// daemonApp is the command line's work for the daemon.
type daemonApp struct{ a *app }

// OpenForBackup implements daemon.Backupper.
func (d daemonApp) OpenForBackup(ctx context.Context) ([]snapshot.Store, error) {
	return d.a.openStoresForBackup(ctx)
}

// OpenReadable implements daemon.Backupper.
func (d daemonApp) OpenReadable(ctx context.Context, names ...string) ([]snapshot.Store, error) {
	return d.a.openReadable(ctx, names...)
}

// Lock implements daemon.Backupper.
func (d daemonApp) Lock(ctx context.Context, stores []snapshot.Store) (func(), error) {
	return d.a.lockForBackup(ctx, stores, "backup")
}

// Backup implements daemon.Backupper.
func (d daemonApp) Backup(ctx context.Context, stores []snapshot.Store, hosts, except []string, runID string) (*snapshot.Report, error) {
	return d.a.backupRun(ctx, stores, hosts, except, "", "", runID)
}

// Forget implements daemon.Backupper.
func (d daemonApp) Forget(ctx context.Context, s snapshot.Store, p retention.Policy, units []string) (int, int64, error) {
	fr, err := d.a.forget(ctx, s, p, nil, units, false)
	if fr == nil || fr.Result == nil {
		return 0, 0, err
	}
	return fr.Result.VersionsDeleted, fr.Result.BytesFreed, err
}

// restoreApp is d's app with its output going to out and its steps to
// events.
func (d daemonApp) restoreApp(out io.Writer, events func(web.Event)) *app {
	a := *d.a
	a.env.Stdout, a.env.Stderr = out, out
	a.restoreEvents = events
	return &a
}

// DryRun implements daemon.Restorer.
func (d daemonApp) DryRun(ctx context.Context, req web.RestoreRequest, out io.Writer, events func(web.Event)) (*web.Plan, error) {
	a := d.restoreApp(out, events)
	var names []string
	if req.Store != "" {
		names = []string{req.Store}
	}
	stores, err := a.openReadable(ctx, names...) // a store that is down leaves the others, as for `piosnap restore`
	if err != nil {
		return nil, err
	}
	s, v, err := a.pickVersion(ctx, stores, req.Unit, req.Version, req.At, false)
	if err != nil {
		return nil, err
	}
	plan := &web.Plan{Store: s.Name, Version: v.ID, Time: v.Time, Kind: v.Kind}
	err = a.restore(ctx, restoreOptions{host: req.Unit, id: v.ID, storeName: s.Name, from: s, picked: v, dryRun: true, lockWait: time.Minute})
	return plan, err
}

// Restore implements daemon.Restorer, waiting up to lock_wait for an
// import already running.
func (d daemonApp) Restore(ctx context.Context, req web.RestoreRequest, out io.Writer, events func(web.Event)) error {
	a := d.restoreApp(out, events)
	return a.restore(ctx, restoreOptions{host: req.Unit, id: req.Version, storeName: req.Store, yes: true, lockWait: a.cfg.LockWait.Duration})
}

// FinishSelfRestore implements daemon.Restorer.
func (d daemonApp) FinishSelfRestore(ctx context.Context) {
	d.a.finishSelfRestore(ctx, d.a.log)
}

// OpenEach implements daemon.Reporter.
func (d daemonApp) OpenEach(ctx context.Context) ([]snapshot.Store, error) {
	return d.a.openEach(ctx, nil)
}

// Units implements daemon.Reporter.
func (d daemonApp) Units(ctx context.Context) ([]string, error) {
	cl, err := d.a.client()
	if err != nil {
		return nil, err
	}
	return cl.Units(ctx)
}

// StatusJSON implements daemon.Reporter.
func (d daemonApp) StatusJSON(r daemon.Report) ([]byte, error) {
	rep := buildStatus(r.Now, r.StatusPath, r.Status, nil, true, r.Versions, r.Units, r.UnitsErr, stalenessOf(d.a.cfg, r.Now))
	rep.StoreErrors, rep.Stores = r.StoreErrors, configuredStores(d.a.cfg)
	var err error
	if rep.SelfRestore, err = readSelfRestore(d.a.cfg.StateDir); err != nil {
		d.a.log.Warn("cannot read the record of a restore of this machine", "err", err)
	}
	return json.Marshal(rep)
}

// ListJSON implements daemon.Reporter.
func (d daemonApp) ListJSON(vs []web.StoreVersions, host string) ([]byte, error) {
	rows := []listedVersion{}
	for _, s := range vs {
		for _, v := range s.Versions {
			if host == "" || v.Host == host {
				rows = append(rows, listedRow(s.Store, v))
			}
		}
	}
	return json.Marshal(rows)
}

// Notices implements daemon.Reporter.
func (d daemonApp) Notices() []string {
	sr, err := readSelfRestore(d.a.cfg.StateDir)
	if err != nil {
		return []string{err.Error()}
	}
	var b strings.Builder
	printSelfRestore(&b, sr, d.a.cfg.Location())
	if s := strings.TrimSpace(b.String()); s != "" {
		return []string{s}
	}
	return nil
}
