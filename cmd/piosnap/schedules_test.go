package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
)

// A source with a schedule of its own is left out of the daemon's runs at
// the global schedule's slots and backed up at its own; `piosnap backup`
// and the web page's "back up now" still take every source.
func TestDaemonOwnSchedule(t *testing.T) {
	tmp := t.TempDir()
	var sources strings.Builder
	for _, s := range []struct{ name, schedule string }{{"cells", "0 3 * * sun"}, {"wiki", ""}} {
		root := filepath.Join(tmp, s.name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte(s.name), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sources, "\n[[source]]\nkind = \"dir\"\nname = %q\npaths = [%q]\n", s.name, root)
		if s.schedule != "" {
			fmt.Fprintf(&sources, "schedule = %q\n", s.schedule)
		}
	}
	cfgPath := filepath.Join(tmp, "piosnap.toml")
	text := fmt.Sprintf("zone = \"UTC\"\nschedule = \"30 1 * * *\"\nstate_dir = %q\n[[store]]\nname = \"local\"\npath = %q\n%s",
		filepath.Join(tmp, "state"), filepath.Join(tmp, "repo"), sources.String())
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cliRun(t, cfgPath, "init"); code != exitOK {
		t.Fatalf("init: %s", errs)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{env: Env{Getenv: func(string) string { return "" }}, configPath: cfgPath, cfg: cfg, log: newLogger(&strings.Builder{}, func(string) string { return "" }, "text", "error")}
	d, err := newDaemon(a)
	if err != nil {
		t.Fatal(err)
	}
	hosts := func() []string {
		var out []string
		for _, v := range cliVersions(t, cfgPath) {
			out = append(out, v.Host)
		}
		slices.Sort(out)
		return out
	}
	ctx := context.Background()
	if failed, err := d.ScheduledJob(ctx, nil); err != nil || len(failed) != 0 {
		t.Fatalf("global slot: %v %v", failed, err)
	}
	if got := hosts(); !slices.Equal(got, []string{"wiki"}) {
		t.Errorf("after a global slot: versions of %v, want wiki only", got)
	}
	if failed, err := d.ScheduledJob(ctx, []string{"cells"}); err != nil || len(failed) != 0 {
		t.Fatalf("cells' slot: %v %v", failed, err)
	}
	if got := hosts(); !slices.Equal(got, []string{"cells", "wiki"}) {
		t.Errorf("after cells' slot: versions of %v, want cells and wiki", got)
	}
	if _, err := d.Job(ctx, nil); err != nil { // back up now, from the web page
		t.Fatal(err)
	}
	if code, _, errs := cliRun(t, cfgPath, "backup"); code != exitOK {
		t.Fatalf("backup: %s", errs)
	}
	if got := hosts(); !slices.Equal(got, []string{"cells", "cells", "cells", "wiki", "wiki", "wiki"}) {
		t.Errorf("after back up now and piosnap backup: versions of %v, want each source twice more", got)
	}

	// With every source on a schedule of its own and no cluster, a global
	// slot has nothing to do and stores nothing.
	cfg.Sources[1].Schedule = "@weekly"
	before := len(hosts())
	if failed, err := d.ScheduledJob(ctx, nil); err != nil || len(failed) != 0 {
		t.Fatalf("empty global slot: %v %v", failed, err)
	}
	if n := len(hosts()); n != before {
		t.Errorf("an empty global slot stored %d versions", n-before)
	}
}

// A weekly source is stale only once it has missed its week (and 12 hours
// more), while the other hosts keep status.stale_after.
func TestStatusOwnScheduleStaleness(t *testing.T) {
	cfg, err := config.Parse(`zone = "UTC"
[[store]]
path = "/tmp/repo"
[[source]]
kind = "dir"
name = "cells"
paths = ["/var/cells"]
schedule = "0 3 * * sun"
[[source]]
kind = "dir"
name = "wiki"
paths = ["/srv/wiki"]
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC) // a Wednesday
	stale := stalenessOf(cfg, now)
	if got := stale.of("cells"); got != 7*24*time.Hour+12*time.Hour {
		t.Errorf("cells is stale after %s, want 7d12h", got)
	}
	if got := stale.of("wiki"); got != 36*time.Hour {
		t.Errorf("wiki is stale after %s, want stale_after (36h)", got)
	}
	at := func(host string, age time.Duration) *store.Version {
		return &store.Version{ID: host + age.String(), Host: host, Time: now.Add(-age)}
	}
	versions := map[string][]*store.Version{"local": {at("cells", 3*24*time.Hour), at("wiki", 3*24*time.Hour)}}
	rep := buildStatus(now, "p", nil, os.ErrNotExist, false, versions, []string{"cells", "wiki"}, nil, stale)
	for _, h := range rep.Hosts {
		if want := h.Host == "wiki"; h.Stale != want {
			t.Errorf("%s three days old: stale %v, want %v", h.Host, h.Stale, want)
		}
		if h.Host == "cells" && h.StaleAfter != (7*24*time.Hour+12*time.Hour).Seconds() {
			t.Errorf("cells' stale_after_seconds = %v", h.StaleAfter)
		}
	}
	versions = map[string][]*store.Version{"local": {at("cells", 8*24*time.Hour)}}
	rep = buildStatus(now, "p", nil, os.ErrNotExist, false, versions, []string{"cells"}, nil, stale)
	if len(rep.Hosts) != 1 || !rep.Hosts[0].Stale || !rep.Hosts[0].Stores[0].Stale {
		t.Errorf("cells eight days old: %+v, want stale", rep.Hosts)
	}
}

// `piosnap status` names a source's own threshold.
func TestStatusTextOwnSchedule(t *testing.T) {
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	versions := map[string][]*store.Version{"local": {{ID: "a", Host: "cells", Time: now.Add(-3 * 24 * time.Hour)}}}
	rep := buildStatus(now, "p", nil, os.ErrNotExist, false, versions, []string{"cells"}, nil,
		staleness{after: 36 * time.Hour, own: map[string]time.Duration{"cells": 180 * time.Hour}})
	var b strings.Builder
	printStatus(&b, rep, time.UTC)
	if !strings.Contains(b.String(), "cells        newest 2026-05-03 12:00:00 UTC (3d0h ago)  (own schedule: stale after 7d12h)") {
		t.Errorf("status:\n%s", b.String())
	}
}
