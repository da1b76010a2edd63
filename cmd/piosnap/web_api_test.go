package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/scheduler/web"
)

// postJSON posts v as JSON with the session's CSRF token and decodes the
// answer into out; it returns the status code and the raw answer.
func (c *webClient) postJSON(path, token string, v, out any) (int, string) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(ans, out); err != nil {
			c.t.Fatalf("POST %s: %v\n%s", path, err, ans)
		}
	}
	return resp.StatusCode, string(ans)
}

// TestWebAPIRestore restores a unit through the JSON API of the running
// daemon, as a script would, while an off-site store is unreachable: the
// session's token, a check by date, the
// restore of the checked version confirmed with the unit's name, and the
// job polled until it ends. The calibration written after the version is
// gone afterwards, and the job names the safety snapshot.
func TestWebAPIRestore(t *testing.T) {
	w := newWebRig(t, "1h")
	w1 := w.cluster.Unit("worker1")
	w.mustRun("backup")
	if err := w1.WriteCalibration("od90", "api-later", "curve_data_: [3]\n"); err != nil {
		t.Fatal(err)
	}
	later := filepath.Join(w1.Dir(), "storage", "calibrations", "od90", "api-later.yaml")
	// An off-site store whose server does not answer: the check and the
	// restore use the store that does, as `piosnap restore` would.
	creds := filepath.Join(w.dir, "s3.credentials")
	if err := os.WriteFile(creds, []byte("access_key = AKIAEXAMPLE\nsecret_key = examplesecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(w.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[store]]\nname = \"offsite\"\ntype = \"s3\"\nendpoint = \"127.0.0.1:9\"\nbucket = \"piosnap\"\ntls = false\ncredentials_file = %q\n", creds)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	c := newWebClient(t, w.base)
	var sess struct {
		CSRF string `json:"csrf_token"`
	}
	c.getJSON("/api/session", &sess)

	var plan web.Plan
	if code, ans := c.postJSON("/api/restore/check", sess.CSRF, web.APIRestore{Unit: "worker1", At: "latest"}, &plan); code != http.StatusOK {
		t.Fatalf("check: %d\n%s", code, ans)
	}
	if !strings.Contains(strings.Join(plan.Lines, "\n"), "dry run: every check passed") || len(plan.Version) != 64 {
		t.Fatalf("check: %+v", plan)
	}
	if _, err := os.Stat(later); err != nil {
		t.Fatalf("the check changed the unit: %v", err)
	}
	if code, ans := c.postJSON("/api/restore", sess.CSRF, web.APIRestore{Unit: "worker1", Store: plan.Store, Version: plan.Version}, nil); code != http.StatusBadRequest || !strings.Contains(ans, "confirm") {
		t.Errorf("unconfirmed restore: %d\n%s", code, ans)
	}
	var job web.Job
	if code, ans := c.postJSON("/api/restore", sess.CSRF, web.APIRestore{Unit: "worker1", Store: plan.Store, Version: plan.Version, Confirm: "worker1"}, &job); code != http.StatusAccepted {
		t.Fatalf("restore: %d\n%s", code, ans)
	}
	waitFor(t, 5*time.Minute, "the restore job to end", func() bool {
		c.getJSON("/api/jobs/"+job.ID, &job)
		return !job.Running()
	})
	if job.State != web.StateDone || len(job.SafetyVersion) != 64 {
		t.Fatalf("restore job: %s %q, safety %q\n%s", job.State, job.Error, job.SafetyVersion, strings.Join(job.Lines, "\n"))
	}
	for _, s := range job.Steps {
		if s.State != web.StateDone {
			t.Errorf("step %s: %s, want done", s.Step, s.State)
		}
	}
	if !strings.Contains(strings.Join(job.Lines, "\n"), "restored and verified: worker1 matches version "+plan.Version[:8]) {
		t.Errorf("job output:\n%s", strings.Join(job.Lines, "\n"))
	}
	if _, err := os.Stat(later); !os.IsNotExist(err) {
		t.Errorf("the calibration written after the restored version is still there: %v", err)
	}
}
