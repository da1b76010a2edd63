package web

import (
	"context"
	goflag "flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
)

var update = goflag.Bool("update", false, "rewrite the golden files in testdata")

// element returns the part of page from the tag with id up to the first
// end after it, or "" when page has no such id.
func element(page, id, end string) string {
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], end)
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j+len(end)]
}

// overviewOf logs in and returns the overview rendered from the status
// document in testdata/name.
func overviewOf(t *testing.T, r *rig, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.src.setStatus(b)
	c, _ := r.loggedIn()
	resp, err := c.Get(r.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	return body(t, resp)
}

// The overview shows, per store, the daemon's last reading of its data:
// sound, damaged (with a warning at the top that names the objects, the
// versions and what to do), failed, off, and not read yet.
func TestOverviewShowsReadings(t *testing.T) {
	r := newRig(t, false)
	page := overviewOf(t, r, "status-verify.json")
	alert := element(page, "damage-usb", "</section>")
	for _, tc := range []struct {
		what, got  string
		want, lack []string
	}{
		{"the warning about store usb", alert, []string{
			"Damaged data in store usb", "found 2 damaged objects", "last 2026-05-03 01:03 UTC, part 7 of 7",
			"<code>packs/3f/3f2a9c1b0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8</code>: chunk 9a0b1c2d: hash mismatch",
			`<a href="/units/worker1">worker1</a> 2026-05-02 01:00 UTC (version <code>91d0f3c7</code>)`,
			`<a href="/units/worker2">worker2</a> 2026-05-01 01:00 UTC (version <code>77aa01be</code>)`,
			"<code>versions/5e6f7a8b</code>: manifest cannot be read<br>affects version <code>5e6f7a8b</code>",
			`<code class="cmd">sudo -u piosnap piosnap repair --store usb --dry-run</code>`, `<code class="cmd">sudo -u piosnap piosnap repair --store usb</code>`,
			`<code class="cmd">sudo -u piosnap piosnap check --read-data --store usb</code>`, "A store reports damaged data",
		}, []string{"could not read the store"}},
		{"store local's reading", element(page, "reading-local", "</li>"),
			[]string{"part 3 of 30 read 2026-05-03 01:02 UTC (12 packs, 3400 blobs)", "no damage found", "the next part is read after the first run on 2026-05-04"},
			[]string{"DAMAGED", "FAILED"}},
		{"store usb's reading", element(page, "reading-usb", "</li>"),
			[]string{"part 7 of 7 read 2026-05-03 01:03 UTC (5 packs, 812 blobs)", `href="#damage-usb">DAMAGED</a> 2 damaged objects`},
			[]string{"no damage found", "FAILED"}},
		{"store offsite's reading", element(page, "reading-offsite", "</li>"),
			[]string{"part 2 of 30 tried 2026-05-03 01:04 UTC", "FAILED", "could not read the store: open in s3://backups.example.org/piosnap: gave up after 3 attempts", "tried again after the daemon&#39;s next run (2026-05-04 01:00 UTC)"},
			[]string{"no damage found", "DAMAGED", "packs"}},
		{"the summary's note on store offsite", element(page, "readfail-offsite", "</div>"),
			[]string{"Reading store offsite's data failed (2026-05-03 01:04 UTC)", "gave up after 3 attempts"}, nil},
		{"store nas's reading", element(page, "reading-nas", "</li>"),
			[]string{"off: this store&#39;s verify_days is 0"}, []string{"read 2", "no damage found"}},
		{"store fresh's reading", element(page, "reading-fresh", "</li>"),
			[]string{"not read yet: the first part is read after the daemon&#39;s next run (2026-05-04 01:00 UTC)"}, []string{"no damage found"}},
		{"worker1's card", element(page, "unit-worker1", "</article>"),
			[]string{`<span class="flag damaged"`, "DAMAGED: store usb holds damaged data of version 91d0f3c7 (2026-05-02 01:00 UTC)"}, nil},
	} {
		if tc.got == "" {
			t.Errorf("the overview lacks %s", tc.what)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(tc.got, w) {
				t.Errorf("%s lacks %q:\n%s", tc.what, w, tc.got)
			}
		}
		for _, l := range tc.lack {
			if strings.Contains(tc.got, l) {
				t.Errorf("%s has %q:\n%s", tc.what, l, tc.got)
			}
		}
	}
	// The warning comes first, above the summary and the units; only the
	// damaged store has one.
	if i, j := strings.Index(page, `role="alert" id="damage-usb"`), strings.Index(page, `class="summary"`); i < 0 || i > j {
		t.Errorf("the damage warning is not above the summary (at %d, summary at %d)", i, j)
	}
	if n := strings.Count(page, `role="alert"`); n != 1 {
		t.Errorf("%d warnings, want 1 (store usb)", n)
	}
}

// Without damage nothing is raised: no warning, no flag, and the readings
// say what they found.
func TestOverviewWithoutDamage(t *testing.T) {
	r := newRig(t, false)
	page := overviewOf(t, r, "status.json") // the daemon of before verify_days: no readings, no stores
	for _, l := range []string{`role="alert"`, "DAMAGED", "Stored data read back", "readfail"} {
		if strings.Contains(page, l) {
			t.Errorf("the overview without readings has %q", l)
		}
	}
}

// The public status page warns about damage too, without links; it
// matches testdata/status-verify.golden.html (-update
// rewrites it).
func TestPublicStatusShowsDamage(t *testing.T) {
	r := newRig(t, true)
	b, err := os.ReadFile("testdata/status-verify.json")
	if err != nil {
		t.Fatal(err)
	}
	r.src.setStatus(b)
	resp, err := r.client().Get(r.ts.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	alert := element(page, "damage-usb", "</section>")
	if !strings.Contains(alert, "affects worker1 2026-05-02 01:00 UTC (version <code>91d0f3c7</code>), worker2 2026-05-01 01:00 UTC") || !strings.Contains(alert, "--store usb") {
		t.Errorf("public warning:\n%s", alert)
	}
	for _, l := range []string{"/units/", "csrf"} {
		if strings.Contains(page, l) {
			t.Errorf("the public status page has %q", l)
		}
	}
	golden := "testdata/status-verify.golden.html"
	if *update {
		if err := os.WriteFile(golden, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if page != string(want) {
		t.Errorf("the public status page differs from %s (go test -run TestPublicStatusShowsDamage -update rewrites it):\n%s", golden, page)
	}
}

// Names and messages from the status document are escaped wherever they
// appear: in text, attributes and links.
func TestReadingsEscaped(t *testing.T) {
	r := newRig(t, false)
	evil := `<img src=x onerror=alert(1)>`
	doc := `{"now": "2026-05-03T12:00:00Z", "daemon": {"running": true},
	  "stores": [{"name": "` + strings.ReplaceAll(evil, `"`, `\"`) + `", "verify_days": 3}, {"name": "s\"3", "verify_days": 3}],
	  "verified": [
	    {"store": "` + evil + `", "part": "1/3", "time": "2026-05-03T01:00:00Z", "problems": [
	      {"object": "packs/<b>", "reason": "<script>alert(2)</script>", "versions": ["0badc0de (<i>x 2026-05-02 01:00)", "0badc0de (w\"1 2026-05-02 01:00)"]}]},
	    {"store": "s\"3", "part": "1/3", "time": "2026-05-03T01:00:00Z", "error": "<script>alert(3)</script>"}],
	  "hosts": []}`
	r.src.setStatus([]byte(doc))
	c, _ := r.loggedIn()
	resp, err := c.Get(r.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	for _, bad := range []string{"<img", "<script>alert", "<b>", "<i>", `"/units/w"1"`, `id="reading-s"3"`} {
		if strings.Contains(page, bad) {
			t.Errorf("the overview has %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;", "&lt;script&gt;alert(3)&lt;/script&gt;", `href="/units/w%221"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

// readings tells when the next reading is due, in the pages' zone, and
// keeps the damage a failed reading carries.
func TestReadingsNext(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	next := time.Date(2026, 5, 4, 1, 0, 0, 0, time.UTC)
	now := time.Date(2026, 5, 3, 22, 30, 0, 0, time.UTC) // 4 May 00:30 in Berlin
	for _, tc := range []struct {
		name     string
		zone     *time.Location
		running  bool
		next     *time.Time
		rec      *verifyRecord
		days     int
		want     string
		damaged  bool
		failed   bool
		unlisted bool
	}{
		{name: "read today", zone: time.UTC, running: true, next: &next, days: 30,
			rec:  &verifyRecord{Part: "3/30", Time: time.Date(2026, 5, 3, 1, 0, 0, 0, time.UTC)},
			want: "the next part is read after the first run on 2026-05-04"},
		{name: "read yesterday in the zone", zone: berlin, running: true, next: &next, days: 30,
			rec:  &verifyRecord{Part: "3/30", Time: time.Date(2026, 5, 3, 1, 0, 0, 0, time.UTC)},
			want: "the next part is read after the daemon's next run (2026-05-04 03:00 CEST)"},
		{name: "never read, daemon stopped", zone: time.UTC, days: 30,
			want: "not read yet: the first part is read after the daemon's next run, once the daemon runs again"},
		{name: "off", zone: time.UTC, running: true, next: &next, days: 0,
			want: "off: this store's verify_days is 0"},
		{name: "failed, earlier damage kept", zone: time.UTC, running: true, next: &next, days: 30,
			rec: &verifyRecord{Part: "4/30", Time: now, Error: "store unreachable",
				Problems: []store.Problem{{Object: "packs/aa/aa", Reason: "hash mismatch", Versions: []string{"0123abcd (worker1 2026-05-01 01:00)"}}}},
			want: "tried again after the daemon's next run (2026-05-04 01:00 UTC)", damaged: true, failed: true},
		{name: "store no longer configured", zone: time.UTC, running: true, next: &next, days: -1, unlisted: true,
			rec:  &verifyRecord{Part: "1/1", Time: now, Problems: []store.Problem{{Object: "packs/bb/bb", Reason: "missing"}}},
			want: "the next part is read after the first run on 2026-05-04", damaged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &statusDoc{Now: now}
			st.Daemon.Running, st.Daemon.NextRun = tc.running, tc.next
			if !tc.unlisted {
				st.Stores = []configuredStore{{Name: "s", VerifyDays: tc.days}}
			}
			if tc.rec != nil {
				rec := *tc.rec
				rec.Store = "s"
				st.Verified = []verifyRecord{rec}
			}
			rs := readings(st, tc.zone)
			if len(rs) != 1 {
				t.Fatalf("%d readings, want 1", len(rs))
			}
			r := rs[0]
			if !strings.Contains(r.Next, tc.want) || r.Damaged() != tc.damaged || (r.Failed != "") != tc.failed || r.Store != "s" {
				t.Errorf("reading %+v; want next %q, damaged %v, failed %v", r, tc.want, tc.damaged, tc.failed)
			}
		})
	}
}

// A unit's page marks the versions the daemon found damaged in a store,
// and points their download and restore at a store that holds them sound.
func TestUnitPageMarksDamagedVersions(t *testing.T) {
	r := newRig(t, false)
	r.src.names = []string{"usb", "local"} // both hold every version
	ctx := context.Background()
	w, err := store.NewWriter(ctx, r.repo)
	if err != nil {
		t.Fatal(err)
	}
	var vs []*store.Version
	for d := range 2 {
		p := w.Begin("worker1")
		if _, err := p.Add(ctx, "config.ini", 0o644, time.Now(), strings.NewReader(fmt.Sprintf("[day]\nn = %d\n", d))); err != nil {
			t.Fatal(err)
		}
		res := p.Commit(ctx, store.Version{Time: time.Date(2026, 5, 1+d, 1, 0, 0, 0, time.UTC), Zone: "UTC", Kind: store.KindBackup, Source: "pioreactor"})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		vs = append(vs, res[0].Version)
	}
	bad, good := vs[0], vs[1]
	label := fmt.Sprintf("%s (worker1 %s)", bad.ShortID(), bad.Time.Format("2006-01-02 15:04"))
	for _, tc := range []struct {
		name            string
		damagedIn       []string
		note, linkStore string
	}{
		{"damaged in one store", []string{"usb"}, "damaged in store usb: download and restore use store local", "local"},
		{"damaged in every store", []string{"usb", "local"}, "damaged in usb, local, every store that holds it", "usb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []string
			for _, s := range tc.damagedIn {
				recs = append(recs, fmt.Sprintf(`{"store": %q, "part": "1/1", "time": "2026-05-03T01:00:00Z", "problems": [{"object": "packs/aa/aa", "reason": "hash mismatch", "versions": [%q]}]}`, s, label))
			}
			r.src.setStatus([]byte(`{"now": "2026-05-03T12:00:00Z", "daemon": {"running": true}, "hosts": [],
				"stores": [{"name": "usb", "verify_days": 1}, {"name": "local", "verify_days": 1}], "verified": [` + strings.Join(recs, ",") + `]}`))
			c, _ := r.loggedIn()
			resp, err := c.Get(r.ts.URL + "/units/worker1")
			if err != nil {
				t.Fatal(err)
			}
			page := body(t, resp)
			row := element(page, "v-"+bad.ShortID(), "</div>\n</li>")
			for _, want := range []string{`<span class="flag damaged">DAMAGED</span>`, tc.note,
				"/units/worker1/versions/" + tc.linkStore + "/" + bad.ID + "/zip", "restore?version=" + bad.ID + "&amp;store=" + tc.linkStore} {
				if !strings.Contains(row, want) {
					t.Errorf("the damaged version's row lacks %q:\n%s", want, row)
				}
			}
			if row := element(page, "v-"+good.ShortID(), "</div>\n</li>"); strings.Contains(row, "DAMAGED") || !strings.Contains(row, "/versions/usb/"+good.ID+"/zip") {
				t.Errorf("the sound version's row:\n%s", row)
			}
		})
	}
}
