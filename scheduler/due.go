package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Due reports whether a backup should run at now, and why or why not.
// newest maps each host to the time of its newest complete version; a host
// without versions may simply be absent.
//
// It refuses to run while now is earlier than the newest stored version,
// since the clock has then not been set yet. Otherwise a run is due when
// no version is stored at all, or when some host's newest version is
// older than the most recent slot at or before now. One run covers any
// number of missed slots.
func Due(now time.Time, newest map[string]time.Time, sched cron.Schedule) (run bool, reason string) {
	newestHost, newestAt := newestOf(newest)
	if now.Before(newestAt) {
		return false, fmt.Sprintf("clock %s is earlier than the newest stored version %s (host %s): waiting for the time to be set (NTP / Pioreactor's clock sync)",
			now.UTC().Format(time.RFC3339), newestAt.UTC().Format(time.RFC3339), newestHost)
	}
	slot := Prev(sched, now)
	if len(newest) == 0 {
		return true, "no version stored yet"
	}
	if slot.IsZero() {
		return false, "the schedule has no slot before now"
	}
	var stale []string
	for h, t := range newest {
		if t.Before(slot) {
			stale = append(stale, h)
		}
	}
	if len(stale) == 0 {
		return false, fmt.Sprintf("every host has a version from the slot %s or later", slot.UTC().Format(time.RFC3339))
	}
	slices.Sort(stale)
	return true, fmt.Sprintf("the newest version of %s is older than the slot %s", strings.Join(stale, ", "), slot.UTC().Format(time.RFC3339))
}

// DueHost reports whether a host with a schedule of its own should be
// backed up, given the time of its newest complete version (zero for none)
// and the most recent slot of its schedule at or before now (zero for
// none), and why or why not.
func DueHost(newest time.Time, host string, slot time.Time) (run bool, reason string) {
	switch {
	case slot.IsZero():
		return false, fmt.Sprintf("the schedule of %s has no slot before now", host)
	case newest.IsZero():
		return true, fmt.Sprintf("no version of %s stored yet", host)
	case newest.Before(slot):
		return true, fmt.Sprintf("the newest version of %s is older than the slot %s of its own schedule", host, slot.UTC().Format(time.RFC3339))
	}
	return false, fmt.Sprintf("%s has a version from the slot %s of its own schedule or later", host, slot.UTC().Format(time.RFC3339))
}
