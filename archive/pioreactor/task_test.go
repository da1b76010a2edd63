package pioreactor

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// taskReplies returns task_results replies of every contract, by name.
func taskReplies() map[string]struct {
	status int
	body   string
} {
	return map[string]struct {
		status int
		body   string
	}{
		"pending":      {202, `{"status": "pending", "task_id": "t1", "result_url_path": "/unit_api/task_results/t1"}`},
		"running":      {202, `{"status": "running", "error": "task is locked and already running.", "cause": "locked", "remediation": "wait", "task_id": "t1"}`},
		"succeeded":    {200, `{"status": "succeeded", "result": true, "task_id": "t1"}`},
		"failed":       {200, `{"status": "failed", "error": "Failed to write new DOT_PIOREACTOR contents", "cause": "Huey task failed with an exception.", "remediation": "Check logs and retry.", "task_id": "t1"}`},
		"old-pending":  {202, `{"status": "pending or not present"}`},
		"old-complete": {200, `{"status": "complete", "result": true}`},
		"old-failed":   {500, `{"status": "failed", "error": "boom"}`},
		"in_progress":  {202, `{"status": "in_progress"}`},
		"unknown":      {200, `{"status": "weird"}`},
		"html":         {200, `<html>hi</html>`},
		"404":          {404, `<html><title>404 Not Found</title></html>`},
	}
}

func TestTaskResult(t *testing.T) {
	tests := []struct {
		reply string
		state TaskState
		kind  error // ErrProtocol, or nil with state, or errAPI for an *APIError
	}{
		{"pending", TaskPending, nil},
		{"running", TaskRunning, nil},
		{"succeeded", TaskSucceeded, nil},
		{"failed", TaskFailed, nil},
		{"old-pending", TaskPending, nil},
		{"old-complete", TaskSucceeded, nil},
		{"old-failed", TaskFailed, nil},
		{"in_progress", TaskRunning, nil},
		{"unknown", "", ErrProtocol},
		{"html", "", ErrProtocol},
		{"404", "", errAPI},
	}
	for _, tt := range tests {
		t.Run(tt.reply, func(t *testing.T) {
			var path string
			r := taskReplies()[tt.reply]
			addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				path = req.URL.Path
				reply(w, r.status, r.body)
			}))
			c := newClient(t, addr, map[string]string{"worker2": addr})
			st, err := c.TaskResult(testContext(t), "worker2", "t1")
			if path != "/unit_api/task_results/t1" {
				t.Errorf("path %q", path)
			}
			switch tt.kind {
			case nil:
				if err != nil || st.State != tt.state {
					t.Fatalf("state %q, err %v; want %q", st.State, err, tt.state)
				}
			case errAPI:
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != r.status {
					t.Fatalf("err = %v, want the HTTP %d reply", err, r.status)
				}
			default:
				checkErr(t, err, tt.kind, "")
			}
			if tt.reply == "failed" && (st.Error != "Failed to write new DOT_PIOREACTOR contents" || st.Cause == "" || st.Remediation == "") {
				t.Errorf("failure details lost: %+v", st)
			}
		})
	}
}

var errAPI = errors.New("an *APIError")

// phase is one stretch of a scripted unit's life.
type phase struct {
	requests int    // requests the phase answers; 0: all that follow
	task     string // taskReplies key; "" with down
	down     bool   // drop every connection
}

// scriptedUnit plays phases in order, each for its number of requests, so
// that what the client sees does not depend on how fast it polls; the last
// phase lasts forever.
func scriptedUnit(t *testing.T, phases ...phase) string {
	var mu sync.Mutex
	served := 0
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := served
		served++
		mu.Unlock()
		p := phases[len(phases)-1]
		for _, q := range phases {
			if n < q.requests {
				p = q
				break
			}
			n -= q.requests
		}
		if p.down {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if r.URL.Path == "/unit_api/health" {
			reply(w, 200, `{"status": "ok", "pioreactor_unit": "worker2", "utc_time": "2026-08-04T16:54:52.123Z"}`)
			return
		}
		tr := taskReplies()[p.task]
		reply(w, tr.status, tr.body)
	}))
}

func TestWaitImport(t *testing.T) {
	// The timeouts of fast only bound a hang: every phase below ends after
	// a few requests.
	fast := WaitOptions{PollInterval: 10 * time.Millisecond, PendingTimeout: time.Minute, RebootTimeout: time.Minute, ComeBackTimeout: time.Minute}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name   string
		phases []phase
		opts   WaitOptions
		want   ImportOutcome
		kind   error
		msg    string
	}{
		{"succeeded then reboot", []phase{{2, "pending", false}, {1, "succeeded", false}, {3, "", true}, {0, "pending", false}}, fast,
			ImportOutcome{Unit: "worker2", Succeeded: true, Rebooted: true}, nil, ""},
		{"old contract", []phase{{2, "old-pending", false}, {1, "old-complete", false}, {3, "", true}, {0, "old-pending", false}}, fast,
			ImportOutcome{Unit: "worker2", Succeeded: true, Rebooted: true}, nil, ""},
		// The reboot happens between two polls: it is never seen down, but
		// the task result is gone afterwards.
		{"reboot between polls", []phase{{1, "succeeded", false}, {0, "pending", false}}, WaitOptions{PollInterval: ms(50), RebootTimeout: time.Minute},
			ImportOutcome{Unit: "worker2", Succeeded: true, Rebooted: true}, nil, ""},
		{"dropped while pending", []phase{{2, "pending", false}, {3, "", true}, {0, "pending", false}}, fast,
			ImportOutcome{Unit: "worker2", Rebooted: true}, nil, ""},
		{"failed", []phase{{2, "pending", false}, {0, "failed", false}}, fast, ImportOutcome{Unit: "worker2"}, ErrImportFailed,
			"import into worker2 failed: Failed to write new DOT_PIOREACTOR contents (Huey task failed with an exception.); the unit restores its previous files on failure, check its logs and retry"},
		{"old failed", []phase{{0, "old-failed", false}}, fast, ImportOutcome{Unit: "worker2"}, ErrImportFailed, ""},
		{"locked", []phase{{0, "running", false}}, fast, ImportOutcome{Unit: "worker2"}, ErrImportLocked,
			"worker2 was already running another import, so task t1 did not run: wait for it to finish, then upload again"},
		{"never comes back", []phase{{1, "succeeded", false}, {0, "", true}}, WaitOptions{PollInterval: ms(10), ComeBackTimeout: ms(200)},
			ImportOutcome{Unit: "worker2", Succeeded: true}, ErrNoComeback,
			"worker2 did not come back within 200ms after the import; check its power and network"},
		{"no reboot", []phase{{0, "succeeded", false}}, WaitOptions{PollInterval: ms(10), RebootTimeout: ms(150)},
			ImportOutcome{Unit: "worker2", Succeeded: true}, ErrNoReboot,
			"worker2 imported the archive but did not reboot within 150ms: reboot worker2 to finish the import"},
		{"stuck pending", []phase{{0, "pending", false}}, WaitOptions{PollInterval: ms(10), PendingTimeout: ms(100)},
			ImportOutcome{Unit: "worker2"}, ErrProtocol,
			"import task t1 on worker2 is still pending after 100ms: check the unit's logs and whether it is importing"},
		{"unexpected reply", []phase{{0, "404", false}}, fast, ImportOutcome{Unit: "worker2"}, errAPI, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scriptedUnit(t, tt.phases...)
			c := newClient(t, addr, map[string]string{"worker2": addr}, func(c *Config) { c.Timeout = time.Minute })
			out, err := c.WaitImport(testContext(t), "worker2", &Task{Unit: "worker2", TaskID: "t1"}, tt.opts)
			if tt.kind == errAPI {
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v, want an *APIError", err)
				}
			} else {
				checkErr(t, err, tt.kind, tt.msg)
			}
			if tt.want.Rebooted {
				tt.want.Health = Health{Status: "ok", Unit: "worker2", UTCTime: "2026-08-04T16:54:52.123Z"}
			}
			if out != tt.want {
				t.Fatalf("outcome %+v, want %+v", out, tt.want)
			}
		})
	}
}

func TestWaitImportNoTaskID(t *testing.T) {
	c := newClient(t, "127.0.0.1:1", nil)
	_, err := c.WaitImport(testContext(t), "worker2", &Task{Unit: "worker2"}, WaitOptions{})
	checkErr(t, err, ErrProtocol, "")
	if !strings.Contains(err.Error(), "TESTING=1") {
		t.Fatalf("message %q does not explain the likely cause", err)
	}
}

func TestWaitImportCanceled(t *testing.T) {
	tests := []struct {
		name  string
		phase phase
	}{
		{"while pending", phase{0, "pending", false}},
		{"while waiting for the reboot", phase{0, "succeeded", false}},
		{"while waiting for the comeback", phase{0, "", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scriptedUnit(t, tt.phase)
			c := newClient(t, addr, map[string]string{"worker2": addr})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := c.WaitImport(ctx, "worker2", &Task{TaskID: "t1"}, WaitOptions{PollInterval: 10 * time.Millisecond})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestWaitOptionsDefaults(t *testing.T) {
	got := WaitOptions{PollInterval: time.Second}.withDefaults()
	want := WaitOptions{PollInterval: time.Second, PendingTimeout: DefaultPendingTimeout, RebootTimeout: DefaultRebootTimeout, ComeBackTimeout: DefaultComeBackTimeout}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if DefaultPollInterval < 500*time.Millisecond || DefaultPollInterval > time.Second {
		t.Fatalf("DefaultPollInterval %v is outside the 0.5-1 s the unit's reboot window allows", DefaultPollInterval)
	}
}
