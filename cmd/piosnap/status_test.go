package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestStatusOutput(t *testing.T) {
	now := time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)
	started := now.Add(-50 * time.Hour)
	next := time.Date(2026, 5, 4, 2, 30, 0, 0, time.UTC)
	sf := &daemon.StatusFile{
		PID: 4242, Started: started, State: "last run 2026-05-03 02:30 UTC: 1 host(s) failed: [worker2]", NextRun: &next,
		LastRun: &notify.Event{RunID: "ab12cd34", Time: time.Date(2026, 5, 3, 2, 30, 0, 0, time.UTC), Result: "partial", Hosts: []notify.HostResult{
			{Host: "leader1", OK: true, Stores: []notify.StoreResult{{Store: "local", Version: "0123", StoredBytes: 61440}, {Store: "offsite", Version: "0123", StoredBytes: 61440}}},
			{Host: "worker1", Stores: []notify.StoreResult{{Store: "local", Version: "4567", StoredBytes: 0}, {Store: "offsite", Error: "SlowDown: retry later"}}},
			{Host: "worker2", Error: "connection refused"},
		}},
		Retention: []daemon.RetentionRecord{{Store: "local", Removed: 3, Freed: 5 << 20}, {Store: "offsite", Error: "repository is locked"}},
	}
	v := func(host string, ago time.Duration) *store.Version {
		return &store.Version{Host: host, Time: now.Add(-ago)}
	}
	versions := map[string][]*store.Version{
		"local":   {v("leader1", 9*time.Hour+30*time.Minute), v("leader1", 33*time.Hour), v("worker1", 9*time.Hour+30*time.Minute), v("worker2", 57*time.Hour), v("old3", 400*time.Hour)},
		"offsite": {v("leader1", 9*time.Hour+30*time.Minute), v("worker1", 40*time.Hour)},
	}
	units := []string{"leader1", "worker1", "worker2", "worker3"}
	for _, tc := range []struct {
		name     string
		sf       *daemon.StatusFile
		sfErr    error
		alive    bool
		units    []string
		unitsErr error
	}{
		{name: "running", sf: sf, alive: true, units: units},
		{name: "gone", sf: sf, alive: false, unitsErr: errors.New("dial tcp 127.0.0.1:80: connection refused")},
		{name: "never started", sfErr: errors.New("no status file /var/lib/piosnap/status.json: the daemon (`piosnap run`) has not started with this state_dir"), units: units},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := buildStatus(now, "/var/lib/piosnap/status.json", tc.sf, tc.sfErr, tc.alive, versions, tc.units, tc.unitsErr, staleness{after: 36 * time.Hour})
			var text bytes.Buffer
			printStatus(&text, rep, time.UTC)
			checkGolden(t, "status_"+strings.ReplaceAll(tc.name, " ", "_")+".txt", text.Bytes())
			var js bytes.Buffer
			if err := writeJSON(&js, rep); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "status_"+strings.ReplaceAll(tc.name, " ", "_")+".json", js.Bytes())
		})
	}
}

func TestStatusFlags(t *testing.T) {
	now := time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)
	versions := map[string][]*store.Version{"local": {
		{Host: "fresh", Time: now.Add(-time.Hour)},
		{Host: "stale", Time: now.Add(-37 * time.Hour)},
		{Host: "left", Time: now.Add(-time.Hour)},
	}}
	rep := buildStatus(now, "p", nil, errors.New("none"), false, versions, []string{"fresh", "stale", "new"}, nil, staleness{after: 36 * time.Hour})
	got := map[string][2]bool{}
	for _, h := range rep.Hosts {
		got[h.Host] = [2]bool{h.Stale, h.Departed}
	}
	want := map[string][2]bool{"fresh": {false, false}, "stale": {true, false}, "left": {false, true}, "new": {true, false}}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("%s: stale, departed = %v, want %v", h, got[h], w)
		}
	}
	// Without the leader's list nobody is flagged as departed, and units
	// without versions are unknown.
	rep = buildStatus(now, "p", nil, errors.New("none"), false, versions, nil, errors.New("timeout"), staleness{after: 36 * time.Hour})
	if len(rep.Hosts) != 3 || rep.LeaderError == "" {
		t.Errorf("hosts %+v, leader error %q", rep.Hosts, rep.LeaderError)
	}
	for _, h := range rep.Hosts {
		if h.Departed {
			t.Errorf("%s flagged as departed without the leader's list", h.Host)
		}
	}
}

// Every configured store has a verified line: its last reading, or that
// reading is off or not done yet.
func TestStatusVerifyLines(t *testing.T) {
	at := time.Date(2026, 5, 3, 1, 0, 0, 0, time.UTC)
	rep := &statusReport{
		Verified: []daemon.VerifyRecord{{Store: "local", Part: "3/30", Time: at, PacksRead: 12}},
		Stores:   []configuredStore{{Name: "local", VerifyDays: 30}, {Name: "nas", VerifyDays: 0}, {Name: "fresh", VerifyDays: 7}},
	}
	var b bytes.Buffer
	printStatus(&b, rep, time.UTC)
	for _, want := range []string{
		"verified:  store local, part 3/30 at 2026-05-03 01:00: 12 packs read, no damage\n",
		"verified:  store nas: off (verify_days = 0)\n",
		"verified:  store fresh: not read yet (the daemon reads its first part after its next run)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "store local"); n != 1 {
		t.Errorf("store local has %d lines, want 1:\n%s", n, b.String())
	}
}
