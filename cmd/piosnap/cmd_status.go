package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// statusReport is `piosnap status --json`.
type statusReport struct {
	Now        time.Time                `json:"now"`
	StatusFile string                   `json:"status_file"`
	Daemon     daemonStatus             `json:"daemon"`
	LastRun    *notify.Event            `json:"last_run,omitempty"`
	Retention  []daemon.RetentionRecord `json:"retention,omitempty"`
	// Verified is what the daemon's last reading of each store's data
	// found (verify_days).
	Verified []daemon.VerifyRecord `json:"verified,omitempty"`
	// Stores are the configured stores in order, with how the daemon
	// reads their data (the web page tells "off" and "not read yet" apart
	// with them).
	Stores     []configuredStore `json:"stores,omitempty"`
	StaleAfter float64           `json:"stale_after_seconds"`
	Hosts      []hostStatus      `json:"hosts"`
	// LeaderError says why departed hosts could not be flagged.
	LeaderError string `json:"leader_error,omitempty"`
	// StoreErrors lists stores that could not be read.
	StoreErrors []string `json:"store_errors,omitempty"`
	// SelfRestore is the last restore of the machine piosnap runs on,
	// pending or verified after its reboot.
	SelfRestore *restore.Record `json:"self_restore,omitempty"`
}

// configuredStore is one [[store]] of the configuration in statusReport.
type configuredStore struct {
	Name string `json:"name"`
	// VerifyDays is the store's verify_days: the daemon reads all of its
	// data once in that many days, one part a day; 0: it does not.
	VerifyDays int `json:"verify_days"`
}

// configuredStores lists cfg's stores for statusReport.
func configuredStores(cfg *config.Config) []configuredStore {
	out := make([]configuredStore, 0, len(cfg.Stores))
	for _, s := range cfg.Stores {
		out = append(out, configuredStore{Name: s.Name, VerifyDays: s.VerifyDaysOrDefault()})
	}
	return out
}

// daemonStatus is the daemon part of statusReport.
type daemonStatus struct {
	Running bool       `json:"running"`
	PID     int        `json:"pid,omitempty"`
	Started *time.Time `json:"started,omitempty"`
	State   string     `json:"state,omitempty"`
	NextRun *time.Time `json:"next_run,omitempty"`
	Problem string     `json:"problem,omitempty"`
}

// hostStatus is one host's freshness.
type hostStatus struct {
	Host       string        `json:"host"`
	Newest     time.Time     `json:"newest"`
	AgeSeconds float64       `json:"age_seconds"`
	Stale      bool          `json:"stale"`
	Departed   bool          `json:"departed,omitempty"`
	Stores     []storeStatus `json:"stores"`
	// StaleAfter, when set, replaces the report's stale_after_seconds for
	// this host: a source on a schedule of its own.
	StaleAfter float64 `json:"stale_after_seconds,omitempty"`
}

// storeStatus is one host's versions in one store.
type storeStatus struct {
	Store      string    `json:"store"`
	Versions   int       `json:"versions"`
	Newest     time.Time `json:"newest"`
	AgeSeconds float64   `json:"age_seconds"`
	Stale      bool      `json:"stale"`
}

func cmdStatus(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("status", "[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if w := a.machine.leaderDiskWarning(a.cfg); w != "" {
		fmt.Fprintf(a.env.Stderr, "warning: %s\n", w)
	}
	path := filepath.Join(a.cfg.StateDir, daemon.StatusFileName)
	sf, sfErr := daemon.ReadStatusFile(path)
	alive := sfErr == nil && sf.Alive()

	versions := map[string][]*store.Version{}
	var storeErrs []string
	stores, err := a.openReadable(ctx)
	if err != nil {
		return err
	}
	for _, s := range stores {
		if s.Err != nil {
			storeErrs = append(storeErrs, fmt.Sprintf("store %q: %v", s.Name, s.Err))
			continue
		}
		vs, err := s.Repo.Versions(ctx)
		if err != nil {
			storeErrs = append(storeErrs, fmt.Sprintf("store %q: %v", s.Name, err))
			continue
		}
		versions[s.Name] = vs
		if sfErr != nil {
			continue
		}
		// Damage the daemon recorded in a pack that a repair has removed
		// since is over, though the daemon learns it only on its next run.
		for i := range sf.Verified {
			if sf.Verified[i].Store == s.Name {
				if err := sf.Verified[i].DropGone(ctx, s.Repo); err != nil {
					storeErrs = append(storeErrs, fmt.Sprintf("store %q: %v", s.Name, err))
				}
			}
		}
	}
	var units []string
	var unitsErr error
	if !a.cfg.PioreactorEnabled() {
		units = []string{}
	} else if cl, err := a.client(); err != nil {
		unitsErr = err
	} else {
		uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		units, unitsErr = cl.Units(uctx)
		cancel()
	}
	if unitsErr == nil {
		for _, s := range a.cfg.Sources {
			units = append(units, s.Name) // directory sources are current hosts too
		}
	}
	now := time.Now()
	rep := buildStatus(now, path, sf, sfErr, alive, versions, units, unitsErr, stalenessOf(a.cfg, now))
	rep.StoreErrors, rep.Stores = storeErrs, configuredStores(a.cfg)
	if rep.SelfRestore, err = readSelfRestore(a.cfg.StateDir); err != nil {
		fmt.Fprintf(a.env.Stderr, "warning: %v\n", err)
	}
	if *asJSON {
		if err := writeJSON(a.env.Stdout, rep); err != nil {
			return err
		}
	} else {
		printStatus(a.env.Stdout, rep, a.cfg.Location())
		printSelfRestore(a.env.Stdout, rep.SelfRestore, a.cfg.Location())
	}
	return statusVerdict(rep)
}

// statusVerdict turns the report into the exit code monitoring scripts
// read: 3 when a host is stale or a store could not be read, 0 otherwise.
// Whether the daemon runs is reported but not judged: backups may come
// from cron or by hand.
func statusVerdict(rep *statusReport) error {
	var stale, damaged []string
	for _, h := range rep.Hosts {
		if h.Stale && !h.Departed {
			stale = append(stale, h.Host)
		}
	}
	for _, v := range rep.Verified {
		if len(v.Problems) > 0 {
			damaged = append(damaged, v.Store)
		}
	}
	switch {
	case len(damaged) > 0:
		return withCode(exitDamaged, fmt.Errorf("the daemon found damaged data in store %s: %s", strings.Join(damaged, ", "), repairHint(damaged[0])))
	case len(rep.StoreErrors) > 0:
		return withCode(exitPartial, fmt.Errorf("a store could not be read: %s", strings.Join(rep.StoreErrors, "; ")))
	case len(stale) > 0:
		return withCode(exitPartial, fmt.Errorf("stale hosts (no version for longer than status.stale_after): %s", strings.Join(stale, ", ")))
	}
	return nil
}

// buildStatus assembles the report from what was read; it does no I/O.
func buildStatus(now time.Time, path string, sf *daemon.StatusFile, sfErr error, alive bool, versions map[string][]*store.Version, units []string, unitsErr error, stale staleness) *statusReport {
	rep := &statusReport{Now: now.UTC(), StatusFile: path, StaleAfter: stale.after.Seconds()}
	switch {
	case sfErr != nil:
		rep.Daemon.Problem = sfErr.Error()
	default:
		rep.LastRun, rep.Retention, rep.Verified = sf.LastRun, sf.Retention, sf.Verified
		rep.Daemon.Running = alive
		if alive {
			started := sf.Started
			rep.Daemon.PID, rep.Daemon.Started, rep.Daemon.State, rep.Daemon.NextRun = sf.PID, &started, sf.State, sf.NextRun
		} else if sf.Stopped != nil {
			rep.Daemon.Problem = fmt.Sprintf("the daemon stopped at %s", sf.Stopped.UTC().Format(time.RFC3339))
		} else {
			rep.Daemon.Problem = fmt.Sprintf("the daemon (PID %d) is gone without a clean stop: see `journalctl -u piosnap`", sf.PID)
		}
	}
	if unitsErr != nil {
		rep.LeaderError = fmt.Sprintf("cannot ask the leader for its units, so hosts that left the cluster are not flagged: %v", unitsErr)
	}
	byHost := map[string]*hostStatus{}
	storeNames := make([]string, 0, len(versions))
	for name := range versions {
		storeNames = append(storeNames, name)
	}
	slices.Sort(storeNames)
	for _, name := range storeNames {
		per := map[string]*storeStatus{}
		for _, v := range versions[name] {
			ss := per[v.Host]
			if ss == nil {
				ss = &storeStatus{Store: name}
				per[v.Host] = ss
			}
			ss.Versions++
			if v.Time.After(ss.Newest) {
				ss.Newest = v.Time.UTC()
			}
		}
		for host, ss := range per {
			age := now.Sub(ss.Newest)
			ss.AgeSeconds, ss.Stale = age.Seconds(), age > stale.of(host)
			h := byHost[host]
			if h == nil {
				h = &hostStatus{Host: host}
				byHost[host] = h
			}
			h.Stores = append(h.Stores, *ss)
			if ss.Newest.After(h.Newest) {
				h.Newest = ss.Newest
			}
		}
	}
	for _, h := range byHost {
		age := now.Sub(h.Newest)
		h.AgeSeconds, h.Stale = age.Seconds(), age > stale.of(h.Host)
		if d, ok := stale.own[h.Host]; ok {
			h.StaleAfter = d.Seconds()
		}
		h.Departed = unitsErr == nil && units != nil && !slices.Contains(units, h.Host)
		rep.Hosts = append(rep.Hosts, *h)
	}
	// Units without any version are as stale as can be.
	if unitsErr == nil {
		for _, u := range units {
			if byHost[u] == nil {
				rep.Hosts = append(rep.Hosts, hostStatus{Host: u, Stale: true, Stores: []storeStatus{}})
			}
		}
	}
	slices.SortFunc(rep.Hosts, func(x, y hostStatus) int { return strings.Compare(x.Host, y.Host) })
	if rep.Hosts == nil {
		rep.Hosts = []hostStatus{}
	}
	return rep
}

func printStatus(w io.Writer, rep *statusReport, loc *time.Location) {
	const layout = "2006-01-02 15:04:05 MST"
	d := rep.Daemon
	if d.Running {
		fmt.Fprintf(w, "daemon:    running (PID %d) since %s\n", d.PID, d.Started.In(loc).Format(layout))
		if d.State != "" {
			fmt.Fprintf(w, "state:     %s\n", d.State)
		}
		if d.NextRun != nil {
			fmt.Fprintf(w, "next run:  %s\n", d.NextRun.In(loc).Format(layout))
		}
	} else {
		fmt.Fprintf(w, "daemon:    not running: %s\n", d.Problem)
	}
	if r := rep.LastRun; r != nil {
		fmt.Fprintf(w, "last run:  %s at %s, %s", r.RunID, r.Time.In(loc).Format(layout), r.Result)
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
		for _, h := range r.Hosts {
			if h.Error != "" {
				fmt.Fprintf(w, "  %-12s FAILED  %s\n", h.Host, h.Error)
				continue
			}
			for _, s := range h.Stores {
				if s.Error != "" {
					fmt.Fprintf(w, "  %-12s FAILED  store %s: %s\n", h.Host, s.Store, s.Error)
				} else {
					fmt.Fprintf(w, "  %-12s ok      store %s, new %s\n", h.Host, s.Store, web.HumanBytes(s.StoredBytes))
				}
			}
		}
		for _, r := range rep.Retention {
			if r.Error != "" {
				fmt.Fprintf(w, "  retention in store %s FAILED: %s\n", r.Store, r.Error)
			} else {
				fmt.Fprintf(w, "  retention in store %s: removed %s, freed %s\n", r.Store, count(r.Removed, "version"), web.HumanBytes(r.Freed))
			}
		}
	} else {
		fmt.Fprintln(w, "last run:  none recorded")
	}
	for _, v := range rep.Verified {
		when := v.Time.In(loc).Format("2006-01-02 15:04")
		switch {
		case v.Error != "":
			fmt.Fprintf(w, "verified:  store %s, part %s at %s FAILED: %s\n", v.Store, v.Part, when, v.Error)
		case len(v.Problems) > 0:
			fmt.Fprintf(w, "verified:  store %s, part %s at %s: DAMAGED\n", v.Store, v.Part, when)
			printProblems(w, v.Problems)
		default:
			fmt.Fprintf(w, "verified:  store %s, part %s at %s: %s read, no damage\n", v.Store, v.Part, when, count(v.PacksRead, "pack"))
		}
	}
	for _, s := range rep.Stores {
		switch {
		case slices.ContainsFunc(rep.Verified, func(v daemon.VerifyRecord) bool { return v.Store == s.Name }):
		case s.VerifyDays == 0:
			fmt.Fprintf(w, "verified:  store %s: off (verify_days = 0)\n", s.Name)
		default:
			fmt.Fprintf(w, "verified:  store %s: not read yet (the daemon reads its first part after its next run)\n", s.Name)
		}
	}
	stale := time.Duration(rep.StaleAfter * float64(time.Second))
	fmt.Fprintf(w, "hosts (stale after %s):\n", stale)
	if len(rep.Hosts) == 0 {
		fmt.Fprintln(w, "  no versions stored yet")
	}
	for _, h := range rep.Hosts {
		var flags string
		if h.Stale {
			flags += "  STALE"
		}
		if h.Departed {
			flags += "  LEFT THE CLUSTER"
		}
		if h.Newest.IsZero() {
			fmt.Fprintf(w, "  %-12s no version in any store%s\n", h.Host, flags)
			continue
		}
		if h.StaleAfter > 0 {
			flags += fmt.Sprintf("  (own schedule: stale after %s)", age(h.StaleAfter))
		}
		fmt.Fprintf(w, "  %-12s newest %s (%s ago)%s\n", h.Host, h.Newest.In(loc).Format(layout), age(h.AgeSeconds), flags)
		for _, s := range h.Stores {
			flag := ""
			if s.Stale {
				flag = "  STALE in this store"
			}
			fmt.Fprintf(w, "    store %-10s %s, newest %s ago%s\n", s.Store, count(s.Versions, "version"), age(s.AgeSeconds), flag)
		}
	}
	if rep.LeaderError != "" {
		fmt.Fprintf(w, "note: %s\n", rep.LeaderError)
	}
	for _, e := range rep.StoreErrors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// age formats seconds as a short duration.
func age(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < 0:
		return "in the future " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
