package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The guard reasons. Rule reasons are described in the package documentation.
const (
	// ReasonNewest keeps a host's newest version that is not future-dated
	// when no rule kept it (a future-dated version took its slot).
	ReasonNewest = "newest"
	// ReasonHeld keeps a version that is being restored or exported.
	ReasonHeld = "held"
	// ReasonFuture keeps a version dated after the planning time.
	ReasonFuture = "future-dated"
	// ReasonDeparted keeps every version of a host that left the cluster.
	ReasonDeparted = "departed"
)

// Version is one stored version of one host's ~/.pioreactor, as retention
// sees it.
type Version struct {
	// ID names the version in the store; it orders versions with equal
	// times.
	ID string
	// Host is the Pioreactor unit the version belongs to; policies apply to
	// each host separately.
	Host string
	// Time is when the version was taken.
	Time time.Time
	// Held marks a version being restored or exported; it is never removed.
	Held bool
}

// Decision is the verdict on one version.
type Decision struct {
	// Version is the version decided on.
	Version Version
	// Keep is true if the version stays, i.e. Reasons is not empty.
	Keep bool
	// Reasons lists every rule and guard that keeps the version, in a
	// stable order: keep_within, the counted rules (last, hourly, daily,
	// weekly, monthly, yearly), the within-period rules, then the guards.
	Reasons []string
	// Future is true if the version is dated after the planning time.
	Future bool
}

// HostPlan is the plan for one host.
type HostPlan struct {
	// Host is the host name.
	Host string
	// Departed is true if the host is no longer in the cluster; all its
	// versions are kept.
	Departed bool
	// Decisions holds one decision per version, newest first.
	Decisions []Decision
}

// Plan is the result of Apply: one HostPlan per host, sorted by host name.
type Plan struct {
	// Hosts holds the per-host plans, sorted by host name.
	Hosts []HostPlan
}

// Removals returns the versions the plan removes, host by host, newest
// first.
func (p Plan) Removals() []Version {
	var out []Version
	for _, h := range p.Hosts {
		for _, d := range h.Decisions {
			if !d.Keep {
				out = append(out, d.Version)
			}
		}
	}
	return out
}

// Apply decides, for every version, whether policy p keeps it. It is a pure
// function of its arguments.
//
// Versions are grouped by Host and each group is planned on its own, with
// restic's forget semantics (see the package documentation). Calendar buckets
// are computed in loc, which must be the zone the versions were scheduled in
// (time.Local for the system zone). now serves only to recognise
// future-dated versions (Time after now). current lists the hosts in the
// cluster now; a host not in it is flagged Departed and keeps all its
// versions. A nil current means "unknown" and flags no host.
//
// Apply fails if p does not validate (an empty policy is refused with
// ErrEmptyPolicy), if loc is nil, or if a version has no host.
func Apply(versions []Version, p Policy, loc *time.Location, now time.Time, current []string) (Plan, error) {
	if err := p.Validate(); err != nil {
		return Plan{}, fmt.Errorf("plan retention: %w", err)
	}
	if loc == nil {
		return Plan{}, errors.New("plan retention: time zone is nil; pass the schedule's zone, or time.Local for the system zone")
	}
	for _, v := range versions {
		if v.Host == "" {
			return Plan{}, fmt.Errorf("plan retention: version %q has no host; every version must name the unit it belongs to", v.ID)
		}
	}
	var inCluster map[string]bool
	if current != nil {
		inCluster = make(map[string]bool, len(current))
		for _, h := range current {
			inCluster[h] = true
		}
	}

	// Order by host, then newest first, then ID, through an index so that
	// the large Version values move only once, into their decisions.
	order := make([]int32, len(versions))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &versions[i], &versions[j]
		if c := cmp.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(i, j) // input order: the sort is stable
	})
	all := make([]Decision, len(versions))
	for i, j := range order {
		all[i].Version = versions[j]
	}

	var plan Plan
	for start := 0; start < len(all); {
		host := all[start].Version.Host
		end := start + 1
		for end < len(all) && all[end].Version.Host == host {
			end++
		}
		hp := HostPlan{Host: host, Departed: inCluster != nil && !inCluster[host], Decisions: all[start:end:end]}
		planHost(hp.Decisions, p, loc, now, hp.Departed)
		plan.Hosts = append(plan.Hosts, hp)
		start = end
	}
	return plan, nil
}

// bucketFunc maps a version's time (in the planning zone) and its position in
// the newest-first list to the bucket it falls in.
type bucketFunc func(t time.Time, nr int) int

// bucketLast puts every version in a bucket of its own.
func bucketLast(_ time.Time, nr int) int { return nr }

// bucketHour is YYYYMMDDHH.
func bucketHour(t time.Time, _ int) int { return bucketDay(t, 0)*100 + t.Hour() }

// bucketDay is YYYYMMDD.
func bucketDay(t time.Time, _ int) int {
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// bucketISOWeek is the ISO week-year times 100 plus the ISO week, so
// 2023-01-01 (a Sunday) falls in 202252.
func bucketISOWeek(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}

// bucketMonth is YYYYMM.
func bucketMonth(t time.Time, _ int) int {
	y, m, _ := t.Date()
	return y*100 + int(m)
}

// bucketYear is YYYY.
func bucketYear(t time.Time, _ int) int { return t.Year() }

// counter tracks one counted rule while walking a host's versions.
type counter struct {
	count
	used int
	last int
	seen bool
}

// periodTracker tracks one within-period rule while walking a host's
// versions.
type periodTracker struct {
	within
	cutoff time.Time
	last   int
	seen   bool
}

// planHost fills in the decisions of one host, whose versions are already in
// place, newest first.
func planHost(out []Decision, p Policy, loc *time.Location, now time.Time, departed bool) {
	newest := -1
	for i := range out {
		if !out[i].Version.Time.After(now) {
			newest = i
			break
		}
	}

	var counters []counter
	for _, c := range p.counts() {
		if c.n != 0 {
			counters = append(counters, counter{count: c})
		}
	}
	var withins []periodTracker
	if newest >= 0 {
		// The window's start is calendar arithmetic in loc, as restic does
		// when run in that zone: "7d" before 01:30 is 01:30 seven days
		// earlier, even across a DST change.
		latest := out[newest].Version.Time.In(loc)
		for _, w := range p.withins() {
			if !w.d.Zero() {
				withins = append(withins, periodTracker{within: w, cutoff: w.d.before(latest)})
			}
		}
	}

	for nr := range out {
		v := out[nr].Version
		t := v.Time.In(loc)
		var reasons []string
		for i := range withins {
			w := &withins[i]
			if w.bucket == nil && v.Time.After(w.cutoff) {
				reasons = append(reasons, "within "+w.d.String())
			}
		}
		for i := range counters {
			c := &counters[i]
			if c.n > 0 && c.used == c.n {
				continue
			}
			key := c.bucket(t, nr)
			if c.seen && key == c.last && nr != len(out)-1 {
				continue
			}
			prefix := ""
			if c.seen && key == c.last {
				prefix = "oldest "
			}
			c.seen, c.last = true, key
			c.used++
			reasons = append(reasons, prefix+c.name+" "+strconv.Itoa(c.used)+"/"+limit(c.n))
		}
		for i := range withins {
			w := &withins[i]
			if w.bucket == nil || !v.Time.After(w.cutoff) {
				continue
			}
			key := w.bucket(t, nr)
			if w.seen && key == w.last {
				continue
			}
			w.seen, w.last = true, key
			reasons = append(reasons, w.name+" within "+w.d.String())
		}
		future := v.Time.After(now)
		if future {
			reasons = append(reasons, ReasonFuture)
		}
		if nr == newest && len(reasons) == 0 {
			reasons = append(reasons, ReasonNewest)
		}
		if v.Held {
			reasons = append(reasons, ReasonHeld)
		}
		if departed {
			reasons = append(reasons, ReasonDeparted)
		}
		out[nr].Keep, out[nr].Reasons, out[nr].Future = len(reasons) > 0, reasons, future
	}
}

// limit formats a rule's count for a reason: "7", or "unlimited".
func limit(n int) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}
