package scheduler

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v (install tzdata)", name, err)
	}
	return loc
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", `set "schedule"`},
		{"   ", `set "schedule"`},
		{"@every 1h", "@every intervals are not supported"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", `set "zone" instead`},
		{"TZ=UTC 0 3 * * *", `set "zone" instead`},
		{"0 3 * *", "want five fields"},
		{"61 3 * * *", "want five fields"},
		{"0 3 * * * *", "want five fields"},
		{"@fortnightly", "want five fields"},
		{"0 0 30 2 *", "never matches a date"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := ParseSchedule(tt.spec, time.UTC)
			if err == nil {
				t.Fatalf("ParseSchedule(%q) = nil error, want one containing %q", tt.spec, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSchedule(%q) error = %q, want it to contain %q", tt.spec, err, tt.want)
			}
			if tt.spec != "" && strings.TrimSpace(tt.spec) != "" && !strings.Contains(err.Error(), tt.spec) {
				t.Errorf("error %q does not name the schedule %q", err, tt.spec)
			}
		})
	}
}

func TestNext(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	newYork := mustZone(t, "America/New_York")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		spec string
		zone *time.Location
		from string
		want []string // successive slots, in UTC
	}{
		{"daily in utc", "@daily", nil, "2026-05-01T10:00:00Z",
			[]string{"2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"}},
		{"daily in berlin summer", "30 2 * * *", berlin, "2026-06-01T00:00:00Z",
			[]string{"2026-06-01T00:30:00Z", "2026-06-02T00:30:00Z"}},
		// 2026-03-29 02:30 does not exist in Berlin: the run moves to 03:30 CEST.
		{"berlin spring forward", "30 2 * * *", berlin, "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}},
		// 2026-10-25 02:30 happens twice in Berlin: one run, at the first (CEST).
		{"berlin fall back", "30 2 * * *", berlin, "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin fall back from inside the repeated hour", "30 2 * * *", berlin, "2026-10-25T00:45:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"berlin hourly over fall back", "0 * * * *", berlin, "2026-10-24T22:30:00Z",
			[]string{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		{"berlin hourly over spring forward", "0 * * * *", berlin, "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		// 2026-03-08 02:30 does not exist in New York: 03:30 EDT.
		{"new york spring forward", "30 2 * * *", newYork, "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"}},
		// 2026-11-01 01:30 happens twice in New York: once, at 01:30 EDT.
		{"new york fall back", "30 1 * * *", newYork, "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"leap day", "0 0 29 2 *", nil, "2026-01-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec, tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tt.from)
			for i, w := range tt.want {
				at = s.Next(at)
				if want := utc(w); !at.Equal(want) {
					t.Fatalf("slot %d after %s = %s, want %s", i+1, tt.from, at.UTC().Format(time.RFC3339), w)
				}
			}
		})
	}
}

func TestPrev(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	tests := []struct {
		name string
		spec string
		zone *time.Location
		now  string
		want string
	}{
		{"exactly on a slot", "0 * * * *", nil, "2026-05-01T10:00:00Z", "2026-05-01T10:00:00Z"},
		{"between slots", "0 * * * *", nil, "2026-05-01T10:59:59Z", "2026-05-01T10:00:00Z"},
		{"every minute", "* * * * *", nil, "2026-05-01T10:00:30Z", "2026-05-01T10:00:00Z"},
		{"weekly", "@weekly", nil, "2026-05-01T10:00:00Z", "2026-04-26T00:00:00Z"},
		{"leap day years ago", "0 0 29 2 *", nil, "2027-06-01T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"after the shifted spring slot", "30 2 * * *", berlin, "2026-03-29T01:45:00Z", "2026-03-29T01:30:00Z"},
		{"before the shifted spring slot", "30 2 * * *", berlin, "2026-03-29T01:15:00Z", "2026-03-28T01:30:00Z"},
		{"second pass of the repeated hour", "30 2 * * *", berlin, "2026-10-25T01:45:00Z", "2026-10-25T00:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec, tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := time.Parse(time.RFC3339, tt.now)
			got := Prev(s, now)
			if want, _ := time.Parse(time.RFC3339, tt.want); !got.Equal(want) {
				t.Errorf("Prev(%q, %s) = %s, want %s", tt.spec, tt.now, got.UTC().Format(time.RFC3339), tt.want)
			}
		})
	}
}

// TestPrevNextAgree checks, at random instants around DST changes, that
// Prev(t) <= t < Next(Prev(t)) and that Next(t) is the slot after Prev(t).
func TestPrevNextAgree(t *testing.T) {
	zones := []*time.Location{time.UTC, mustZone(t, "Europe/Berlin"), mustZone(t, "America/New_York"), mustZone(t, "Australia/Lord_Howe")}
	specs := []string{"30 2 * * *", "0 * * * *", "*/7 1-3 * * *", "15 3 * * 0", "@monthly"}
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, zone := range zones {
		for _, spec := range specs {
			s, err := ParseSchedule(spec, zone)
			if err != nil {
				t.Fatal(err)
			}
			for range 300 {
				now := base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
				p := Prev(s, now)
				if p.IsZero() || p.After(now) {
					t.Fatalf("%s in %s: Prev(%s) = %s", spec, zone, now, p)
				}
				if n := s.Next(p); !n.After(now) || !n.Equal(s.Next(now)) {
					t.Fatalf("%s in %s at %s: Next(Prev) = %s, Next(now) = %s", spec, zone, now, n, s.Next(now))
				}
			}
		}
	}
}

func BenchmarkPrev(b *testing.B) {
	s, err := ParseSchedule("30 2 * * *", mustZone(b, "Europe/Berlin"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC)
	for b.Loop() {
		Prev(s, now)
	}
}

func TestInterval(t *testing.T) {
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC) // a Wednesday
	tests := []struct {
		schedule string
		want     time.Duration
	}{
		{"30 1 * * *", 24 * time.Hour},
		{"0 3 * * sun", 7 * 24 * time.Hour},
		{"@hourly", time.Hour},
		{"not a schedule", 0},
	}
	for _, tc := range tests {
		if got := Interval(tc.schedule, time.UTC, now); got != tc.want {
			t.Errorf("Interval(%q) = %v, want %v", tc.schedule, got, tc.want)
		}
	}
}
