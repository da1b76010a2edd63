package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
)

// apiToken asks /api/session for c's CSRF token.
func (r *rig) apiToken(c *http.Client) string {
	r.t.Helper()
	resp, err := c.Get(r.ts.URL + "/api/session")
	if err != nil {
		r.t.Fatal(err)
	}
	var s struct {
		CSRF string `json:"csrf_token"`
		Idle int64  `json:"idle_timeout_seconds"`
	}
	b := body(r.t, resp)
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(b), &s) != nil || s.CSRF == "" || s.Idle != 3600 {
		r.t.Fatalf("GET /api/session: %s\n%s", resp.Status, b)
	}
	return s.CSRF
}

// postJSON posts payload (a string sent as is, or a value encoded as JSON)
// with the CSRF header and returns the status and the answer.
func (r *rig) postJSON(c *http.Client, path, token string, payload any, header ...string) (int, string) {
	r.t.Helper()
	raw, ok := payload.(string)
	if !ok {
		b, err := json.Marshal(payload)
		if err != nil {
			r.t.Fatal(err)
		}
		raw = string(b)
	}
	req, err := http.NewRequest("POST", r.ts.URL+path, strings.NewReader(raw))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set(csrfHeader, token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, body(r.t, resp)
}

func (r *rig) restoresStarted() int {
	r.runner.mu.Lock()
	defer r.runner.mu.Unlock()
	return len(r.runner.restores)
}

// The JSON API restores as the page does: a check picks the version and
// changes nothing, the restore needs that exact version and the unit's
// name, runs as a job and refuses a second job while it runs.
func TestAPIRestore(t *testing.T) {
	r := newRig(t, false)
	c, _ := r.loggedIn()
	token := r.apiToken(c)

	code, ans := r.postJSON(c, "/api/restore/check", token, APIRestore{Unit: "worker1", At: "2026-05-02"})
	var plan Plan
	if code != http.StatusOK || json.Unmarshal([]byte(ans), &plan) != nil || plan.Store != "local" || len(plan.Version) != 64 || !strings.Contains(strings.Join(plan.Lines, "\n"), "dry run: every check passed") {
		t.Fatalf("check: %d\n%s", code, ans)
	}
	if n := r.restoresStarted(); n != 0 {
		t.Fatalf("the check started %d restores", n)
	}
	code, ans = r.postJSON(c, "/api/restore/check", token, APIRestore{Unit: "gone", At: "latest"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(ans, `"error": "no versions of host \"gone\""`) || !strings.Contains(ans, `"lines": []`) {
		t.Errorf("failed check: %d\n%s", code, ans)
	}

	req := APIRestore{Unit: "worker1", Store: plan.Store, Version: plan.Version, Confirm: "worker1"}
	code, ans = r.postJSON(c, "/api/restore", token, req)
	var job Job
	if code != http.StatusAccepted || json.Unmarshal([]byte(ans), &job) != nil || job.Kind != KindRestore || job.State != StateRunning ||
		job.Request == nil || *job.Request != (RestoreRequest{Unit: "worker1", Store: "local", Version: plan.Version}) {
		t.Fatalf("restore: %d\n%s", code, ans)
	}
	// A second job while the first runs is refused, from the API and the page.
	if code, ans := r.postJSON(c, "/api/restore", token, req); code != http.StatusConflict || !strings.Contains(ans, "a restore of worker1 is running") {
		t.Errorf("second restore: %d\n%s", code, ans)
	}
	close(r.runner.release)
	r.srv.Wait()
	if n := r.restoresStarted(); n != 1 {
		t.Errorf("%d restores reached the Restorer, want 1", n)
	}
	resp, err := c.Get(r.ts.URL + "/api/jobs/" + job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body(t, resp)), &job); err != nil {
		t.Fatal(err)
	}
	if job.State != StateFailed || !strings.Contains(job.Error, "connection reset") || job.SafetyVersion != strings.Repeat("cd", 32) {
		t.Errorf("finished job: %+v", job)
	}
	if !strings.Contains(r.logs.String(), "web: restore started") {
		t.Errorf("the restore is not logged:\n%s", r.logs)
	}
}

// Every request the API must refuse is refused with a message that says
// what to send, and starts nothing.
func TestAPIRestoreRefusals(t *testing.T) {
	r := newRig(t, false)
	c, _ := r.loggedIn()
	token := r.apiToken(c)
	other, _ := r.loggedIn()
	otherToken := r.apiToken(other) // a real token, of another session
	version := strings.Repeat("ab", 32)
	ok := APIRestore{Unit: "worker1", Store: "local", Version: version, Confirm: "worker1"}
	with := func(f func(*APIRestore)) APIRestore { b := ok; f(&b); return b }
	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
		token  string
		body   any
		header []string
		code   int
		want   string
	}{
		{"no session", r.client(), "/api/restore", token, ok, nil, http.StatusUnauthorized, "log in first"},
		{"no CSRF header", c, "/api/restore", "", ok, nil, http.StatusForbidden, "security token"},
		{"another session's token", c, "/api/restore", otherToken, ok, nil, http.StatusForbidden, "security token"},
		{"cross-origin", c, "/api/restore", token, ok, []string{"Origin", "http://evil.example"}, http.StatusForbidden, "another site"},
		{"cross-site fetch", c, "/api/restore", token, ok, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "another site"},
		{"form body", c, "/api/restore", token, "unit=worker1", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, "Content-Type: application/json"},
		{"not JSON", c, "/api/restore", token, "{unit: worker1}", nil, http.StatusBadRequest, "not a valid request"},
		{"unknown field", c, "/api/restore", token, `{"unit": "worker1", "yes": true}`, nil, http.StatusBadRequest, `unknown field \"yes\"`},
		{"two objects", c, "/api/restore", token, `{"unit": "worker1"} {}`, nil, http.StatusBadRequest, "more than one JSON value"},
		{"no unit", c, "/api/restore", token, with(func(b *APIRestore) { b.Unit = "" }), nil, http.StatusBadRequest, `\"unit\" is empty`},
		{"not confirmed", c, "/api/restore", token, with(func(b *APIRestore) { b.Confirm = "" }), nil, http.StatusBadRequest, `set \"confirm\" to the unit's name, \"worker1\"`},
		{"confirmed for another unit", c, "/api/restore", token, with(func(b *APIRestore) { b.Confirm = "worker2" }), nil, http.StatusBadRequest, `set \"confirm\" to the unit's name`},
		{"no store", c, "/api/restore", token, with(func(b *APIRestore) { b.Store = "" }), nil, http.StatusBadRequest, "POST /api/restore/check answered"},
		{"version prefix", c, "/api/restore", token, with(func(b *APIRestore) { b.Version = version[:8] }), nil, http.StatusBadRequest, `full \"version\" (64 characters)`},
		{"version not hex", c, "/api/restore", token, with(func(b *APIRestore) { b.Version = strings.Repeat("zz", 32) }), nil, http.StatusBadRequest, `full \"version\"`},
		{"restore by time", c, "/api/restore", token, with(func(b *APIRestore) { b.At = "latest" }), nil, http.StatusBadRequest, `\"at\" belongs to POST /api/restore/check`},
		{"check without version or at", c, "/api/restore/check", token, APIRestore{Unit: "worker1"}, nil, http.StatusBadRequest, `give \"version\"`},
		{"check with both", c, "/api/restore/check", token, APIRestore{Unit: "worker1", Version: "abcd", At: "latest"}, nil, http.StatusBadRequest, "not both"},
		{"check with confirm", c, "/api/restore/check", token, APIRestore{Unit: "worker1", At: "latest", Confirm: "worker1"}, nil, http.StatusBadRequest, "a check changes nothing"},
		{"check without a unit", c, "/api/restore/check", token, APIRestore{At: "latest"}, nil, http.StatusBadRequest, `\"unit\" is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ans := r.postJSON(tc.client, tc.path, tc.token, tc.body, tc.header...)
			if code != tc.code || !strings.Contains(ans, tc.want) {
				t.Errorf("%d %q; want %d and %q", code, ans, tc.code, tc.want)
			}
		})
	}
	if n := r.restoresStarted(); n != 0 {
		t.Errorf("%d restores reached the Restorer", n)
	}
	if jobs := r.srv.jobs.list(); len(jobs) != 0 {
		t.Errorf("jobs started: %+v", jobs)
	}
}

// A directory source's restore is refused by the API as by the page, with
// the command to run on the server.
func TestAPIRestoreRefusesDirSource(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	w, err := store.NewWriter(ctx, r.repo)
	if err != nil {
		t.Fatal(err)
	}
	p := w.Begin("cells")
	if _, err := p.Add(ctx, "a.txt", 0o644, time.Now(), bytes.NewReader([]byte("alpha"))); err != nil {
		t.Fatal(err)
	}
	res := p.Commit(ctx, store.Version{Time: time.Date(2026, 5, 2, 2, 0, 0, 0, time.UTC), Zone: "UTC", Kind: store.KindBackup, Source: dirSourceKind})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	id := res[0].Version.ID
	c, _ := r.loggedIn()
	token := r.apiToken(c)
	for _, tc := range []struct {
		path string
		body APIRestore
	}{
		{"/api/restore/check", APIRestore{Unit: "cells", At: "latest"}},
		{"/api/restore", APIRestore{Unit: "cells", Store: "local", Version: id, Confirm: "cells"}},
	} {
		code, ans := r.postJSON(c, tc.path, token, tc.body)
		if code != http.StatusBadRequest || !strings.Contains(ans, "sudo piosnap restore --host cells") || !strings.Contains(ans, "Nothing was changed") {
			t.Errorf("POST %s: %d\n%s", tc.path, code, ans)
		}
	}
	if n := r.restoresStarted(); n != 0 {
		t.Errorf("%d restores reached the Restorer", n)
	}
}
