package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a calendar duration written "NyNmoNdNh" (restic's "NyNmNdNh",
// with months as "mo"): a number of years, months, days and hours. Years,
// months and days are calendar units, counted back in the planning zone as
// time.AddDate does (a month back from 31 March is 3 March; a day back across
// a DST change is 23 or 25 hours); hours are elapsed hours. The zero Duration
// switches a within-rule off.
type Duration struct{ Years, Months, Days, Hours int }

// ParseDuration parses a duration such as "1y6mo", "7d" or "36h": one or
// more groups of decimal digits followed by one unit, y (years), mo
// (months), d (days) or h (hours), each unit at most once. Weeks are not a
// unit; write "7d" for one week. restic's "m" for months is refused with a
// message that asks for "mo": in piosnap's other durations (lock_wait,
// jitter) "10m" is ten minutes, and "30m" must not mean 30 months here.
func ParseDuration(s string) (Duration, error) {
	var d Duration
	if s == "" {
		return d, fmt.Errorf("retention duration is empty: write it as NyNmoNdNh, e.g. \"7d\" or \"1y6mo\"")
	}
	seen := map[string]bool{}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return Duration{}, fmt.Errorf("retention duration %q: expected a number at %q; write it as NyNmoNdNh, e.g. \"7d\"", s, rest)
		}
		num := rest[:i]
		if i == len(rest) {
			return Duration{}, fmt.Errorf("retention duration %q: number %s has no unit; use y, mo, d or h", s, num)
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return Duration{}, fmt.Errorf("retention duration %q: number %s is too large", s, num)
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit := rest[i:j]
		if unit == "m" {
			return Duration{}, fmt.Errorf("retention duration %q: %q is ambiguous (months in restic, minutes in lock_wait and jitter): write %q for %s months", s, num+unit, num+"mo", num)
		}
		field := unitField(&d, unit)
		if field == nil {
			return Duration{}, fmt.Errorf("retention duration %q: unit %q unknown; use y, mo, d or h", s, unit)
		}
		if seen[unit] {
			return Duration{}, fmt.Errorf("retention duration %q: unit %q given twice; write each unit once, e.g. \"1y6mo\"", s, unit)
		}
		seen[unit] = true
		*field = n
		rest = rest[j:]
	}
	return d, nil
}

// unitField returns the field of d that unit names, or nil if unit is not one
// of y, mo, d, h.
func unitField(d *Duration, unit string) *int {
	switch unit {
	case "y":
		return &d.Years
	case "mo":
		return &d.Months
	case "d":
		return &d.Days
	case "h":
		return &d.Hours
	}
	return nil
}

// String formats d as ParseDuration reads it, omitting zero units: "1y6mo",
// "7d". The zero Duration is "0d".
func (d Duration) String() string {
	var b strings.Builder
	for _, u := range [...]struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "mo"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if u.n != 0 {
			b.WriteString(strconv.Itoa(u.n))
			b.WriteString(u.unit)
		}
	}
	if b.Len() == 0 {
		return "0d"
	}
	return b.String()
}

// Zero reports whether d is the zero Duration, i.e. the rule it sets is off.
func (d Duration) Zero() bool { return d == Duration{} }

// negative reports whether any unit of d is negative.
func (d Duration) negative() bool {
	return d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0
}

// Before returns the instant d before t, as the within-rules count back.
func (d Duration) Before(t time.Time) time.Time { return d.before(t) }

// before returns the instant d before t, computed as restic does: calendar
// arithmetic in t's location, then the hours subtracted as elapsed time.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}
