package main

import (
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler"
)

// ownScheduleGrace is how long past its schedule's interval a source with
// a schedule of its own may go without a version before it is stale: the
// same margin as the default status.stale_after (36 h) gives a daily one.
const ownScheduleGrace = 12 * time.Hour

// staleness says how old a host's newest version may be before the host
// is stale.
type staleness struct {
	// after is status.stale_after.
	after time.Duration
	// own holds the hosts on schedules of their own that may be older.
	own map[string]time.Duration
}

// of returns how old host's newest version may be.
func (s staleness) of(host string) time.Duration {
	if d, ok := s.own[host]; ok {
		return d
	}
	return s.after
}

// stalenessOf is status.stale_after for every host, except that a source
// on a schedule of its own (a weekly one, say) is stale only once its
// newest version is older than its schedule's interval and 12 hours more.
func stalenessOf(cfg *config.Config, now time.Time) staleness {
	s := staleness{after: cfg.Status.StaleAfter.Duration, own: map[string]time.Duration{}}
	for host, sched := range cfg.OwnSchedules() {
		if d := scheduler.Interval(sched, cfg.Location(), now) + ownScheduleGrace; d > s.after {
			s.own[host] = d
		}
	}
	return s
}
