package daemon

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/store"
)

// scrape returns the registry's exposition, parsed.
func (m *daemonMetrics) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	var b bytes.Buffer
	if _, err := m.reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// A host whose pull fails reads 0 in every store, with 0 new bytes, however
// its earlier runs went; a run that fails as a whole sets every host to 0;
// a unit never backed up has a last-success series (at 0) for the stale
// alert.
func TestMetricsFailedHostReadsZeroEverywhere(t *testing.T) {
	m := newDaemonMetrics()
	stores := []string{"local", "offsite"}
	ok := func(host string) notify.HostResult {
		h := notify.HostResult{Host: host, OK: true}
		for _, s := range stores {
			h.Stores = append(h.Stores, notify.StoreResult{Store: s, Version: "v-" + host + "-" + s, StoredBytes: 1000})
		}
		return h
	}
	start := time.Now()
	m.recordRun(notify.Event{Result: "success", Hosts: []notify.HostResult{ok("leader1"), ok("worker1")}}, start, stores)
	m.recordHost("worker1", 5000, 3*time.Second, true)

	failed := notify.HostResult{Host: "worker1", Error: "worker1 unreachable at worker1.local:80", Stores: []notify.StoreResult{}}
	m.recordRun(notify.Event{Result: "partial", Hosts: []notify.HostResult{ok("leader1"), failed}}, start, stores)
	m.recordHost("worker1", 0, 200*time.Millisecond, false)
	got := m.scrape(t)
	for _, s := range stores {
		for host, want := range map[string]float64{"leader1": 1, "worker1": 0} {
			l := fmt.Sprintf(`{host=%q,store=%q}`, host, s)
			if v, present := got["piosnap_last_run_success"+l]; !present || v != want {
				t.Errorf("piosnap_last_run_success%s = %v (present %v), want %v", l, v, present, want)
			}
		}
		if v := got[fmt.Sprintf(`piosnap_last_run_new_bytes{host="worker1",store=%q}`, s)]; v != 0 {
			t.Errorf("failed worker1 still shows %v new bytes in %s from an earlier run", v, s)
		}
	}
	if v := got[`piosnap_last_run_duration_seconds{host="worker1"}`]; v != 0.2 {
		t.Errorf("worker1 duration %v, want the failed run's 0.2 s", v)
	}

	// One store missing from a host's results (it failed for that host).
	partial := ok("leader1")
	partial.Stores = partial.Stores[:1]
	m.recordRun(notify.Event{Result: "partial", Hosts: []notify.HostResult{partial}}, start, stores)
	if v := m.scrape(t)[`piosnap_last_run_success{host="leader1",store="offsite"}`]; v != 0 {
		t.Errorf("leader1 in offsite = %v after a run that did not store it there, want 0", v)
	}

	m.recordRun(notify.Event{Result: "success", Hosts: []notify.HostResult{ok("leader1")}}, start, stores)
	m.recordRun(notify.Event{Result: "failure", Error: "ask the leader for its units: unreachable"}, start, stores)
	for k, v := range m.scrape(t) {
		if (bytes.HasPrefix([]byte(k), []byte("piosnap_last_run_success{")) || bytes.HasPrefix([]byte(k), []byte("piosnap_last_run_new_bytes{"))) && v != 0 {
			t.Errorf("after a run that failed as a whole, %s = %v, want 0", k, v)
		}
	}

	m.recordVersions("local", []*store.Version{{Host: "leader1", Time: start}}, []string{"leader1", "worker2"})
	got = m.scrape(t)
	if v, present := got[`piosnap_last_success_timestamp_seconds{host="worker2",store="local"}`]; !present || v != 0 {
		t.Errorf("never backed-up worker2: last success %v (present %v), want a series at 0", v, present)
	}
	if v, present := got[`piosnap_versions{host="worker2",store="local"}`]; !present || v != 0 {
		t.Errorf("never backed-up worker2: versions %v (present %v), want a series at 0", v, present)
	}
}

// piosnap_expected_interval_seconds follows each host's schedule: the
// global one for a unit, its own for a source that has one.
func TestMetricsIntervalPerSchedule(t *testing.T) {
	cfg, err := config.Parse("zone = \"UTC\"\nschedule = \"30 1 * * *\"\n[[store]]\npath = \"/tmp/repo\"\n[pioreactor]\nleader = \"localhost\"\n[[source]]\nkind = \"dir\"\nname = \"cells\"\npaths = [\"/var/cells\"]\nschedule = \"0 3 * * sun\"\n")
	if err != nil {
		t.Fatal(err)
	}
	m := newDaemonMetrics()
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	m.recordVersions("local", []*store.Version{{Host: "leader1", Time: now}, {Host: "cells", Time: now}}, []string{"leader1", "cells"})
	m.setInterval(func(host string) time.Duration { return scheduler.Interval(cfg.ScheduleOf(host), cfg.Location(), now) })
	got := m.scrape(t)
	for host, want := range map[string]float64{"leader1": 86400, "cells": 7 * 86400} {
		if v := got[fmt.Sprintf(`piosnap_expected_interval_seconds{host=%q,store="local"}`, host)]; v != want {
			t.Errorf("%s: expected interval %v, want %v", host, v, want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The exposition's names, help texts and labels are what dashboards and
// alerts use (README.md, "Monitoring"): testdata/metrics.txt pins them.
func TestMetricsText(t *testing.T) {
	m := newDaemonMetrics()
	start := time.Date(2026, 5, 3, 2, 30, 0, 0, time.UTC)
	m.recordRun(notify.Event{Result: "partial", Hosts: []notify.HostResult{
		{Host: "leader1", OK: true, Stores: []notify.StoreResult{{Store: "local", Version: "v1", StoredBytes: 61440}}},
		{Host: "worker1", Error: "connection refused"},
	}}, start, []string{"local"})
	m.recordHost("leader1", 1<<20, 1500*time.Millisecond, true)
	m.recordHost("worker1", 0, 3*time.Second, false)
	m.recordVersions("local", []*store.Version{{Host: "leader1", Time: start}, {Host: "leader1", Time: start.Add(-24 * time.Hour)}}, []string{"leader1", "worker1"})
	m.retentionOK("local", start.Add(time.Minute))
	m.setInterval(func(string) time.Duration { return 24 * time.Hour })
	var b bytes.Buffer
	if _, err := m.reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "metrics.txt")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("exposition differs from %s:\n--- got\n%s--- want\n%s", path, b.Bytes(), want)
	}
}
