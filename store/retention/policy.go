package retention

import (
	"errors"
	"fmt"
)

// Unlimited is the count that keeps every bucket of a rule, e.g.
// Policy{Daily: Unlimited} keeps the newest version of every day.
const Unlimited = -1

// ErrEmptyPolicy is returned (wrapped) by Policy.Validate and Apply when no
// rule is set: such a policy would keep nothing, so it is refused rather than
// read as "delete everything".
var ErrEmptyPolicy = errors.New("retention policy is empty")

// Policy says which versions of each host to keep. The counts keep the
// newest version of that many most recent calendar buckets (hours, days, ISO
// weeks, months, years) that hold versions; Last keeps that many newest
// versions. A count of 0 switches the rule off and Unlimited (-1) keeps every
// bucket. Within keeps every version less than that duration older than the
// host's newest version; the Within<Period> rules keep the newest version of
// every bucket less than that duration older than the host's newest version.
// The zero Duration switches a within-rule off. Rules combine by union.
type Policy struct {
	// Last keeps the newest Last versions (keep_last).
	Last int
	// Hourly, Daily, Weekly, Monthly and Yearly keep the newest version of
	// that many most recent hours, days, ISO weeks, months and years that
	// hold versions (keep_hourly … keep_yearly).
	Hourly, Daily, Weekly, Monthly, Yearly int
	// Within keeps every version newer than this before the newest
	// (keep_within).
	Within Duration
	// WithinHourly … WithinYearly keep the newest version of each hour, day,
	// ISO week, month and year newer than this before the newest
	// (keep_within_hourly … keep_within_yearly).
	WithinHourly, WithinDaily, WithinWeekly, WithinMonthly, WithinYearly Duration
}

// Empty reports whether no rule is set, i.e. every count is 0 and every
// duration is zero.
func (p Policy) Empty() bool { return p == Policy{} }

// Validate checks that every count is 0, positive or Unlimited, that no
// duration has a negative unit, and that at least one rule is set. Errors
// name the configuration key, e.g. keep_daily.
func (p Policy) Validate() error {
	var errs []error
	for _, c := range p.counts() {
		if c.n < Unlimited {
			errs = append(errs, fmt.Errorf("retention %s is %d: use 0 (off), a positive count, or -1 (unlimited)", c.key, c.n))
		}
	}
	for _, w := range p.withins() {
		if w.d.negative() {
			errs = append(errs, fmt.Errorf("retention %s has a negative unit (%v): durations count back and must not be negative", w.key, w.d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if p.Empty() {
		return fmt.Errorf("%w: no version would be removed; set at least one keep_* rule, e.g. keep_daily = 7", ErrEmptyPolicy)
	}
	return nil
}

// count is one counted rule of a policy with its configuration key.
type count struct {
	key, name string
	n         int
	bucket    bucketFunc
}

// within is one duration rule of a policy with its configuration key. A nil
// bucket means "every version" (keep_within).
type within struct {
	key, name string
	d         Duration
	bucket    bucketFunc
}

// counts returns the counted rules in restic's evaluation order.
func (p Policy) counts() [6]count {
	return [6]count{
		{"keep_last", "last", p.Last, bucketLast},
		{"keep_hourly", "hourly", p.Hourly, bucketHour},
		{"keep_daily", "daily", p.Daily, bucketDay},
		{"keep_weekly", "weekly", p.Weekly, bucketISOWeek},
		{"keep_monthly", "monthly", p.Monthly, bucketMonth},
		{"keep_yearly", "yearly", p.Yearly, bucketYear},
	}
}

// withins returns the duration rules in restic's evaluation order.
func (p Policy) withins() [6]within {
	return [6]within{
		{"keep_within", "", p.Within, nil},
		{"keep_within_hourly", "hourly", p.WithinHourly, bucketHour},
		{"keep_within_daily", "daily", p.WithinDaily, bucketDay},
		{"keep_within_weekly", "weekly", p.WithinWeekly, bucketISOWeek},
		{"keep_within_monthly", "monthly", p.WithinMonthly, bucketMonth},
		{"keep_within_yearly", "yearly", p.WithinYearly, bucketYear},
	}
}
