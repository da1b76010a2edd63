package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/notify"
)

// repoState reads the scheduler's state from the repositories: for each
// host, the oldest of its newest versions across the stores that can be
// read, a readable store lacking the host counting as never. A store added
// to the config thus makes every host due at once. A store that cannot be
// read now is left out (logged): it must not hide the others' state, nor
// blank the clock check that the newest versions provide.
type repoState struct{ d *Daemon }

// Newest implements scheduler.State.
func (s repoState) Newest(ctx context.Context) (map[string]time.Time, error) {
	a := s.d.runApp()
	stores, err := a.app.OpenForBackup(ctx)
	if err != nil {
		return nil, err
	}
	var perStore []map[string]time.Time
	hosts := map[string]bool{}
	var errs []error
	for _, st := range stores {
		if st.Repo == nil {
			errs = append(errs, fmt.Errorf("store %q: %w", st.Name, st.Err))
			continue
		}
		vs, err := st.Repo.Versions(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			a.log.Warn("cannot read versions for scheduling; leaving the store out", "store", st.Name, "err", err)
			errs = append(errs, fmt.Errorf("store %q: %w", st.Name, err))
			continue
		}
		m := map[string]time.Time{}
		for _, v := range vs {
			hosts[v.Host] = true
			if v.Time.After(m[v.Host]) {
				m[v.Host] = v.Time
			}
		}
		perStore = append(perStore, m)
	}
	if len(perStore) == 0 {
		return nil, errors.Join(errs...)
	}
	newest := map[string]time.Time{}
	for h := range hosts {
		for i, m := range perStore {
			if t := m[h]; i == 0 || t.Before(newest[h]) {
				newest[h] = t
			}
		}
	}
	for _, src := range a.cfg.Sources {
		if _, ok := newest[src.Name]; !ok {
			newest[src.Name] = time.Time{} // a source just added is due at once
		}
	}
	return newest, nil
}

// ScheduledJob is the scheduler's Job: one backup run of hosts, as Job.
// Its nil host list, at a slot of the global schedule, means every host
// but the sources backed up on schedules of their own.
func (d *Daemon) ScheduledJob(ctx context.Context, hosts []string) ([]string, error) {
	var except []string
	if hosts == nil {
		cfg, log := d.current()
		for _, s := range cfg.Sources {
			if s.Schedule != "" {
				except = append(except, s.Name)
			}
		}
		if !cfg.PioreactorEnabled() && len(except) == len(cfg.Sources) {
			log.Debug("nothing is backed up on the global schedule: every source has a schedule of its own")
			return nil, nil
		}
	}
	return d.jobExcept(ctx, hosts, except, false)
}

// Job is one backup run of hosts (nil: every host) with the configuration
// in force, retention, then the status file, metrics and notifications, as
// the web page's "back up now" starts it. It returns the hosts that failed;
// an error means the run failed as a whole.
func (d *Daemon) Job(ctx context.Context, hosts []string) ([]string, error) {
	return d.jobExcept(ctx, hosts, nil, true)
}

// jobExcept is Job, leaving out the sources named in except when hosts is
// nil. A run the schedule did not start (byHand) is the scheduler's last
// run too, for the status line.
func (d *Daemon) jobExcept(ctx context.Context, hosts, except []string, byHand bool) ([]string, error) {
	release, err := d.acquire(ctx, func() {
		_, log := d.current()
		log.Info("a restore started from the web page is running; the backup waits for it")
	})
	if err != nil {
		return nil, err
	}
	defer release()
	a := d.runApp()
	start := time.Now()
	d.pingStart(ctx, a)
	ev, failed, err := d.runOnce(ctx, a, hosts, except, start)
	d.verifyStores(ctx, a, start, a.log.With("run", ev.RunID))
	ev.Time = start.UTC()
	ev.Duration = time.Since(start).Seconds()
	d.mu.Lock()
	d.status.LastRun = &ev
	d.mu.Unlock()
	if byHand {
		d.sched.Ran(start, time.Now(), failed, err)
	}
	d.writeStatus()
	var storeNames, units []string
	for _, s := range a.cfg.Stores {
		storeNames = append(storeNames, s.Name)
	}
	for _, h := range ev.Hosts {
		units = append(units, h.Host)
	}
	d.metrics.recordRun(ev, start, storeNames)
	d.refreshFromRepos(ctx, a, units)
	d.pingEnd(ctx, a, ev)
	return failed, err
}

// lastRunToScheduler gives the scheduler the last run an earlier daemon
// recorded, so that after a restart the status line tells it as the
// status file does, not "no run yet".
func (d *Daemon) lastRunToScheduler() {
	d.mu.Lock()
	lr := d.status.LastRun
	d.mu.Unlock()
	if lr == nil || lr.Time.IsZero() {
		return
	}
	var failed []string
	for _, h := range lr.Hosts {
		if !h.OK {
			failed = append(failed, h.Host)
		}
	}
	var err error
	if lr.Error != "" {
		err = errors.New(lr.Error)
	}
	d.sched.Ran(lr.Time, lr.Time.Add(time.Duration(lr.Duration*float64(time.Second))), failed, err)
}

// runOnce takes the stores' locks for the time of one run, backs up hosts
// and applies retention. The locks are released before it returns, so
// `piosnap backup` can run between the daemon's runs.
func (d *Daemon) runOnce(ctx context.Context, a run, hosts, except []string, start time.Time) (notify.Event, []string, error) {
	ev := notify.Event{RunID: snapshot.NewRunID(), Result: "failure", Hosts: []notify.HostResult{}}
	fail := func(err error) (notify.Event, []string, error) {
		ev.Error = err.Error()
		a.log.Error("backup run failed", "run", ev.RunID, "err", err)
		return ev, nil, err
	}
	stores, err := a.app.OpenForBackup(ctx)
	if err != nil {
		return fail(err)
	}
	unlock, err := a.app.Lock(ctx, stores)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	rep, err := a.app.Backup(ctx, stores, hosts, except, ev.RunID)
	if rep != nil {
		ev.RunID = rep.RunID
		ev.Hosts = hostResults(rep)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted by shutdown, nothing partial stored: %w", err)
		}
		return fail(err)
	}
	log := a.log.With("run", rep.RunID)
	for _, h := range rep.Hosts {
		d.metrics.recordHost(h.Host, h.Size, h.Duration, h.Err() == nil)
	}
	failed := rep.Failed()
	switch {
	case len(failed) == 0:
		ev.Result = "success"
	case len(failed) < len(rep.Hosts):
		ev.Result = "partial"
	}
	log.Info("backup run finished", "result", ev.Result, "hosts", len(rep.Hosts), "failed", failed, "duration", time.Since(start).Round(time.Millisecond))
	d.retention(ctx, a, stores, rep, log)
	return ev, failed, nil
}

// retention applies each store's policy when after_backup allows it and
// the policy has rules. Its failures are logged and recorded; they do not
// fail the run, whose versions are stored.
func (d *Daemon) retention(ctx context.Context, a run, stores []snapshot.Store, rep *snapshot.Report, log *slog.Logger) {
	var recs []RetentionRecord
	for _, s := range stores {
		if ctx.Err() != nil {
			break
		}
		if s.Repo == nil {
			continue // could not be opened for this run
		}
		cs, err := a.cfg.Store(s.Name)
		if err != nil {
			continue
		}
		p, err := cs.Retention.Policy()
		if err != nil || p.Empty() || !cs.Retention.ForgetAfterBackup() {
			continue
		}
		rec := RetentionRecord{Store: s.Name}
		rec.Removed, rec.Freed, err = a.app.Forget(ctx, s, p, rep.Units)
		if err != nil {
			rec.Error = err.Error()
			log.Error("retention failed; versions are kept until the next run", "store", s.Name, "err", err)
		} else {
			log.Info("retention applied", "store", s.Name, "removed_versions", rec.Removed, "freed_bytes", rec.Freed)
			d.metrics.retentionOK(s.Name, time.Now())
		}
		recs = append(recs, rec)
	}
	d.mu.Lock()
	d.status.Retention = recs
	d.mu.Unlock()
}

// hostResults converts a snapshot report for notifications and the status
// file.
func hostResults(rep *snapshot.Report) []notify.HostResult {
	out := []notify.HostResult{}
	for _, h := range rep.Hosts {
		hr := notify.HostResult{Host: h.Host, OK: h.OK(), Error: h.Error, Stores: []notify.StoreResult{}}
		for _, s := range h.Stores {
			hr.Stores = append(hr.Stores, notify.StoreResult{Store: s.Store, Version: s.VersionID, StoredBytes: s.Stored, Error: s.Error})
		}
		out = append(out, hr)
	}
	return out
}

// failureReason is the short text of a failure ping.
func failureReason(ev notify.Event, retention []RetentionRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "piosnap run %s: %s\n", ev.RunID, ev.Result)
	if ev.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", ev.Error)
	}
	for _, h := range ev.Hosts {
		if h.OK {
			continue
		}
		if h.Error != "" {
			fmt.Fprintf(&b, "%s: %s\n", h.Host, h.Error)
			continue
		}
		for _, s := range h.Stores {
			if s.Error != "" {
				fmt.Fprintf(&b, "%s: store %s: %s\n", h.Host, s.Store, s.Error)
			}
		}
	}
	for _, r := range retention {
		if r.Error != "" {
			fmt.Fprintf(&b, "retention in store %s: %s\n", r.Store, r.Error)
		}
	}
	return b.String()
}

// pingStart sends the healthchecks start ping, if configured.
func (d *Daemon) pingStart(ctx context.Context, a run) {
	if a.cfg.Notify.Healthchecks == "" {
		return
	}
	hc := &notify.Healthchecks{URL: a.cfg.Notify.Healthchecks, Timeout: pingTimeout}
	if err := hc.Start(context.WithoutCancel(ctx)); err != nil {
		a.log.Warn("healthchecks start ping failed; the backup goes on", "err", err)
	}
}

// pingEnd sends the success or failure ping and the webhook, if
// configured. Failures are logged only.
func (d *Daemon) pingEnd(ctx context.Context, a run, ev notify.Event) {
	ctx = context.WithoutCancel(ctx)
	d.mu.Lock()
	recs := d.status.Retention
	verify := verifyFailures(d.status.Verified)
	d.mu.Unlock()
	retentionFailed := false
	for _, r := range recs {
		retentionFailed = retentionFailed || r.Error != ""
	}
	if u := a.cfg.Notify.Healthchecks; u != "" {
		hc := &notify.Healthchecks{URL: u, Timeout: pingTimeout}
		var err error
		if ev.Result == "success" && !retentionFailed && verify == "" {
			err = hc.Success(ctx, fmt.Sprintf("piosnap run %s: %d hosts backed up", ev.RunID, len(ev.Hosts)))
		} else {
			err = hc.Fail(ctx, failureReason(ev, recs)+verify)
		}
		if err != nil {
			a.log.Warn("healthchecks ping failed", "run", ev.RunID, "err", err)
		}
	}
	if u := a.cfg.Notify.Webhook; u != "" {
		wh := &notify.Webhook{URL: u, Timeout: pingTimeout}
		if err := wh.Send(ctx, ev); err != nil {
			a.log.Warn("webhook failed", "run", ev.RunID, "err", err)
		}
	}
}

// refreshFromRepos sets the per-host, per-store metrics that the
// repositories hold: the newest version's time and the number of versions,
// for every host stored and every one of hosts (the run's units). A store
// that cannot be read keeps its earlier values; the others are read.
func (d *Daemon) refreshFromRepos(ctx context.Context, a run, hosts []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	stores, err := a.app.OpenReadable(ctx)
	if err != nil {
		a.log.Warn("cannot read the repositories for metrics", "err", err)
		return
	}
	for _, s := range stores {
		if s.Err != nil {
			continue // logged by openReadable
		}
		vs, err := s.Repo.Versions(ctx)
		if err != nil {
			a.log.Warn("cannot list versions for metrics", "store", s.Name, "err", err)
			continue
		}
		d.metrics.recordVersions(s.Name, vs, hosts)
	}
}
