package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// maxLookback bounds how far [Prev] searches into the past. Eight years
// covers the sparsest cron expression, 29 February on a given weekday.
const maxLookback = 8 * 366 * 24 * time.Hour

// ParseSchedule parses spec, a five-field cron expression ("30 2 * * *") or
// one of the descriptors @yearly, @annually, @monthly, @weekly, @daily,
// @midnight and @hourly, and returns a schedule evaluated on the wall clock
// of zone (UTC when zone is nil).
//
// The returned schedule follows local time across daylight-saving
// changes: a slot whose wall time does not exist (the hour skipped in
// spring) runs that many minutes later, once; a slot whose wall time
// occurs twice (the hour repeated in autumn) runs once, at the first
// occurrence. @every intervals and CRON_TZ= prefixes are refused: slots
// must be calendar times, and the zone comes from the configuration.
func ParseSchedule(spec string, zone *time.Location) (cron.Schedule, error) {
	if zone == nil {
		zone = time.UTC
	}
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return nil, errors.New(`schedule is empty: set "schedule" to a cron expression such as "30 2 * * *" or to "@daily"`)
	case strings.HasPrefix(s, "@every"):
		return nil, fmt.Errorf(`schedule %q: @every intervals are not supported: use a cron expression such as "0 */6 * * *"`, spec)
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, fmt.Errorf(`schedule %q: a time zone prefix is not allowed here: remove it and set "zone" instead`, spec)
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	parsed, err := p.Parse(s)
	if err != nil {
		return nil, fmt.Errorf(`schedule %q: %w (want five fields "minute hour day-of-month month day-of-week", or a descriptor such as "@daily")`, spec, err)
	}
	spc, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf(`schedule %q: unsupported kind of schedule %T: use a cron expression`, spec, parsed)
	}
	// The cron fields are matched against wall-clock readings; see wall.
	spc.Location = time.UTC
	if spc.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf(`schedule %q never matches a date: check the day-of-month and month fields`, spec)
	}
	return wallSchedule{spec: spc, zone: zone}, nil
}

// wallSchedule evaluates a cron expression on the wall clock of zone.
// Wall-clock readings are represented as time.Time values in UTC whose
// fields are the local fields, so the expression never sees a gap or a
// repeated hour; the conversion back to an instant resolves both.
type wallSchedule struct {
	spec *cron.SpecSchedule
	zone *time.Location
}

// Next returns the first slot strictly after t, or the zero time if there
// is none.
func (w wallSchedule) Next(t time.Time) time.Time {
	cur := wall(t, w.zone)
	// A few iterations suffice: slots are skipped only when the wall
	// clock runs backwards in autumn.
	for range 10000 {
		cur = w.spec.Next(cur)
		if cur.IsZero() {
			return time.Time{}
		}
		if inst := fromWall(cur, w.zone); inst.After(t) {
			return inst
		}
	}
	return time.Time{}
}

// wall returns the wall-clock reading of t in zone, as a UTC time.
func wall(t time.Time, zone *time.Location) time.Time {
	l := t.In(zone)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// fromWall returns the instant at which the clocks in zone read w. When w
// occurs twice it returns the first occurrence; when w is skipped it
// returns the instant the reading would have had under the offset in
// force before the skip, that is w shifted forward by the gap.
func fromWall(w time.Time, zone *time.Location) time.Time {
	_, before := w.Add(-36 * time.Hour).In(zone).Zone()
	_, after := w.Add(36 * time.Hour).In(zone).Zone()
	a := w.Add(-time.Duration(before) * time.Second)
	b := w.Add(-time.Duration(after) * time.Second)
	aOK := wall(a, zone).Equal(w)
	bOK := wall(b, zone).Equal(w)
	switch {
	case aOK && bOK:
		if b.Before(a) {
			return b
		}
		return a
	case aOK:
		return a
	case bOK:
		return b
	case before != after:
		// A skipped reading; a uses the earlier offset.
		return a
	default:
		// More than one transition within 36 hours: let the time
		// package choose.
		return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), zone)
	}
}

// Prev returns the most recent slot of sched at or before now, or the
// zero time if sched has no slot in the eight years before now.
//
// robfig/cron only computes the next slot, so Prev searches backwards
// with a doubling window and then walks forward, which is correct for any
// schedule whose Next is monotonic, including across DST changes.
func Prev(sched cron.Schedule, now time.Time) time.Time {
	for d := time.Minute; d <= 2*maxLookback; d *= 2 {
		t := sched.Next(now.Add(-d))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := sched.Next(t)
			if n.IsZero() || n.After(now) {
				return t
			}
			t = n
		}
	}
	return time.Time{}
}

// Interval is the time between the slots of schedule (cron or descriptor,
// in zone) around now; 0 when the schedule cannot be parsed or has no slot
// on one side of now.
func Interval(schedule string, zone *time.Location, now time.Time) time.Duration {
	sched, err := ParseSchedule(schedule, zone)
	if err != nil {
		return 0
	}
	prev, next := Prev(sched, now), sched.Next(now)
	if prev.IsZero() || next.IsZero() {
		return 0
	}
	return next.Sub(prev)
}
