package web

import (
	"strings"
	"testing"
	"time"
)

// A stale source on a schedule of its own is explained with its own
// threshold, the other hosts with stale_after.
func TestStaleReasonOwnSchedule(t *testing.T) {
	st, err := parseStatus([]byte(`{"stale_after_seconds": 129600, "hosts": [
		{"host": "cells", "newest": "2026-04-20T03:00:00Z", "age_seconds": 864000, "stale": true, "stale_after_seconds": 648000, "stores": []},
		{"host": "worker1", "newest": "2026-04-28T03:00:00Z", "age_seconds": 172800, "stale": true, "stores": []}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cells":   "more than its own schedule allows (7 days 12 h)",
		"worker1": "more than stale_after (36 h)",
	}
	for _, u := range buildOverview(st, nil, time.UTC).Units {
		if len(u.Flags) != 1 || !strings.Contains(u.Flags[0].Reason, want[u.Host]) {
			t.Errorf("%s: flags %+v, want a STALE reason with %q", u.Host, u.Flags, want[u.Host])
		}
	}
}
