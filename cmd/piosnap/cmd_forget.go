package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/retention"
)

// forgetVersion is one version in `piosnap forget --json`.
type forgetVersion struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`
	Future  bool      `json:"future"`
}

// forgetHost is one host in `piosnap forget --json`.
type forgetHost struct {
	Host     string          `json:"host"`
	Departed bool            `json:"departed"`
	Versions []forgetVersion `json:"versions"`
}

// forgetReport is one store in `piosnap forget --json`.
type forgetReport struct {
	Store  string          `json:"store"`
	DryRun bool            `json:"dry_run"`
	Hosts  []forgetHost    `json:"hosts"`
	Result *store.GCReport `json:"result"`
	Error  string          `json:"error"`
}

// forget plans retention for one store and, unless dryRun, applies it. The
// caller holds the store's lock when dryRun is false. current lists the
// cluster's units (nil when unknown) so departed hosts are flagged.
func (a *app) forget(ctx context.Context, s snapshot.Store, p retention.Policy, hosts []string, current []string, dryRun bool) (*forgetReport, error) {
	rep := &forgetReport{Store: s.Name, DryRun: dryRun, Hosts: []forgetHost{}}
	if p.Empty() {
		return rep, fmt.Errorf("store %q has no retention rules: nothing would be removed; set keep_* under [store.retention] or pass --keep-daily etc", s.Name)
	}
	vs, err := s.Repo.Versions(ctx)
	if err != nil {
		return rep, err
	}
	held, err := s.Repo.HeldVersions(ctx)
	if err != nil {
		return rep, err
	}
	var in []retention.Version
	for _, v := range vs {
		if len(hosts) > 0 && !slices.Contains(hosts, v.Host) {
			continue
		}
		in = append(in, retention.Version{ID: v.ID, Host: v.Host, Time: v.Time, Held: held[v.ID]})
	}
	plan, err := retention.Apply(in, p, a.cfg.Location(), time.Now(), current)
	if err != nil {
		return rep, err
	}
	for _, hp := range plan.Hosts {
		fh := forgetHost{Host: hp.Host, Departed: hp.Departed, Versions: []forgetVersion{}}
		for _, d := range hp.Decisions {
			fh.Versions = append(fh.Versions, forgetVersion{ID: d.Version.ID, Time: d.Version.Time, Keep: d.Keep, Reasons: d.Reasons, Future: d.Future})
		}
		rep.Hosts = append(rep.Hosts, fh)
	}
	if dryRun {
		return rep, nil
	}
	var ids []string
	for _, v := range plan.Removals() {
		ids = append(ids, v.ID)
	}
	rep.Result, err = s.Repo.Forget(ctx, ids)
	return rep, err
}

func printForget(w io.Writer, rep *forgetReport, loc *time.Location) {
	if rep.Error != "" && len(rep.Hosts) == 0 {
		fmt.Fprintf(w, "store %s: FAILED: %s\n", rep.Store, rep.Error)
		return
	}
	for _, h := range rep.Hosts {
		flag := ""
		if h.Departed {
			flag = "  (no longer in the cluster: all its versions are kept)"
		}
		fmt.Fprintf(w, "store %s, host %s%s\n", rep.Store, h.Host, flag)
		for _, v := range h.Versions {
			action := "remove"
			if v.Keep {
				action = "keep"
			}
			fmt.Fprintf(w, "  %-6s %s  %s  %s\n", action, v.ID[:8], v.Time.In(loc).Format("2006-01-02 15:04 MST"), strings.Join(v.Reasons, ", "))
		}
	}
	switch {
	case rep.DryRun:
		n := 0
		for _, h := range rep.Hosts {
			for _, v := range h.Versions {
				if !v.Keep {
					n++
				}
			}
		}
		fmt.Fprintf(w, "store %s: dry run, %s would be removed\n", rep.Store, count(n, "version"))
	case rep.Result != nil:
		g := rep.Result
		fmt.Fprintf(w, "store %s: removed %s and %s, freed %s", rep.Store, count(g.VersionsDeleted, "version"), count(g.ChunksDeleted, "blob"), web.HumanBytes(g.BytesFreed))
		if g.PacksWritten > 0 {
			fmt.Fprintf(w, " (repacked the used blobs of mostly unused packs into %d new packs, %s)", g.PacksWritten, web.HumanBytes(g.BytesRepacked))
		}
		fmt.Fprintln(w)
	}
}

func cmdForget(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("forget", "[--dry-run] [--json] [--host H]... [--store S]... [--keep-daily N ...]; or --version ID... [--store S]... [--dry-run] [--json]")
	dryRun := fs.Bool("dry-run", false, "show what would be removed and why, remove nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	var hosts, storeNames stringList
	fs.Var(&hosts, "host", "only this unit's versions (repeatable)")
	fs.Var(&storeNames, "store", "only this store (repeatable; default: every store)")
	includeDeparted := fs.Bool("include-departed", false, "apply the rules to hosts that left the cluster too (by default all their versions are kept)")
	var versions stringList
	fs.Var(&versions, "version", "remove this version, as `piosnap list` shows it (at least 8 characters; repeatable), instead of applying the retention rules")
	var over retentionFlags
	over.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(versions) > 0 {
		switch {
		case over.set:
			return usageErrorf("--version removes the versions it names; the --keep-* flags apply retention rules: give one or the other")
		case len(hosts) > 0 || *includeDeparted:
			return usageErrorf("--version names versions exactly; --host and --include-departed apply to retention rules only: drop them")
		}
		return a.forgetVersions(ctx, versions, storeNames, *dryRun, *asJSON)
	}
	var override *retention.Policy
	if over.set {
		p, err := over.policy()
		if err != nil {
			return withCode(exitUsage, err)
		}
		override = &p
	}
	stores, err := a.openReadable(ctx, storeNames...)
	if err != nil {
		return err
	}
	var current []string // nil: membership unknown, nobody is treated as departed
	if !*includeDeparted {
		current = a.currentUnits(ctx)
	}
	reports := []*forgetReport{}
	var errs []error
	for _, s := range stores {
		cs, _ := a.cfg.Store(s.Name)
		p, err := cs.Retention.Policy()
		if err != nil {
			return withCode(exitUsage, err)
		}
		if override != nil {
			p = *override
		}
		if s.Err != nil {
			rep := &forgetReport{Store: s.Name, DryRun: *dryRun, Error: s.Err.Error(), Hosts: []forgetHost{}}
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
			reports = append(reports, rep)
			if !*asJSON {
				printForget(a.env.Stdout, rep, a.cfg.Location())
			}
			continue
		}
		var rep *forgetReport
		if *dryRun {
			rep, err = a.forget(ctx, s, p, hosts, current, true)
		} else {
			unlock, lerr := a.lockAll(ctx, []snapshot.Store{s}, "forget")
			switch {
			case lerr == nil:
				rep, err = a.forget(ctx, s, p, hosts, current, false)
				unlock()
			case errors.Is(lerr, store.ErrLocked) || ctx.Err() != nil:
				return lerr
			default:
				rep, err = &forgetReport{Store: s.Name, Hosts: []forgetHost{}}, lerr
			}
		}
		if err != nil {
			rep.Error = err.Error()
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
		}
		reports = append(reports, rep)
		if !*asJSON {
			printForget(a.env.Stdout, rep, a.cfg.Location())
		}
	}
	if *asJSON {
		if err := writeJSON(a.env.Stdout, reports); err != nil {
			return err
		}
	}
	return storesVerdict(errs, len(stores))
}

// namedReason is the reason `forget --version` gives for each removal.
const namedReason = "named by --version"

// forgetVersions removes the versions ids name from every store of
// storeNames (default: every store) that holds them, then collects the
// garbage as a retention run does. Nothing is removed unless every ID names
// exactly one version in some store and none of them is held by a restore
// or export.
func (a *app) forgetVersions(ctx context.Context, ids, storeNames []string, dryRun, asJSON bool) error {
	for _, id := range ids {
		if len(id) < 8 {
			return usageErrorf("--version %q: give at least 8 characters of the ID, as `piosnap list` shows it", id)
		}
	}
	stores, err := a.openReadable(ctx, storeNames...)
	if err != nil {
		return err
	}
	// Resolve every ID in every store before anything is removed.
	type named struct {
		s   snapshot.Store
		vs  []*store.Version
		rep *forgetReport
	}
	var plans []named
	found := make(map[string][]string) // ID prefix -> stores holding it
	reports := []*forgetReport{}
	var errs, unreadable []error
	for _, s := range stores {
		rep := &forgetReport{Store: s.Name, DryRun: dryRun, Hosts: []forgetHost{}}
		if s.Err == nil {
			var all []*store.Version
			all, err = s.Repo.Versions(ctx)
			if err == nil {
				var vs []*store.Version
				for _, id := range ids {
					var match []string
					for _, v := range all {
						if strings.HasPrefix(v.ID, id) {
							match = append(match, v.ShortID())
							if !slices.Contains(vs, v) {
								vs = append(vs, v)
							}
						}
					}
					if len(match) > 1 {
						return usageErrorf("--version %q is ambiguous in store %s (%s): give more characters of the ID, as `piosnap list` shows it (nothing was removed)", id, s.Name, strings.Join(match, ", "))
					}
					if len(match) == 1 {
						found[id] = append(found[id], s.Name)
					}
				}
				if len(vs) > 0 {
					plans = append(plans, named{s: s, vs: vs, rep: rep})
				}
				continue
			}
		} else {
			err = s.Err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Error = err.Error()
		reports = append(reports, rep)
		unreadable = append(unreadable, fmt.Errorf("store %q: %w", s.Name, err))
	}
	for _, id := range ids {
		if len(found[id]) == 0 {
			err := usageErrorf("no version %q in any store: see `piosnap list` for the IDs (nothing was removed)", id)
			if len(unreadable) > 0 {
				err = withCode(exitUsage, fmt.Errorf("%w; not searched, as it could not be read: %w", err, errors.Join(unreadable...)))
			}
			return err
		}
	}
	for _, p := range plans {
		if err := refuseHeld(ctx, p.s, p.vs); err != nil {
			return err
		}
	}
	errs = append(errs, unreadable...)
	for _, p := range plans {
		rep := p.rep
		for _, v := range p.vs {
			rep.Hosts = append(rep.Hosts, forgetHost{Host: v.Host, Versions: []forgetVersion{{ID: v.ID, Time: v.Time, Reasons: []string{namedReason}}}})
		}
		if !dryRun {
			err := a.forgetNamed(ctx, p.s, p.vs, rep)
			if errors.Is(err, store.ErrLocked) || ctx.Err() != nil {
				return err
			}
			if err != nil {
				rep.Error = err.Error()
				errs = append(errs, fmt.Errorf("store %q: %w", p.s.Name, err))
			}
		}
		reports = append(reports, rep)
	}
	if asJSON {
		if err := writeJSON(a.env.Stdout, reports); err != nil {
			return err
		}
	} else {
		for _, rep := range reports {
			printForget(a.env.Stdout, rep, a.cfg.Location())
		}
	}
	return storesVerdict(errs, len(stores))
}

// forgetNamed removes vs from store s under its exclusive lock, checking
// again, now that no other forget can run, that no restore holds them.
func (a *app) forgetNamed(ctx context.Context, s snapshot.Store, vs []*store.Version, rep *forgetReport) error {
	unlock, err := a.lockAll(ctx, []snapshot.Store{s}, "forget")
	if err != nil {
		return err
	}
	defer unlock()
	if err := refuseHeld(ctx, s, vs); err != nil {
		return err
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	rep.Result, err = s.Repo.Forget(ctx, ids)
	return err
}

// refuseHeld fails, naming the holder, when a restore or export holds one
// of vs in store s.
func refuseHeld(ctx context.Context, s snapshot.Store, vs []*store.Version) error {
	locks, err := s.Repo.Locks(ctx)
	if err != nil {
		return fmt.Errorf("store %q: %w", s.Name, err)
	}
	for _, l := range locks {
		for _, v := range vs {
			if l.Kind == store.LockHold && l.Version == v.ID {
				return fmt.Errorf("version %s of %s in store %s is in use by a %s (process %d on %s): nothing was removed; run the forget again once it has finished", v.ShortID(), v.Host, s.Name, l.Purpose, l.PID, l.Hostname)
			}
		}
	}
	return nil
}

// currentUnits asks the leader for its units, or returns nil (unknown) if it
// cannot be reached: retention then flags no host as departed.
func (a *app) currentUnits(ctx context.Context) []string {
	if !a.cfg.PioreactorEnabled() {
		var names []string
		for _, s := range a.cfg.Sources {
			names = append(names, s.Name)
		}
		return names
	}
	cl, err := a.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	units, err := cl.Units(ctx)
	if err != nil {
		a.log.Warn("cannot ask the leader for its units; hosts that left the cluster are not flagged", "err", err)
		return nil
	}
	for _, s := range a.cfg.Sources {
		units = append(units, s.Name)
	}
	return units
}

// retentionFlags are forget's --keep-* overrides.
type retentionFlags struct {
	set                                                 bool
	last, hourly, daily, weekly, monthly, yrs           int
	within, wHourly, wDaily, wWeekly, wMonthly, wYearly string
}

func (r *retentionFlags) register(fs *flag.FlagSet) {
	ints := []struct {
		name string
		dst  *int
	}{{"keep-last", &r.last}, {"keep-hourly", &r.hourly}, {"keep-daily", &r.daily}, {"keep-weekly", &r.weekly}, {"keep-monthly", &r.monthly}, {"keep-yearly", &r.yrs}}
	for _, f := range ints {
		fs.Func(f.name, "keep this many (-1 unlimited); any --keep-* flag replaces the store's configured policy", func(s string) error {
			r.set = true
			_, err := fmt.Sscan(s, f.dst)
			return err
		})
	}
	strs := []struct {
		name string
		dst  *string
	}{{"keep-within", &r.within}, {"keep-within-hourly", &r.wHourly}, {"keep-within-daily", &r.wDaily}, {"keep-within-weekly", &r.wWeekly}, {"keep-within-monthly", &r.wMonthly}, {"keep-within-yearly", &r.wYearly}}
	for _, f := range strs {
		fs.Func(f.name, "duration NyNmoNdNh (months are mo), measured from each host's newest version", func(s string) error {
			r.set = true
			*f.dst = s
			return nil
		})
	}
}

func (r *retentionFlags) policy() (retention.Policy, error) {
	p := retention.Policy{Last: r.last, Hourly: r.hourly, Daily: r.daily, Weekly: r.weekly, Monthly: r.monthly, Yearly: r.yrs}
	for _, d := range []struct {
		flag, text string
		dst        *retention.Duration
	}{{"keep-within", r.within, &p.Within}, {"keep-within-hourly", r.wHourly, &p.WithinHourly}, {"keep-within-daily", r.wDaily, &p.WithinDaily},
		{"keep-within-weekly", r.wWeekly, &p.WithinWeekly}, {"keep-within-monthly", r.wMonthly, &p.WithinMonthly}, {"keep-within-yearly", r.wYearly, &p.WithinYearly}} {
		if d.text == "" {
			continue
		}
		v, err := retention.ParseDuration(d.text)
		if err != nil {
			return p, fmt.Errorf("--%s: %w", d.flag, err)
		}
		*d.dst = v
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}
