package scheduler

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A host with a schedule of its own is backed up at its own slots, with
// its name; the main schedule's runs (nil) leave it out; a failure of it
// is retried on its own; and the main schedule's hosts do not wait for it.
func TestRunHostSchedules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader") // the main schedule's hosts; cells is backed up only when named
		r.dur = 5 * time.Minute
		// The bubble starts on Saturday 1 January 2000. cells is backed up
		// on Sundays at 04:00, and its first attempt fails.
		r.fail = func(host string, call int) bool { return host == "cells" && call == 2 }
		s := mustNew(t, Config{
			Schedule: "0 2 * * *", HostSchedules: map[string]string{"cells": "0 4 * * 0"},
			RetryBase: time.Minute, RetryMax: time.Hour, MaxRetries: 2,
		}, r)
		stop := start(t, s)
		time.Sleep(9*24*time.Hour + time.Hour)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		h := time.Hour
		var got []string
		for _, c := range r.snapshot() {
			got = append(got, c.start.Sub(bubbleStart).String()+" "+strings.Join(c.hosts, ","))
		}
		want := []string{
			"0s ",         // catch-up of the main schedule: nothing stored yet
			"5m0s cells",  // catch-up of cells (its slot of 26 December), which fails
			"11m0s cells", // retried a minute after
		}
		for d := range 9 { // the main schedule daily at 02:00, cells on Sundays at 04:00
			want = append(want, (time.Duration(d)*24*h+2*h).String()+" ")
			if d == 1 || d == 8 {
				want = append(want, (time.Duration(d)*24*h+4*h).String()+" cells")
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("runs (start, hosts):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if want := bubbleStart.Add(9*24*h + 2*h); !s.Snapshot().Next.Equal(want) {
			t.Errorf("Next = %s, want %s (the earliest slot of any schedule)", s.Snapshot().Next, want)
		}
	})
}

func TestHostScheduleErrors(t *testing.T) {
	r := newRepo("leader")
	_, err := New(Config{Schedule: "@daily", HostSchedules: map[string]string{"cells": "weekly"}}, r, r.job, nil)
	if err == nil || !strings.Contains(err.Error(), `schedule of cells: schedule "weekly"`) {
		t.Errorf("New = %v, want an error naming the host and its schedule", err)
	}
}

func TestDueHost(t *testing.T) {
	slot := time.Date(2026, 5, 3, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		newest, slot time.Time
		run          bool
		want         string
	}{
		{time.Time{}, slot, true, "no version of cells stored yet"},
		{slot.Add(-time.Hour), slot, true, "older than the slot 2026-05-03T04:00:00Z of its own schedule"},
		{slot, slot, false, "has a version from the slot"},
		{slot.Add(-time.Hour), time.Time{}, false, "no slot before now"},
	} {
		run, reason := DueHost(tc.newest, "cells", tc.slot)
		if run != tc.run || !strings.Contains(reason, tc.want) {
			t.Errorf("DueHost(%s, %s) = %v %q, want %v %q", tc.newest, tc.slot, run, reason, tc.run, tc.want)
		}
	}
}
