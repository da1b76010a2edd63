package retention

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// resticScenario is one host's series, backed up into a real restic
// repository and planned with several policies.
type resticScenario struct {
	host     string
	zone     string
	versions []Version
	policies []resticPolicy
}

// resticPolicy is one policy to compare, with the exact difference expected
// between Apply's kept set and restic's.
type resticPolicy struct {
	p Policy
	// guard lists the IDs Apply keeps by a guard only (held, departed,
	// newest, future-dated); restic removes them.
	guard []string
	// oldest lists the IDs Apply keeps by oldest fill only; restic before
	// 0.16 removes them.
	oldest []string
	// unlimited marks a policy with a -1 count; restic before 0.16 keeps
	// nothing for it.
	unlimited bool
}

// resticRunner runs the restic binary against one repository.
type resticRunner struct {
	bin, repo string
}

// run runs restic with args, in zone tz, and returns its standard output.
func (r resticRunner) run(tz string, args ...string) ([]byte, error) {
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=piosnap-test", "RESTIC_REPOSITORY="+r.repo, "TZ="+tz,
		"RESTIC_PASSWORD_FILE=", "RESTIC_PASSWORD_COMMAND=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("restic %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// resticFlags turns p into restic forget flags.
func resticFlags(p Policy) []string {
	var out []string
	for _, c := range p.counts() {
		if c.n != 0 {
			out = append(out, "--"+strings.ReplaceAll(c.key, "_", "-"), strconv.Itoa(c.n))
		}
	}
	for _, w := range p.withins() {
		if !w.d.Zero() {
			// restic writes months as "m" where piosnap asks for "mo".
			out = append(out, "--"+strings.ReplaceAll(w.key, "_", "-"), strings.Replace(w.d.String(), "mo", "m", 1))
		}
	}
	return out
}

// resticMinor returns the minor version of restic 0.x, failing on 1.x and
// later (the comparison would need a fresh look).
func resticMinor(t *testing.T, r resticRunner) int {
	out, err := r.run("UTC", "version")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out)) // "restic 0.14.0 compiled with …"
	if len(f) < 2 {
		t.Fatalf("unexpected restic version output %q", out)
	}
	parts := strings.Split(f[1], ".")
	minor, err := strconv.Atoi(parts[min(1, len(parts)-1)])
	if parts[0] != "0" || len(parts) < 2 || err != nil {
		t.Fatalf("restic version %q: this comparison knows restic 0.x only; check forget's semantics and extend it", f[1])
	}
	return minor
}

func resticScenarios(t *testing.T, now time.Time) []resticScenario {
	utc, berlin := time.UTC, zone(t, "Europe/Berlin")
	d := func(s string) Duration {
		v, err := ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	rehost := func(host string, vs []Version) []Version {
		for i := range vs {
			vs[i].Host = host
			vs[i].ID = host + "@" + vs[i].Time.UTC().Format(time.RFC3339)
		}
		return vs
	}
	id := func(host string, loc *time.Location, s string) string { return version(t, host, loc, s).ID }

	outage := rehost("outage", nightly(t, "outage", utc, "2026-08-11", "2026-08-19", "02:00"))
	outage[0].Held = true
	heldID := outage[0].ID

	day := 24 * time.Hour
	real := now.Truncate(time.Second)
	future := []Version{
		{ID: "future-real-3", Host: "future", Time: real.Add(-3 * day)},
		{ID: "future-real-2", Host: "future", Time: real.Add(-2 * day)},
		{ID: "future-real-1", Host: "future", Time: real.Add(-1 * day)},
		{ID: "future-ahead", Host: "future", Time: real.Add(400 * day)},
	}

	return []resticScenario{
		{host: "docs", zone: "UTC", versions: rehost("docs", resticDocWeekdays(t, utc)), policies: []resticPolicy{
			{p: Policy{Daily: 5}},
			{p: Policy{WithinDaily: d("7d")}},
			{p: Policy{Last: 3, Hourly: 2, Weekly: 1, Monthly: 1, Yearly: 1, Within: d("1d")}},
			{p: Policy{Daily: Unlimited}, unlimited: true},
		}},
		{host: "dst", zone: "Europe/Berlin", versions: rehost("dst", nightly(t, "dst", berlin, "2026-03-24", "2026-04-02", "01:30")),
			policies: []resticPolicy{
				{p: Policy{Daily: 7}},
				{p: Policy{WithinDaily: d("7d")}},
				{p: Policy{Hourly: 3, Weekly: 2}},
			}},
		{host: "isoweek", zone: "UTC", versions: rehost("isoweek", nightly(t, "isoweek", utc, "2022-12-25", "2023-01-03", "12:00")),
			policies: []resticPolicy{
				{p: Policy{Weekly: 3, Yearly: 2}},
				{p: Policy{WithinWeekly: d("1mo"), WithinMonthly: d("1y")}},
			}},
		{host: "outage", zone: "UTC", versions: outage, policies: []resticPolicy{
			{p: Policy{Daily: 7}, guard: []string{heldID}},
			{p: Policy{WithinDaily: d("7d")}, guard: []string{heldID}},
			{p: Policy{Within: d("7d")}, guard: []string{heldID}},
		}},
		{host: "future", zone: "UTC", versions: future, policies: []resticPolicy{
			{p: Policy{Last: 1}, guard: []string{"future-real-1"}},
			{p: Policy{Within: d("2d")}},
			{p: Policy{Daily: 2}},
		}},
		{host: "young", zone: "UTC", versions: []Version{version(t, "young", utc, "2026-08-30 02:00"),
			version(t, "young", utc, "2026-08-30 14:00"), version(t, "young", utc, "2026-08-31 02:00")},
			policies: []resticPolicy{
				{p: Policy{Daily: 7, Monthly: 3}, oldest: []string{id("young", utc, "2026-08-30 02:00")}},
				{p: Policy{Last: 5}},
			}},
		{host: "gone", zone: "UTC", versions: rehost("gone", nightly(t, "gone", utc, "2026-07-01", "2026-07-02", "02:00")),
			policies: []resticPolicy{
				{p: Policy{Last: 1}, guard: []string{id("gone", utc, "2026-07-01 02:00")}},
			}},
	}
}

// TestAgreesWithRestic backs the scenarios up into a real restic repository
// with `restic backup --time` and compares `restic forget --dry-run --json`
// with Apply. Apply must keep everything restic keeps, and its extras must be
// exactly the declared guard keeps, plus the oldest-fill keeps and the
// unlimited counts when restic predates 0.16.
func TestAgreesWithRestic(t *testing.T) {
	bin, err := exec.LookPath("restic")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("restic is not installed but CI is set: install it with `apt-get install -y restic` (Debian/Ubuntu) or from https://github.com/restic/restic/releases")
		}
		t.Skip("restic not installed; `apt-get install -y restic` to compare with restic forget")
	}
	dir := t.TempDir()
	r := resticRunner{bin: bin, repo: filepath.Join(dir, "repo")}
	minor := resticMinor(t, r)
	t.Logf("comparing with restic 0.%d (oldest fill and unlimited counts: %v)", minor, minor >= 16)

	file := filepath.Join(dir, "leader.zip")
	if err := os.WriteFile(file, []byte("piosnap retention test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.run("UTC", "init", "--no-cache"); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	scenarios := resticScenarios(t, now)
	current := []string{"docs", "dst", "isoweek", "outage", "future", "young"} // "gone" left the cluster

	// Back up every version; restic is CPU-bound (key derivation), so two
	// at a time.
	var jobs []func() error
	for _, sc := range scenarios {
		loc := zone(t, sc.zone)
		for _, v := range sc.versions {
			jobs = append(jobs, func() error {
				_, err := r.run(sc.zone, "backup", "--no-cache", "--quiet", "--host", sc.host,
					"--time", v.Time.In(loc).Format("2006-01-02 15:04:05"), file)
				return err
			})
		}
	}
	runJobs(t, jobs)

	type result struct {
		sc   resticScenario
		pol  resticPolicy
		kept []time.Time
	}
	var results []*result
	jobs = nil
	for _, sc := range scenarios {
		for _, pol := range sc.policies {
			res := &result{sc: sc, pol: pol}
			results = append(results, res)
			jobs = append(jobs, func() error {
				args := append([]string{"forget", "--no-cache", "--no-lock", "--dry-run", "--json",
					"--group-by", "host", "--host", sc.host}, resticFlags(pol.p)...)
				out, err := r.run(sc.zone, args...)
				if err != nil {
					return err
				}
				res.kept, err = parseForget(out, sc.host)
				return err
			})
		}
	}
	runJobs(t, jobs)

	for _, res := range results {
		sc, pol := res.sc, res.pol
		t.Run(sc.host+"/"+policyString(pol.p), func(t *testing.T) {
			if len(sc.versions) == 0 {
				t.Fatal("scenario has no versions")
			}
			plan, err := Apply(sc.versions, pol.p, zone(t, sc.zone), now, current)
			if err != nil {
				t.Fatal(err)
			}
			byTime := map[int64]string{}
			for _, v := range sc.versions {
				byTime[v.Time.Unix()] = v.ID
			}
			var resticKept []string
			for _, tm := range res.kept {
				id, ok := byTime[tm.Unix()]
				if !ok {
					t.Fatalf("restic keeps a snapshot at %v that is not in the scenario", tm)
				}
				resticKept = append(resticKept, id)
			}
			var ours []string
			for _, d := range plan.Hosts[0].Decisions {
				if d.Keep {
					ours = append(ours, d.Version.ID)
				}
			}
			want := slices.Clone(pol.guard)
			if minor < 16 {
				want = append(want, pol.oldest...)
				if pol.unlimited {
					want = slices.Clone(ours) // restic 0.14 keeps nothing for -1
				}
			}
			var missing, extra []string
			for _, id := range resticKept {
				if !slices.Contains(ours, id) {
					missing = append(missing, id)
				}
			}
			for _, id := range ours {
				if !slices.Contains(resticKept, id) {
					extra = append(extra, id)
				}
			}
			slices.Sort(extra)
			slices.Sort(want)
			if len(missing) > 0 {
				t.Errorf("restic keeps %q, Apply removes them", missing)
			}
			if !slices.Equal(extra, want) {
				t.Errorf("Apply keeps beyond restic %q, want exactly %q\nrestic keeps %q\nApply keeps %q",
					extra, want, resticKept, ours)
			}
			if len(resticKept) == 0 && !pol.unlimited {
				t.Errorf("restic keeps nothing: the scenario does not exercise the policy")
			}
		})
	}
}

// parseForget returns the kept snapshot times of host from restic forget's
// JSON output.
func parseForget(out []byte, host string) ([]time.Time, error) {
	var groups []struct {
		Host string `json:"host"`
		Keep []struct {
			Time time.Time `json:"time"`
		} `json:"keep"`
	}
	if err := json.Unmarshal(out, &groups); err != nil {
		return nil, fmt.Errorf("parse restic forget output: %w: %s", err, out)
	}
	if len(groups) != 1 || groups[0].Host != host {
		return nil, fmt.Errorf("restic forget returned %d groups, want one for host %s: %s", len(groups), host, out)
	}
	var kept []time.Time
	for _, k := range groups[0].Keep {
		kept = append(kept, k.Time)
	}
	return kept, nil
}

// runJobs runs jobs two at a time and fails the test on the first error.
func runJobs(t *testing.T, jobs []func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, 2)
	for i, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = job()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
