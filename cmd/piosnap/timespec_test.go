package main

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 29, 12, 0, 0, 0, berlin) // the day clocks go forward
	tests := []struct {
		in   string
		want time.Time
	}{
		{"latest", latest},
		{"today", now},
		{"yesterday", time.Date(2026, 3, 28, 23, 59, 59, 999999999, berlin)},
		{"3d-ago", time.Date(2026, 3, 26, 12, 0, 0, 0, berlin)},
		{"12h-ago", now.Add(-12 * time.Hour)},
		{"1w-ago", time.Date(2026, 3, 22, 12, 0, 0, 0, berlin)},
		{"2026-03-01", time.Date(2026, 3, 1, 23, 59, 59, 999999999, berlin)},
		{"2026-03-29", time.Date(2026, 3, 29, 23, 59, 59, 999999999, berlin)},
		{"2026-03-01 14:30", time.Date(2026, 3, 1, 14, 30, 0, 0, berlin)},
		{"2026-03-01T14:30:00Z", time.Date(2026, 3, 1, 14, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now, berlin)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "tomorrow", "3x-ago", "-3d-ago", "2026-13-01", "d-ago"} {
		if _, err := parseWhen(bad, now, berlin); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}

func TestStatusVerdict(t *testing.T) {
	tests := []struct {
		name string
		rep  statusReport
		want int
	}{
		{"fresh", statusReport{Hosts: []hostStatus{{Host: "w1"}}}, exitOK},
		{"stale", statusReport{Hosts: []hostStatus{{Host: "w1", Stale: true}}}, exitPartial},
		{"stale but departed", statusReport{Hosts: []hostStatus{{Host: "w1", Stale: true, Departed: true}}}, exitOK},
		{"store unreadable", statusReport{StoreErrors: []string{"store \"s3\": down"}}, exitPartial},
	}
	for _, tt := range tests {
		err := statusVerdict(&tt.rep)
		code := exitOK
		if ee, ok := err.(*exitError); ok {
			code = ee.code
		} else if err != nil {
			code = exitFailure
		}
		if code != tt.want {
			t.Errorf("%s: exit %d, want %d (%v)", tt.name, code, tt.want, err)
		}
	}
}
