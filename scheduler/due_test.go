package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	sched, err := ParseSchedule("0 3 * * *", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		now     string
		newest  map[string]time.Time
		run     bool
		reasons []string // substrings of the reason
	}{
		{"nothing stored", "2026-05-10T12:00:00Z", nil, true, []string{"no version stored yet"}},
		{"up to date", "2026-05-10T12:00:00Z",
			map[string]time.Time{"leader": at("2026-05-10T03:00:05Z"), "worker1": at("2026-05-10T03:01:00Z")},
			false, []string{"every host has a version", "2026-05-10T03:00:00Z"}},
		{"version exactly on the slot", "2026-05-10T12:00:00Z",
			map[string]time.Time{"leader": at("2026-05-10T03:00:00Z")}, false, []string{"every host"}},
		{"one host stale", "2026-05-10T12:00:00Z",
			map[string]time.Time{"leader": at("2026-05-10T03:00:05Z"), "worker1": at("2026-05-09T03:01:00Z")},
			true, []string{"worker1", "older than the slot 2026-05-10T03:00:00Z"}},
		{"days missed, one catch-up", "2026-05-10T12:00:00Z",
			map[string]time.Time{"leader": at("2026-05-01T03:00:05Z"), "worker1": at("2026-05-01T03:00:05Z")},
			true, []string{"leader, worker1", "2026-05-10T03:00:00Z"}},
		{"before today's slot", "2026-05-10T02:59:59Z",
			map[string]time.Time{"leader": at("2026-05-09T03:00:05Z")}, false, []string{"2026-05-09T03:00:00Z"}},
		{"clock in the past", "2021-01-01T00:00:10Z",
			map[string]time.Time{"leader": at("2026-05-09T03:00:05Z"), "worker1": at("2026-05-08T03:00:05Z")},
			false, []string{
				"clock 2021-01-01T00:00:10Z is earlier than the newest stored version 2026-05-09T03:00:05Z (host leader)",
				"waiting for the time to be set (NTP / Pioreactor's clock sync)",
			}},
		{"clock a second behind", "2026-05-10T03:00:04Z",
			map[string]time.Time{"leader": at("2026-05-10T03:00:05Z")}, false, []string{"clock 2026-05-10T03:00:04Z is earlier"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, reason := Due(at(tt.now), tt.newest, sched)
			if run != tt.run {
				t.Errorf("Due = %v (%s), want %v", run, reason, tt.run)
			}
			for _, want := range tt.reasons {
				if !strings.Contains(reason, want) {
					t.Errorf("reason %q does not contain %q", reason, want)
				}
			}
		})
	}
}
