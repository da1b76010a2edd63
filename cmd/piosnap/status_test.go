package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	sf := &statusFile{
		PID: 4242, Started: started, State: "last run 2026-05-03 02:30 UTC: 1 host(s) failed: [worker2]", NextRun: &next,
		LastRun: &notify.Event{RunID: "ab12cd34", Time: time.Date(2026, 5, 3, 2, 30, 0, 0, time.UTC), Result: "partial", Hosts: []notify.HostResult{
			{Host: "leader1", OK: true, Stores: []notify.StoreResult{{Store: "local", Version: "0123", StoredBytes: 61440}, {Store: "offsite", Version: "0123", StoredBytes: 61440}}},
			{Host: "worker1", Stores: []notify.StoreResult{{Store: "local", Version: "4567", StoredBytes: 0}, {Store: "offsite", Error: "SlowDown: retry later"}}},
			{Host: "worker2", Error: "connection refused"},
		}},
		Retention: []retentionRecord{{Store: "local", Removed: 3, Freed: 5 << 20}, {Store: "offsite", Error: "repository is locked"}},
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
		sf       *statusFile
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

func TestDaemonAlive(t *testing.T) {
	stopped := time.Now()
	for _, tc := range []struct {
		name string
		sf   statusFile
		want bool
	}{
		{"this process", statusFile{PID: os.Getpid(), BootID: bootID()}, true},
		{"stopped cleanly", statusFile{PID: os.Getpid(), Stopped: &stopped}, false},
		{"no pid", statusFile{}, false},
		{"dead pid", statusFile{PID: 1 << 22}, false},
		{"earlier boot", statusFile{PID: os.Getpid(), BootID: "not-this-boot"}, bootID() == ""},
	} {
		if got := daemonAlive(&tc.sf); got != tc.want {
			t.Errorf("%s: alive = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestReadStatusFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.json"), "has not started"},
		{bad, "not valid JSON"},
	} {
		if _, err := readStatusFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readStatusFile(%s) = %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
}

func TestStatusFileUnwritable(t *testing.T) {
	var logs bytes.Buffer
	d := &daemon{base: &app{}, log: newLogger(&logs, nil, "text", "info"), statusPath: filepath.Join(t.TempDir(), "missing-dir", statusFileName)}
	d.writeStatus()
	d.writeStatus()
	if n := strings.Count(logs.String(), "cannot write the status file"); n != 1 {
		t.Errorf("%d warnings, want exactly one:\n%s", n, logs.String())
	}
	if err := os.MkdirAll(filepath.Dir(d.statusPath), 0o700); err != nil {
		t.Fatal(err)
	}
	d.status.PID = 7
	d.writeStatus()
	sf, err := readStatusFile(d.statusPath)
	if err != nil || sf.PID != 7 {
		t.Fatalf("status file %+v, %v", sf, err)
	}
	if !strings.Contains(logs.String(), "status file written again") {
		t.Errorf("no recovery line:\n%s", logs.String())
	}
}

func TestFailureReason(t *testing.T) {
	ev := notify.Event{RunID: "ab12", Result: "partial", Hosts: []notify.HostResult{
		{Host: "leader1", OK: true},
		{Host: "worker1", Stores: []notify.StoreResult{{Store: "local"}, {Store: "s3", Error: "SlowDown"}}},
		{Host: "worker2", Error: "connection refused"},
	}}
	got := failureReason(ev, []retentionRecord{{Store: "local"}, {Store: "s3", Error: "locked"}})
	want := "piosnap run ab12: partial\nworker1: store s3: SlowDown\nworker2: connection refused\nretention in store s3: locked\n"
	if got != want {
		t.Errorf("reason:\n%s\nwant:\n%s", got, want)
	}
	ev = notify.Event{RunID: "cd34", Result: "failure", Error: "store \"local\": repository is locked"}
	if got := failureReason(ev, nil); !strings.Contains(got, "error: store \"local\": repository is locked") {
		t.Errorf("reason %q", got)
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	// The status file written by one version is read by `status`.
	next := time.Date(2026, 5, 4, 2, 30, 0, 0, time.UTC)
	in := statusFile{PID: 1, Schedule: "@daily", NextRun: &next, LastRun: &notify.Event{RunID: "x", Result: "success"}}
	b, _ := json.Marshal(in)
	path := filepath.Join(t.TempDir(), statusFileName)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := readStatusFile(path)
	if err != nil || out.Schedule != "@daily" || !out.NextRun.Equal(next) || out.LastRun.RunID != "x" {
		t.Errorf("read back %+v, %v", out, err)
	}
}
