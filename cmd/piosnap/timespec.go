package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// latest stands for "the newest version, whatever its date".
var latest = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// parseWhen reads a --at TIME: RFC 3339; a date (the end of that day in loc);
// "2006-01-02 15:04" in loc; "latest"; "today" (now); "yesterday" (the end
// of yesterday); or "<N>h-ago", "<N>d-ago", "<N>w-ago".
func parseWhen(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	now = now.In(loc)
	endOfDay := func(t time.Time) time.Time {
		y, m, d := t.Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
	}
	switch strings.ToLower(s) {
	case "latest", "newest":
		return latest, nil
	case "now", "today":
		return now, nil
	case "yesterday":
		return endOfDay(now.AddDate(0, 0, -1)), nil
	}
	if n, ok := strings.CutSuffix(strings.ToLower(s), "-ago"); ok && len(n) >= 2 {
		count, err := strconv.Atoi(n[:len(n)-1])
		if err == nil && count >= 0 {
			switch n[len(n)-1] {
			case 'h':
				return now.Add(-time.Duration(count) * time.Hour), nil
			case 'd':
				return now.AddDate(0, 0, -count), nil
			case 'w':
				return now.AddDate(0, 0, -7*count), nil
			}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return endOfDay(t), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q not understood: use latest, yesterday, 3d-ago, 12h-ago, 2w-ago, a date such as 2026-05-01 (the end of that day, %s), \"2026-05-01 14:00\", or RFC 3339", s, loc)
}
