package retention

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// planCase is one golden planning scenario.
type planCase struct {
	name     string
	zone     string
	versions func(t testing.TB, loc *time.Location) []Version
	policy   Policy
	now      string   // local time in zone; the planning time
	current  []string // hosts in the cluster; nil = unknown
	keptOnly bool     // golden lists kept versions only
	// wantKept lists the kept local times of the only host, newest first;
	// nil skips the check.
	wantKept []string
	// check makes further assertions on the plan.
	check func(t *testing.T, plan Plan, loc *time.Location)
}

// resticDocWeekdays is the restic documentation's forget example: a backup
// every weekday 2025-04-21 … 05-02 at 11:00, extra ones on the Fridays at
// 23:00, none on Wednesday 04-30.
func resticDocWeekdays(t testing.TB, loc *time.Location) []Version {
	var out []Version
	for _, d := range nightly(t, "leader", loc, "2025-04-21", "2025-05-02", "11:00", "2025-04-30") {
		if wd := d.Time.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		out = append(out, d)
		if d.Time.Weekday() == time.Friday {
			out = append(out, version(t, "leader", loc, d.Time.Format("2006-01-02")+" 23:00"))
		}
	}
	return out
}

// reasonsOf returns the reasons of the version of host at local time s.
func reasonsOf(t *testing.T, plan Plan, host string, loc *time.Location, s string) []string {
	t.Helper()
	for _, h := range plan.Hosts {
		if h.Host != host {
			continue
		}
		for _, d := range h.Decisions {
			if d.Version.Time.In(loc).Format(stamp) == s {
				return d.Reasons
			}
		}
	}
	t.Fatalf("no version of %s at %s in the plan", host, s)
	return nil
}

// countWith counts the decisions, over all hosts, whose reasons satisfy fn.
func countWith(plan Plan, fn func(reasons []string) bool) int {
	n := 0
	for _, h := range plan.Hosts {
		for _, d := range h.Decisions {
			if fn(d.Reasons) {
				n++
			}
		}
	}
	return n
}

// hasRule reports whether reasons include one of the rule (e.g. "daily")
// counted reasons, oldest-fill included.
func hasRule(reasons []string, rule string) bool {
	return slices.ContainsFunc(reasons, func(r string) bool {
		return strings.HasPrefix(strings.TrimPrefix(r, "oldest "), rule+" ")
	})
}

func planCases() []planCase {
	d := func(s string) Duration {
		v, err := ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return v
	}
	return []planCase{
		{
			name: "restic-doc-keep-daily-5", zone: "UTC", versions: resticDocWeekdays,
			policy: Policy{Daily: 5}, now: "2025-05-03 08:00",
			wantKept: []string{"2025-05-02 23:00", "2025-05-01 11:00", "2025-04-29 11:00", "2025-04-28 11:00", "2025-04-25 23:00"},
		},
		{
			name: "restic-doc-keep-within-daily-7d", zone: "UTC", versions: resticDocWeekdays,
			policy: Policy{WithinDaily: d("7d")}, now: "2025-05-03 08:00",
			wantKept: []string{"2025-05-02 23:00", "2025-05-01 11:00", "2025-04-29 11:00", "2025-04-28 11:00"},
		},
		{
			name: "restic-golden-17", zone: "UTC",
			versions: func(t testing.TB, _ *time.Location) []Version { return resticSeries(t, "leader") },
			policy:   Policy{Daily: 7, Weekly: 2, Monthly: 3, Yearly: 10}, now: "2016-02-01 00:00",
			wantKept: []string{"2016-01-18 12:02", "2016-01-12 21:08", "2016-01-09 21:02", "2016-01-08 20:02",
				"2016-01-07 10:02", "2016-01-06 08:02", "2016-01-05 09:02", "2015-11-22 10:20", "2015-10-22 10:20",
				"2014-11-22 10:20", "2014-08-08 10:20"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				for s, want := range map[string][]string{
					"2016-01-18 12:02": {"daily 1/7", "weekly 1/2", "monthly 1/3", "yearly 1/10"},
					"2016-01-12 21:08": {"daily 2/7", "weekly 2/2"},
					"2015-11-22 10:20": {"monthly 2/3", "yearly 2/10"},
					"2015-10-22 10:20": {"monthly 3/3"},
					"2014-11-22 10:20": {"yearly 3/10"},
					"2014-08-08 10:20": {"oldest yearly 4/10"},
				} {
					if got := reasonsOf(t, plan, "leader", loc, s); !slices.Equal(got, want) {
						t.Errorf("reasons of %s = %q, want %q", s, got, want)
					}
				}
			},
		},
		{
			name: "restic-golden-all-within", zone: "UTC",
			versions: func(t testing.TB, _ *time.Location) []Version { return resticSeries(t, "leader") },
			policy: Policy{Within: d("1h"), WithinHourly: d("1d"), WithinDaily: d("7d"), WithinWeekly: d("1mo"),
				WithinMonthly: d("1y"), WithinYearly: d("9999y")},
			now: "2016-02-01 00:00",
		},
		{
			// One backup a day for 100 years, ending on a Sunday so the 7
			// dailies make one ISO week; the restic docs: 7 dailies, 4
			// additional weeklies, 12 or 11 monthlies, 75 or 74 yearlies.
			name: "restic-doc-100-years", zone: "UTC", keptOnly: true,
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "1926-08-31", "2026-08-30", "02:00")
			},
			policy: Policy{Daily: 7, Weekly: 5, Monthly: 12, Yearly: 75}, now: "2026-08-30 12:00",
			check: func(t *testing.T, plan Plan, _ *time.Location) {
				dailies := countWith(plan, func(r []string) bool { return hasRule(r, "daily") })
				weeklies := countWith(plan, func(r []string) bool { return hasRule(r, "weekly") && !hasRule(r, "daily") })
				monthlies := countWith(plan, func(r []string) bool {
					return hasRule(r, "monthly") && !hasRule(r, "daily") && !hasRule(r, "weekly")
				})
				yearlies := countWith(plan, func(r []string) bool {
					return hasRule(r, "yearly") && !hasRule(r, "daily") && !hasRule(r, "weekly")
				})
				if dailies != 7 || weeklies != 4 || (monthlies != 11 && monthlies != 12) || (yearlies != 74 && yearlies != 75) {
					t.Errorf("dailies %d, additional weeklies %d, monthlies %d, yearlies %d; want 7, 4, 11 or 12, 74 or 75",
						dailies, weeklies, monthlies, yearlies)
				}
			},
		},
		{
			// The research note's worked example 3: nightly for 400 days.
			name: "nightly-400-days", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "2025-07-28", "2026-08-31", "02:00")
			},
			policy: Policy{Daily: 7, Weekly: 4, Monthly: 6, Yearly: 2}, now: "2026-08-31 12:00", keptOnly: true,
			wantKept: []string{"2026-08-31 02:00", "2026-08-30 02:00", "2026-08-29 02:00", "2026-08-28 02:00",
				"2026-08-27 02:00", "2026-08-26 02:00", "2026-08-25 02:00", "2026-08-23 02:00", "2026-08-16 02:00",
				"2026-07-31 02:00", "2026-06-30 02:00", "2026-05-31 02:00", "2026-04-30 02:00", "2026-03-31 02:00",
				"2025-12-31 02:00"},
		},
		{
			// borg's prune example under restic semantics: 19, not borg's 21.
			name: "borg-example", zone: "UTC", keptOnly: true,
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "2015-01-01", "2015-12-31", "12:00", "2015-12-19")
			},
			policy: Policy{Daily: 14, Monthly: 6, Yearly: 1}, now: "2016-01-01 00:00",
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if got := len(keptTimes(plan.Hosts[0], loc)); got != 19 {
					t.Errorf("kept %d, want 19", got)
				}
			},
		},
		{
			name: "dst-berlin-keep-daily-7", zone: "Europe/Berlin",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "2026-03-20", "2026-04-02", "01:30")
			},
			policy: Policy{Daily: 7}, now: "2026-04-02 12:00",
			wantKept: []string{"2026-04-02 01:30", "2026-04-01 01:30", "2026-03-31 01:30", "2026-03-30 01:30",
				"2026-03-29 01:30", "2026-03-28 01:30", "2026-03-27 01:30"},
		},
		{
			// The same versions bucketed in UTC: local 03-29 01:30 CET and
			// 03-30 01:30 CEST share the UTC day 03-29, so 03-29 is dropped.
			name: "dst-berlin-bucketed-in-utc", zone: "UTC",
			versions: func(t testing.TB, _ *time.Location) []Version {
				return nightly(t, "leader", zone(t, "Europe/Berlin"), "2026-03-20", "2026-04-02", "01:30")
			},
			policy: Policy{Daily: 7}, now: "2026-04-02 12:00",
			wantKept: []string{"2026-04-01 23:30", "2026-03-31 23:30", "2026-03-30 23:30", "2026-03-29 23:30",
				"2026-03-28 00:30", "2026-03-27 00:30", "2026-03-26 00:30"},
		},
		{
			// Within 7d of 04-02 01:30 CEST starts at 03-26 01:30 CET (calendar
			// days in the zone, 167 elapsed hours), and the start is excluded.
			name: "dst-berlin-within-daily-7d", zone: "Europe/Berlin",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "2026-03-20", "2026-04-02", "01:30")
			},
			policy: Policy{WithinDaily: d("7d")}, now: "2026-04-02 12:00",
			wantKept: []string{"2026-04-02 01:30", "2026-04-01 01:30", "2026-03-31 01:30", "2026-03-30 01:30",
				"2026-03-29 01:30", "2026-03-28 01:30", "2026-03-27 01:30"},
		},
		{
			name: "iso-week-year-boundary", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return nightly(t, "leader", loc, "2022-12-24", "2023-01-03", "12:00")
			},
			policy: Policy{Weekly: 3, Yearly: 2}, now: "2023-01-03 18:00",
			wantKept: []string{"2023-01-03 12:00", "2023-01-01 12:00", "2022-12-31 12:00", "2022-12-25 12:00"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if y, w := at(t, loc, "2023-01-01 12:00").ISOWeek(); y != 2022 || w != 52 {
					t.Fatalf("2023-01-01 is in %d-W%d, want 2022-W52", y, w)
				}
				for s, want := range map[string][]string{
					"2023-01-03 12:00": {"weekly 1/3", "yearly 1/2"},
					"2023-01-01 12:00": {"weekly 2/3"},
					"2022-12-31 12:00": {"yearly 2/2"},
					"2022-12-25 12:00": {"weekly 3/3"},
				} {
					if got := reasonsOf(t, plan, "leader", loc, s); !slices.Equal(got, want) {
						t.Errorf("reasons of %s = %q, want %q", s, got, want)
					}
				}
			},
		},
		outageCase("outage-12-days-keep-daily-7", Policy{Daily: 7}),
		outageCase("outage-12-days-keep-within-daily-7d", Policy{WithinDaily: d("7d")}),
		outageCase("outage-12-days-keep-within-7d", Policy{Within: d("7d")}),
		{
			// A clock jump dated one version a year ahead. It is kept and
			// flagged, takes the keep_last slot as in restic, and does not
			// anchor keep_within: that stays relative to 08-31.
			name: "future-dated", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return append(nightly(t, "leader", loc, "2026-08-25", "2026-08-31", "02:00"),
					version(t, "leader", loc, "2027-08-31 02:00"))
			},
			policy: Policy{Last: 2, Within: d("2d")}, now: "2026-08-31 12:00",
			wantKept: []string{"2027-08-31 02:00", "2026-08-31 02:00", "2026-08-30 02:00"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				for _, dec := range plan.Hosts[0].Decisions {
					if want := dec.Version.Time.Year() == 2027; dec.Future != want {
						t.Errorf("%v: Future = %v, want %v", dec.Version.Time, dec.Future, want)
					}
				}
				if got, want := reasonsOf(t, plan, "leader", loc, "2027-08-31 02:00"), []string{"within 2d", "last 1/2", ReasonFuture}; !slices.Equal(got, want) {
					t.Errorf("future version reasons = %q, want %q", got, want)
				}
			},
		},
		{
			// Guard: the future-dated version uses up keep_last 1, but the
			// host's newest real version is still kept.
			name: "guard-newest", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return append(nightly(t, "leader", loc, "2026-08-27", "2026-08-31", "02:00"),
					version(t, "leader", loc, "2027-08-31 02:00"))
			},
			policy: Policy{Last: 1}, now: "2026-08-31 12:00",
			wantKept: []string{"2027-08-31 02:00", "2026-08-31 02:00"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if got := reasonsOf(t, plan, "leader", loc, "2026-08-31 02:00"); !slices.Equal(got, []string{ReasonNewest}) {
					t.Errorf("newest real version reasons = %q, want [newest]", got)
				}
			},
		},
		{
			name: "guard-held", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				vs := nightly(t, "leader", loc, "2026-08-27", "2026-08-31", "02:00")
				vs[0].Held = true // 08-27, being restored
				vs[4].Held = true // 08-31, being exported
				return vs
			},
			policy: Policy{Last: 2}, now: "2026-08-31 12:00",
			wantKept: []string{"2026-08-31 02:00", "2026-08-30 02:00", "2026-08-27 02:00"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if got := reasonsOf(t, plan, "leader", loc, "2026-08-27 02:00"); !slices.Equal(got, []string{ReasonHeld}) {
					t.Errorf("held version reasons = %q, want [held]", got)
				}
				if got := reasonsOf(t, plan, "leader", loc, "2026-08-31 02:00"); !slices.Equal(got, []string{"last 1/2", ReasonHeld}) {
					t.Errorf("held newest reasons = %q, want [last 1/2 held]", got)
				}
			},
		},
		{
			name: "guard-departed-host", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return append(nightly(t, "worker1", loc, "2026-08-28", "2026-08-31", "02:00"),
					nightly(t, "worker2", loc, "2026-08-01", "2026-08-04", "02:00")...)
			},
			policy: Policy{Last: 1}, now: "2026-08-31 12:00", current: []string{"leader", "worker1"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if len(plan.Hosts) != 2 || plan.Hosts[0].Host != "worker1" || plan.Hosts[1].Host != "worker2" {
					t.Fatalf("hosts = %+v, want worker1, worker2", plan.Hosts)
				}
				if plan.Hosts[0].Departed || !plan.Hosts[1].Departed {
					t.Errorf("Departed = %v, %v; want false, true", plan.Hosts[0].Departed, plan.Hosts[1].Departed)
				}
				if got := len(keptTimes(plan.Hosts[1], loc)); got != 4 {
					t.Errorf("departed host keeps %d versions, want all 4", got)
				}
				if got := len(keptTimes(plan.Hosts[0], loc)); got != 1 {
					t.Errorf("current host keeps %d versions, want 1", got)
				}
				if got := len(plan.Removals()); got != 3 {
					t.Errorf("Removals() has %d versions, want 3", got)
				}
			},
		},
		{
			name: "hosts-unknown-membership", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return append(nightly(t, "worker2", loc, "2026-08-01", "2026-08-04", "02:00"),
					nightly(t, "worker1", loc, "2026-08-28", "2026-08-31", "02:00")...)
			},
			policy: Policy{Last: 1}, now: "2026-08-31 12:00", current: nil,
			check: func(t *testing.T, plan Plan, _ *time.Location) {
				for _, h := range plan.Hosts {
					if h.Departed {
						t.Errorf("host %s flagged departed with current = nil", h.Host)
					}
				}
				if got := len(plan.Removals()); got != 6 {
					t.Errorf("Removals() has %d versions, want 6", got)
				}
			},
		},
		{
			// A young series: slots are left when the oldest version is
			// reached, so it is kept although its day is already taken.
			name: "oldest-fill", zone: "UTC",
			versions: func(t testing.TB, loc *time.Location) []Version {
				return []Version{version(t, "leader", loc, "2026-08-30 02:00"),
					version(t, "leader", loc, "2026-08-30 14:00"), version(t, "leader", loc, "2026-08-31 02:00")}
			},
			policy: Policy{Daily: 7, Monthly: 3}, now: "2026-08-31 12:00",
			wantKept: []string{"2026-08-31 02:00", "2026-08-30 14:00", "2026-08-30 02:00"},
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				want := []string{"oldest daily 3/7", "oldest monthly 2/3"}
				if got := reasonsOf(t, plan, "leader", loc, "2026-08-30 02:00"); !slices.Equal(got, want) {
					t.Errorf("oldest reasons = %q, want %q", got, want)
				}
			},
		},
		{
			name: "unlimited-and-hourly", zone: "Europe/Berlin",
			versions: func(t testing.TB, loc *time.Location) []Version {
				var vs []Version
				for _, day := range []string{"2026-10-24", "2026-10-25", "2026-10-26"} {
					for _, hm := range []string{"00:15", "00:45", "01:30", "02:30", "06:00", "18:00"} {
						vs = append(vs, version(t, "leader", loc, day+" "+hm))
					}
				}
				return vs
			},
			policy: Policy{Last: 2, Hourly: 4, Daily: Unlimited, WithinHourly: d("6h")}, now: "2026-10-27 00:00",
			check: func(t *testing.T, plan Plan, loc *time.Location) {
				if got := reasonsOf(t, plan, "leader", loc, "2026-10-24 18:00"); !slices.Contains(got, "daily 3/unlimited") {
					t.Errorf("2026-10-24 18:00 reasons = %q, want daily 3/unlimited", got)
				}
			},
		},
	}
}

// outageCase is a nightly series that stops on 2026-08-19, planned on
// 08-31 after 12 days without versions.
func outageCase(name string, p Policy) planCase {
	return planCase{
		name: name, zone: "UTC", policy: p, now: "2026-08-31 03:00",
		versions: func(t testing.TB, loc *time.Location) []Version {
			return nightly(t, "leader", loc, "2026-08-01", "2026-08-19", "02:00")
		},
		wantKept: []string{"2026-08-19 02:00", "2026-08-18 02:00", "2026-08-17 02:00", "2026-08-16 02:00",
			"2026-08-15 02:00", "2026-08-14 02:00", "2026-08-13 02:00"},
	}
}

func TestApplyGolden(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			loc := zone(t, tc.zone)
			versions := tc.versions(t, loc)
			input := slices.Clone(versions)
			now := at(t, loc, tc.now)
			plan, err := Apply(versions, tc.policy, loc, now, tc.current)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !slices.Equal(input, versions) {
				t.Errorf("Apply reordered or changed its input")
			}
			checkInvariants(t, plan, versions)
			if tc.wantKept != nil {
				if len(plan.Hosts) != 1 {
					t.Fatalf("plan has %d hosts, want 1", len(plan.Hosts))
				}
				if got := keptTimes(plan.Hosts[0], loc); !slices.Equal(got, tc.wantKept) {
					t.Errorf("kept %d:\n  %s\nwant %d:\n  %s", len(got), strings.Join(got, "\n  "),
						len(tc.wantKept), strings.Join(tc.wantKept, "\n  "))
				}
			}
			if tc.check != nil {
				tc.check(t, plan, loc)
			}
			compareGolden(t, filepath.Join("testdata", tc.name+".golden"), render(plan, tc.policy, loc, now, tc.keptOnly))
		})
	}
}

// checkInvariants asserts what holds for every plan: every version decided
// exactly once, newest first per host, Keep iff reasons, guards honoured.
func checkInvariants(t *testing.T, plan Plan, versions []Version) {
	t.Helper()
	seen := 0
	for _, h := range plan.Hosts {
		newestSeen := false
		for i, d := range h.Decisions {
			seen++
			if d.Version.Host != h.Host {
				t.Errorf("host %s plan holds a version of %s", h.Host, d.Version.Host)
			}
			if i > 0 && d.Version.Time.After(h.Decisions[i-1].Version.Time) {
				t.Errorf("host %s decisions not newest first at %d", h.Host, i)
			}
			if d.Keep != (len(d.Reasons) > 0) {
				t.Errorf("%s: Keep = %v with reasons %q", d.Version.ID, d.Keep, d.Reasons)
			}
			if !d.Keep && (d.Version.Held || d.Future || h.Departed) {
				t.Errorf("%s removed although held, future-dated or departed", d.Version.ID)
			}
			if !d.Future && !newestSeen {
				newestSeen = true
				if !d.Keep {
					t.Errorf("%s: newest version of %s removed", d.Version.ID, h.Host)
				}
			}
		}
	}
	if seen != len(versions) {
		t.Errorf("plan decides %d versions, input has %d", seen, len(versions))
	}
}

// compareGolden compares got with the golden file, or rewrites it with
// -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestApplyErrors(t *testing.T) {
	utc := time.UTC
	now := time.Date(2026, 8, 31, 12, 0, 0, 0, utc)
	good := []Version{{ID: "a", Host: "leader", Time: now.Add(-time.Hour)}}
	tests := []struct {
		name     string
		versions []Version
		p        Policy
		loc      *time.Location
		want     string
		is       error
	}{
		{"empty policy", good, Policy{}, utc,
			"plan retention: retention policy is empty: no version would be removed; set at least one keep_* rule, e.g. keep_daily = 7", ErrEmptyPolicy},
		{"negative count", good, Policy{Weekly: -7}, utc,
			"plan retention: retention keep_weekly is -7: use 0 (off), a positive count, or -1 (unlimited)", nil},
		{"nil zone", good, Policy{Daily: 7}, nil,
			"plan retention: time zone is nil; pass the schedule's zone, or time.Local for the system zone", nil},
		{"no host", []Version{{ID: "v1", Time: now}}, Policy{Daily: 7}, utc,
			`plan retention: version "v1" has no host; every version must name the unit it belongs to`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Apply(tt.versions, tt.p, tt.loc, now, nil)
			if err == nil {
				t.Fatalf("Apply = %+v, want error", plan)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if len(plan.Hosts) != 0 {
				t.Errorf("plan has hosts with an error")
			}
		})
	}
}

func TestApplyNoVersions(t *testing.T) {
	plan, err := Apply(nil, Policy{Daily: 1}, time.UTC, time.Now(), []string{"leader"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Hosts) != 0 || plan.Removals() != nil {
		t.Errorf("plan of no versions = %+v, want empty", plan)
	}
}

func TestApplyAllFuture(t *testing.T) {
	now := time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC)
	vs := []Version{
		{ID: "a", Host: "leader", Time: now.Add(48 * time.Hour)},
		{ID: "b", Host: "leader", Time: now.Add(24 * time.Hour)},
	}
	plan, err := Apply(vs, Policy{Within: Duration{Days: 1}}, time.UTC, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plan.Hosts[0].Decisions {
		if !d.Keep || !d.Future || !slices.Equal(d.Reasons, []string{ReasonFuture}) {
			t.Errorf("%s: Keep %v Future %v reasons %q; want kept as future-dated only", d.Version.ID, d.Keep, d.Future, d.Reasons)
		}
	}
}

func TestApplyEqualTimesOrderedByID(t *testing.T) {
	tm := time.Date(2026, 8, 31, 2, 0, 0, 0, time.UTC)
	vs := []Version{{ID: "b", Host: "h", Time: tm}, {ID: "a", Host: "h", Time: tm}, {ID: "c", Host: "h", Time: tm}}
	plan, err := Apply(vs, Policy{Last: 1}, time.UTC, tm.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range plan.Hosts[0].Decisions {
		ids = append(ids, d.Version.ID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("order = %q, want a, b, c", ids)
	}
	if !plan.Hosts[0].Decisions[0].Keep || plan.Hosts[0].Decisions[1].Keep {
		t.Errorf("keep_last 1 must keep a and remove b")
	}
}
