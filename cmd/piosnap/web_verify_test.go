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

	"github.com/chromedp/chromedp"
)

// The web page shows the daemon's reading of stored data: before the
// first reading, when it will be; after a run whose reading found a pack
// damaged on disk, a warning at the top naming the store, the pack, the
// versions it affects and what to do; /api/status carries the same. A
// repair ends the warning.
func TestWebShowsDamagedStore(t *testing.T) {
	w := newWebRig(t, "1h")
	text, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// verify_days = 1: the daemon reads all of the store after a run.
	if err := os.WriteFile(w.cfgPath, []byte(strings.Replace(string(text), "\n[web]\n", "\nverify_days = 1\n\n[web]\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	w.mustRun("backup", "--host", "worker1")
	damageOnlyPack(t, w.repoDir)
	w.start(t)
	c := newWebClient(t, w.base)

	page := c.get("/")
	if !strings.Contains(page, "not read yet: the first part is read after the daemon&#39;s next run (2027-01-01 00:00 UTC)") || strings.Contains(page, `role="alert"`) {
		t.Errorf("before the first reading, the overview does not say when it comes:\n%s", page)
	}

	if !strings.Contains(page, "no run yet") {
		t.Errorf("before any run of the daemon, the overview does not say so:\n%s", page)
	}

	// Back up now: the run, then the reading of part 1/1.
	c.backupNow()

	var st statusReport
	c.getJSON("/api/status", &st)
	// The run by hand is the daemon's last run, as "Last run" shows it.
	if !strings.HasPrefix(st.Daemon.State, "last run ") || st.LastRun == nil || st.LastRun.Result != "success" {
		t.Errorf("/api/status after a backup now: daemon state %q, last run %+v; want the run in both", st.Daemon.State, st.LastRun)
	}
	if len(st.Stores) != 1 || st.Stores[0].Name != "local" || st.Stores[0].VerifyDays != 1 {
		t.Errorf("/api/status stores: %+v; want local with verify_days 1", st.Stores)
	}
	if len(st.Verified) != 1 || st.Verified[0].Part != "1/1" || len(st.Verified[0].Problems) == 0 {
		t.Fatalf("/api/status verified: %+v; want damage found in part 1/1 of local", st.Verified)
	}
	pack := st.Verified[0].Problems[0].Object
	page = c.get("/")
	if strings.Contains(page, "no run yet") {
		t.Errorf("after a backup now, the overview still says \"no run yet\":\n%s", page)
	}
	i := strings.Index(page, `role="alert" id="damage-local"`)
	if i < 0 || i > strings.Index(page, `class="summary"`) {
		t.Fatalf("no warning about store local above the summary:\n%s", page)
	}
	alert := page[i : i+strings.Index(page[i:], "</section>")]
	for _, want := range []string{"Damaged data in store local", "<code>" + pack + "</code>", `<a href="/units/worker1">worker1</a>`, "piosnap repair --store local", "piosnap check --read-data --store local"} {
		if !strings.Contains(alert, want) {
			t.Errorf("the warning lacks %q:\n%s", want, alert)
		}
	}
	if !strings.Contains(page, `<span class="flag damaged"`) || !strings.Contains(page, `href="#damage-local">DAMAGED</a>`) {
		t.Errorf("worker1's card or store local's reading is not flagged:\n%s", page)
	}

	if unit := c.get("/units/worker1"); !strings.Contains(unit, "damaged in local, every store that holds it") {
		t.Errorf("worker1's page does not mark its damaged versions:\n%s", unit)
	}

	// In a browser: the README's picture of the warning, and on a phone
	// (390 CSS pixels wide) the page with its long object names does not
	// scroll sideways.
	t.Run("browser", func(t *testing.T) {
		ctx := newBrowser(t, findChromium(t), hangTimeout)
		if err := chromedp.Run(ctx, chromedp.Navigate(w.base+"/"), chromedp.WaitVisible("#password", chromedp.ByID),
			chromedp.SendKeys("#password", webPassword, chromedp.ByID), chromedp.Submit("#password", chromedp.ByID),
			chromedp.WaitVisible("#damage-local", chromedp.ByID)); err != nil {
			t.Fatalf("show the warning in chromium: %v", err)
		}
		screenshot(t, ctx, "damage")
		var sw, iw int
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3)), chromedp.Reload(), chromedp.WaitVisible("#damage-local", chromedp.ByID),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &sw), chromedp.Evaluate(`window.innerWidth`, &iw)); err != nil {
			t.Fatal(err)
		}
		if iw != 390 || sw > iw {
			t.Errorf("the overview with the warning is %d pixels wide on a %d-pixel phone screen, want it to fit 390", sw, iw)
		}
	})

	// A repair removes the damaged pack: the page sees it at once, as
	// `piosnap status` does, before the daemon's next run.
	if code, out, errOut := w.run("repair", "--store", "local"); code != exitOK && code != exitDamaged {
		t.Fatalf("repair: exit %d\n%s\n%s", code, out, errOut)
	}
	page = c.get("/")
	if strings.Contains(page, `role="alert"`) || strings.Contains(page, "DAMAGED") || !strings.Contains(page, "no damage found") {
		t.Errorf("after the repair, the overview still reports damage:\n%s", page)
	}
}

// get returns the page at path, failing the test unless it is 200.
func (c *webClient) get(path string) string {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

// damageOnlyPack flips a byte in the one pack of the repository at dir.
func damageOnlyPack(t *testing.T, dir string) {
	t.Helper()
	var packs []string
	_ = filepath.WalkDir(filepath.Join(dir, "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			packs = append(packs, p)
		}
		return err
	})
	if len(packs) != 1 {
		t.Fatalf("%d packs in %s, want 1", len(packs), dir)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0xff
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// post sends body as JSON with the session's CSRF token and decodes the
// answer into v; it returns the status code.
func (c *webClient) post(path string, body, v any) int {
	c.t.Helper()
	var sess struct {
		Token string `json:"csrf_token"`
	}
	c.getJSON("/api/session", &sess)
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("X-CSRF-Token", sess.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(rb, v); err != nil {
		c.t.Fatalf("POST %s: %s: %v\n%s", path, resp.Status, err, rb)
	}
	return resp.StatusCode
}

// backupNow starts a backup from the API and waits for its end.
func (c *webClient) backupNow() {
	c.t.Helper()
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if code := c.post("/api/backup", nil, &job); code != http.StatusAccepted {
		c.t.Fatalf("POST /api/backup: %d", code)
	}
	waitFor(c.t, hangTimeout, "the backup started from the API to end", func() bool {
		c.getJSON("/api/jobs/"+job.ID, &job)
		return job.State != "running"
	})
}

// A restore checked from the web avoids a store whose copy of the version
// the daemon found damaged: it picks another store that holds it, and
// says so; a store named on purpose is kept, with a warning.
func TestWebRestoreAvoidsDamagedStore(t *testing.T) {
	w := newWebRig(t, "1h")
	text, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	usb := filepath.Join(w.dir, "usb")
	stores := fmt.Sprintf("\nverify_days = 1\n\n[[store]]\nname = \"usb\"\ntype = \"local\"\npath = %q\nverify_days = 1\n\n[web]\n", usb)
	if err := os.WriteFile(w.cfgPath, []byte(strings.Replace(string(text), "\n[web]\n", stores, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	w.mustRun("init", "--store", "usb")
	w.mustRun("backup", "--host", "worker1")
	damageOnlyPack(t, w.repoDir) // store local's, the first
	w.start(t)
	c := newWebClient(t, w.base)
	c.backupNow() // and the daemon's reading of both stores

	type plan struct {
		Store, Version, Error string
		Lines                 []string
	}
	var p plan
	if code := c.post("/api/restore/check", map[string]string{"unit": "worker1", "at": time.Now().UTC().Add(time.Hour).Format("2006-01-02 15:04")}, &p); code != http.StatusOK {
		t.Fatalf("restore check: %d %+v", code, p)
	}
	if p.Store != "usb" || len(p.Lines) == 0 || !strings.Contains(p.Lines[0], "is recorded damaged in store local") || !strings.Contains(p.Lines[0], "reading it from store usb") {
		t.Errorf("restore check: %+v; want store usb, and why", p)
	}
	// Store local named on purpose: its dry run fails reading the damaged
	// pack, and the first line says why and what to do.
	var named plan
	if code := c.post("/api/restore/check", map[string]string{"unit": "worker1", "version": p.Version, "store": "local"}, &named); code != http.StatusUnprocessableEntity {
		t.Fatalf("restore check from store local: %d %+v; want 422", code, named)
	}
	if len(named.Lines) == 0 || !strings.Contains(named.Lines[0], "is recorded damaged in store local") || !strings.Contains(named.Lines[0], "piosnap repair --store local") || named.Error == "" {
		t.Errorf("restore check from store local: %+v; want its failure, with why and what to do", named)
	}
}

// After a restart, the Daemon line tells the last run an earlier daemon
// recorded, as "Last run" does, not "no run yet".
func TestWebDaemonLineKeepsLastRunAcrossRestart(t *testing.T) {
	w := newWebRig(t, "1h")
	w.mustRun("backup") // nothing due at start: no run of this daemon
	at := time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)
	prev := fmt.Sprintf(`{"pid": 1, "last_run": {"run_id": "r1", "time": %q, "duration_seconds": 60, "result": "partial", "hosts": [{"host": "worker1", "ok": true}, {"host": "worker2", "ok": false, "error": "timeout"}]}}`, at.Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(w.stateDir, "status.json"), []byte(prev), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	c := newWebClient(t, w.base)
	var st statusReport
	c.getJSON("/api/status", &st)
	if want := "last run 2026-05-10 03:00 UTC: 1 host(s) failed: [worker2]"; !strings.HasPrefix(st.Daemon.State, want) {
		t.Errorf("daemon state after a restart: %q, want it to begin %q", st.Daemon.State, want)
	}
}
