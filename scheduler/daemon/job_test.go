package daemon

import (
	"strings"
	"testing"

	"github.com/piosnap/piosnap/scheduler/notify"
)

// The failure ping names every host and store that failed, and retention
// that failed.
func TestFailureReason(t *testing.T) {
	ev := notify.Event{RunID: "ab12", Result: "partial", Hosts: []notify.HostResult{
		{Host: "leader1", OK: true},
		{Host: "worker1", Stores: []notify.StoreResult{{Store: "local"}, {Store: "s3", Error: "SlowDown"}}},
		{Host: "worker2", Error: "connection refused"},
	}}
	got := failureReason(ev, []RetentionRecord{{Store: "local"}, {Store: "s3", Error: "locked"}})
	want := "piosnap run ab12: partial\nworker1: store s3: SlowDown\nworker2: connection refused\nretention in store s3: locked\n"
	if got != want {
		t.Errorf("reason:\n%s\nwant:\n%s", got, want)
	}
	ev = notify.Event{RunID: "cd34", Result: "failure", Error: "store \"local\": repository is locked"}
	if got := failureReason(ev, nil); !strings.Contains(got, "error: store \"local\": repository is locked") {
		t.Errorf("reason %q", got)
	}
}
