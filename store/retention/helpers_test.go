package retention

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stamp is the layout of the local times in tests and golden files.
const stamp = "2006-01-02 15:04"

// zone loads an IANA zone or fails the test.
func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v (install tzdata)", name, err)
	}
	return loc
}

// at parses a "2006-01-02 15:04" local time in loc or fails the test.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation(stamp, s, loc)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return tm
}

// version makes a version of host at the local time s in loc, named after
// its UTC instant.
func version(t testing.TB, host string, loc *time.Location, s string) Version {
	t.Helper()
	tm := at(t, loc, s)
	return Version{ID: host + "@" + tm.UTC().Format(time.RFC3339), Host: host, Time: tm}
}

// nightly makes one version of host per calendar day from first to last
// (dates as 2006-01-02, inclusive) at hhmm local time in loc, leaving out the
// dates in skip.
func nightly(t testing.TB, host string, loc *time.Location, first, last, hhmm string, skip ...string) []Version {
	t.Helper()
	var out []Version
	end := at(t, loc, last+" "+hhmm)
	for d := at(t, loc, first+" "+hhmm); !d.After(end); {
		day := d.Format("2006-01-02")
		skipped := false
		for _, s := range skip {
			skipped = skipped || s == day
		}
		if !skipped {
			out = append(out, version(t, host, loc, day+" "+hhmm))
		}
		y, m, dd := d.Date()
		d = at(t, loc, time.Date(y, m, dd+1, 0, 0, 0, 0, time.UTC).Format("2006-01-02")+" "+hhmm)
	}
	return out
}

// resticSeries reads testdata/restic-series.txt: the snapshot times of
// restic's own policy tests, as versions of one host in UTC.
func resticSeries(t testing.TB, host string) []Version {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "restic-series.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Version
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tm, err := time.Parse("2006-01-02 15:04:05", line)
		if err != nil {
			t.Fatalf("restic-series.txt: %v", err)
		}
		out = append(out, Version{ID: fmt.Sprintf("%s#%03d", host, len(out)), Host: host, Time: tm})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// policyString names the rules of p as configuration keys, for golden file
// headers.
func policyString(p Policy) string {
	var parts []string
	for _, c := range p.counts() {
		if c.n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", c.key, c.n))
		}
	}
	for _, w := range p.withins() {
		if !w.d.Zero() {
			parts = append(parts, fmt.Sprintf("%s=%s", w.key, w.d))
		}
	}
	return strings.Join(parts, " ")
}

// render writes a plan as text, one line per version: local time in loc,
// ISO week, keep or remove, reasons. With keptOnly, removed versions are
// only counted.
func render(plan Plan, p Policy, loc *time.Location, now time.Time, keptOnly bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# policy: %s\n# zone: %s  now: %s\n", policyString(p), loc, now.In(loc).Format(stamp+" MST"))
	for _, h := range plan.Hosts {
		fmt.Fprintf(&b, "host %s", h.Host)
		if h.Departed {
			b.WriteString(" (departed)")
		}
		b.WriteString("\n")
		kept, removed := 0, 0
		for _, d := range h.Decisions {
			if d.Keep {
				kept++
			} else {
				removed++
				if keptOnly {
					continue
				}
			}
			tm := d.Version.Time.In(loc)
			y, w := tm.ISOWeek()
			verdict := "remove"
			if d.Keep {
				verdict = "keep"
			}
			line := fmt.Sprintf("  %s %-4s %d-W%02d  %-6s  %s", tm.Format("2006-01-02 Mon 15:04"), tm.Format("MST"), y, w, verdict, strings.Join(d.Reasons, ", "))
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
		fmt.Fprintf(&b, "  kept %d, removed %d\n", kept, removed)
	}
	return b.String()
}

// keptTimes returns the local times ("2006-01-02 15:04") of the versions a
// host plan keeps, newest first.
func keptTimes(h HostPlan, loc *time.Location) []string {
	var out []string
	for _, d := range h.Decisions {
		if d.Keep {
			out = append(out, d.Version.Time.In(loc).Format(stamp))
		}
	}
	return out
}
