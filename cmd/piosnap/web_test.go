package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/piosnap/piosnap/scheduler/daemon"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite scheduler/web/screenshots/*.png from TestWebEndToEnd and TestWebShowsDamagedStore")

const webPassword = "correct horse battery"

// findChromium returns Debian's chromium. Without it the browser tests
// skip, except under CI=true, where they fail: scripts/test-deps.sh
// installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: run scripts/test-deps.sh (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (scripts/test-deps.sh installs it); skipping the browser test")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile.
func newBrowser(t *testing.T, chromium string, timeout time.Duration) context.Context {
	t.Helper()
	profile := filepath.Join(t.TempDir(), "profile")
	// Chromium's helper processes may still write to the profile for a
	// moment after the browser is stopped: remove it until it is gone
	// (after the stop below, before t.TempDir's own removal), so that the
	// test does not fail on "directory not empty".
	t.Cleanup(func() {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			err := os.RemoveAll(profile)
			if err == nil || time.Now().After(deadline) {
				return
			}
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1000, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	bctx, cancelT := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// webRig is the restore rig's cluster and repository with the daemon
// running and serving the web application.
type webRig struct {
	*restoreRig
	base     string
	stateDir string
}

func newWebRig(t *testing.T, sessionTimeout string) *webRig {
	t.Helper()
	r := newRestoreRig(t, rigOptions{})
	w := &webRig{restoreRig: r, stateDir: filepath.Join(r.dir, "state")}
	if err := os.MkdirAll(w.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("state_dir = %q\nschedule = \"@yearly\"\n%s\n[web]\nlisten = \"127.0.0.1:0\"\nsession_timeout = %q\n", w.stateDir, text, sessionTimeout)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errw bytes.Buffer
	code := Main(context.Background(), []string{"-c", r.cfgPath, "web", "passwd", "--stdin"}, Env{
		Stdin: strings.NewReader(webPassword + "\n"), Stdout: &out, Stderr: &errw, Getenv: func(string) string { return "" },
	})
	if code != exitOK {
		t.Fatalf("web passwd: exit %d: %s", code, errw.String())
	}
	return w
}

// start runs the daemon in this process until the test ends.
func (w *webRig) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() {
		done <- Main(ctx, []string{"-c", w.cfgPath, "run"}, Env{Stdin: strings.NewReader(""), Stdout: logs, Stderr: logs, Getenv: func(string) string { return "" }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Errorf("the daemon did not stop")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	waitFor(t, hangTimeout, "the daemon's web address", func() bool {
		sf, err := daemon.ReadStatusFile(filepath.Join(w.stateDir, daemon.StatusFileName))
		if err != nil || sf.WebAddr == "" {
			return false
		}
		w.base = "http://" + sf.WebAddr
		return true
	})
}

// departedZip writes a minimal export of a unit the cluster does not have.
func departedZip(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "worker9_dot_pioreactor.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	fw, err := zw.Create("config.ini")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(fw, "[cluster.topology]\nleader_hostname = leader1\n")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("..", "..", "scheduler", "web", "screenshots", name+".png")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebEndToEnd drives a real headless Chromium through the daemon's web
// application against the simulated cluster: login, freshness, a unit's
// versions, a download, back up now, restore by date with live steps,
// undo, and the refusals.
func TestWebEndToEnd(t *testing.T) {
	chromium := findChromium(t)
	w := newWebRig(t, "15s")
	w1 := w.cluster.Unit("worker1")
	w.mustRun("backup")
	if err := w1.WriteCalibration("od90", "web-first", "curve_data_: [1]\n"); err != nil {
		t.Fatal(err)
	}
	w.mustRun("backup")
	w.mustRun("import", "--host", "worker9", "--time", "2026-01-01", departedZip(t, w.dir))
	w.start(t)
	// The daemon under qemu (make arm64, make armv7) restores several
	// times slower than natively: give the browser session room for it.
	budget := 5 * time.Minute
	if os.Getenv("PIOSNAP_TEST_EXEC") != "" {
		budget = 20 * time.Minute
	}
	ctx := newBrowser(t, chromium, budget)
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
		return s
	}
	wantIn := func(what, got string, wants ...string) {
		t.Helper()
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, got)
			}
		}
	}
	newestOf := func(host string) listedVersion {
		t.Helper()
		for _, v := range w.versions() {
			if v.Host == host {
				return v // newest first
			}
		}
		t.Fatalf("no version of %s", host)
		return listedVersion{}
	}
	countOf := func(host string) int {
		n := 0
		for _, v := range w.versions() {
			if v.Host == host {
				n++
			}
		}
		return n
	}

	// Log in: a wrong password is refused, the right one lands on the
	// overview.
	run("open the overview", chromedp.Navigate(w.base+"/"), chromedp.WaitVisible("#password", chromedp.ByID))
	run("wrong password", chromedp.SendKeys("#password", "not the password", chromedp.ByID), chromedp.Submit("#password", chromedp.ByID), chromedp.WaitVisible(".error", chromedp.ByQuery))
	wantIn("the wrong-password page", text(".error"), "Wrong password")
	run("log in", chromedp.SendKeys("#password", webPassword, chromedp.ByID), chromedp.Submit("#password", chromedp.ByID), chromedp.WaitVisible("#unit-worker1", chromedp.ByID))

	// Freshness: worker1's newest version, no flag; worker9 stale and
	// departed.
	nv := newestOf("worker1")
	card := text("#unit-worker1")
	wantIn("worker1's card", card, nv.Time.UTC().Format("2006-01-02 15:04 UTC"), "Size over time")
	if strings.Contains(card, "STALE") || strings.Contains(card, "departed") || strings.Contains(card, "failing") {
		t.Errorf("worker1 is flagged:\n%s", card)
	}
	wantIn("worker9's card", text("#unit-worker9"), "STALE", "the newest version is", "departed", "the leader no longer lists this unit")
	wantIn("the summary", text(".summary"), "Next run 2027-01-01 00:00 UTC")
	screenshot(t, ctx, "overview")

	// A unit's page: its versions and what changed.
	run("open worker1", chromedp.Click("#unit-worker1 h2 a", chromedp.ByQuery), chromedp.WaitVisible(".timeline", chromedp.ByQuery))
	var nVersions int
	run("count versions", chromedp.Evaluate(`document.querySelectorAll("li.version").length`, &nVersions))
	if nVersions != 2 {
		t.Errorf("worker1's page shows %d versions, want 2", nVersions)
	}
	wantIn("the newest version's changes", text("li.version .change"), "1 added", "new or changed")
	screenshot(t, ctx, "unit")

	// Download the newest version: the same bytes as `piosnap export`.
	dl := t.TempDir()
	run("allow downloads", browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllow).WithDownloadPath(dl).WithEventsEnabled(true))
	run("download", chromedp.Click("li.version a.download", chromedp.ByQuery))
	var got []byte
	waitFor(t, hangTimeout, "the download", func() bool {
		ms, _ := filepath.Glob(filepath.Join(dl, "*.zip"))
		if len(ms) != 1 {
			return false
		}
		got, _ = os.ReadFile(ms[0])
		return len(got) > 0
	})
	exported := filepath.Join(w.dir, "exported.zip")
	w.mustRun("export", "--host", "worker1", "--version", nv.ID, "-o", exported)
	want, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the downloaded ZIP (%d bytes) differs from `piosnap export` (%d bytes)", len(got), len(want))
	}

	// Back up now.
	run("back up now", chromedp.Navigate(w.base+"/"), chromedp.Click("#backup-now", chromedp.ByID),
		chromedp.WaitVisible(`#job:not([data-state="running"])`, chromedp.ByQuery))
	wantIn("the backup's page", text("#job-state"), "done")
	if n := countOf("worker1"); n != 3 {
		t.Errorf("worker1 has %d versions after back up now, want 3", n)
	}

	// Restore worker1 by date: the calibration written since is gone after.
	if err := w1.WriteCalibration("od90", "web-second", "curve_data_: [2]\n"); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(w1.Dir(), "storage", "calibrations", "od90", "web-second.yaml")
	w1.SetImportDelay(time.Hour) // held until the page has shown the import running
	today := time.Now().UTC().Format("2006-01-02")
	run("restore page", chromedp.Navigate(w.base+"/units/worker1/restore"), chromedp.WaitVisible("#date", chromedp.ByID),
		chromedp.SetValue("#date", today, chromedp.ByID), chromedp.Click("#check", chromedp.ByID), chromedp.WaitVisible("ul.checks", chromedp.ByQuery))
	wantIn("the checks", text("ul.checks"), "version "+newestOf("worker1").ShortID+" of worker1", "dry run: every check passed")
	run("confirm", chromedp.SendKeys("#confirm", "worker1", chromedp.ByID), chromedp.Click("#restore", chromedp.ByID),
		chromedp.WaitVisible(`li.step[data-step="import"].running`, chromedp.ByQuery))
	screenshot(t, ctx, "restore")
	w1.SetImportDelay(0)
	run("restore finishes", chromedp.WaitVisible(`#job:not([data-state="running"])`, chromedp.ByQuery))
	wantIn("the restore's page", text("#job-state"), "done")
	wantIn("the restore's output", text("#lines"), "safety snapshot of worker1 taken", "restored and verified: worker1 matches version")
	var done int
	run("count steps", chromedp.Evaluate(`document.querySelectorAll("li.step.done").length`, &done))
	if done != 6 {
		t.Errorf("%d of 6 steps done", done)
	}
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Errorf("the calibration written after the restored version is still there: %v", err)
	}

	// Undo: the safety snapshot brings the calibration back.
	var safety string
	run("read the safety version", chromedp.Evaluate(`document.querySelector('#undo input[name="version"]').value`, &safety))
	if len(safety) != 64 {
		t.Fatalf("no safety version on the page: %q", safety)
	}
	run("undo", chromedp.Click("#undo-button", chromedp.ByID), chromedp.WaitVisible("ul.checks", chromedp.ByQuery),
		chromedp.SendKeys("#confirm", "worker1", chromedp.ByID), chromedp.Click("#restore", chromedp.ByID),
		chromedp.WaitVisible(`#job:not([data-state="running"])`, chromedp.ByQuery))
	wantIn("the undo's output", text("#lines"), "restored and verified: worker1 matches version "+safety[:8])
	if _, err := os.Stat(second); err != nil {
		t.Errorf("undo did not bring the calibration back: %v", err)
	}

	// A state-changing request without the CSRF token is refused.
	var status int
	run("POST without a token", chromedp.Evaluate(`fetch("/backup", {method: "POST"}).then(r => r.status)`, &status,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if status != 403 {
		t.Errorf("POST /backup without a CSRF token: %d, want 403", status)
	}
	if n := countOf("worker1"); n != 3+2 { // two safety snapshots
		t.Errorf("worker1 has %d versions, want 5 (no backup from the refused request)", n)
	}

	// On a phone (390 CSS pixels wide) no page scrolls sideways.
	run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3)))
	for _, p := range []string{"/", "/units/worker1", "/units/worker1/restore", "/jobs/1"} {
		var sw, iw int
		run("phone "+p, chromedp.Navigate(w.base+p), chromedp.WaitVisible("main", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &sw), chromedp.Evaluate(`window.innerWidth`, &iw))
		if iw != 390 || sw > iw {
			t.Errorf("%s is %d pixels wide on a %d-pixel phone screen, want it to fit 390", p, sw, iw)
		}
	}

	// An expired session is refused.
	time.Sleep(16 * time.Second)
	run("after the session timeout", chromedp.Navigate(w.base+"/units/worker1"), chromedp.WaitVisible("#password", chromedp.ByID))
	wantIn("the login page", text(".error"), "Your session has ended")
	var apiStatus int
	run("API after the session timeout", chromedp.Evaluate(`fetch("/api/status").then(r => r.status)`, &apiStatus,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if apiStatus != 401 {
		t.Errorf("GET /api/status without a session: %d, want 401", apiStatus)
	}
}

// TestWebAPIMatchesCLI checks that /api/status and /api/versions give the
// documents `status --json` and `list --json` print.
func TestWebAPIMatchesCLI(t *testing.T) {
	w := newWebRig(t, "1h")
	w.mustRun("backup")
	w.start(t)
	// Logging in from Go: the login form's token, then the session cookie.
	c := newWebClient(t, w.base)
	var api []listedVersion
	c.getJSON("/api/versions", &api)
	cli := w.versions()
	a, _ := json.Marshal(api)
	b, _ := json.Marshal(cli)
	if !bytes.Equal(a, b) {
		t.Errorf("/api/versions:\n%s\nlist --json:\n%s", a, b)
	}
	var st statusReport
	c.getJSON("/api/status", &st)
	if len(st.Hosts) != 3 || !st.Daemon.Running || st.Daemon.NextRun == nil {
		t.Errorf("/api/status: %+v", st)
	}
	for _, h := range st.Hosts {
		if h.Stale || h.Departed || len(h.Stores) != 1 || h.Stores[0].Versions != 1 {
			t.Errorf("host %+v", h)
		}
	}
}

// webClient is a logged-in Go HTTP client of the web application.
type webClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newWebClient(t *testing.T, base string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no token on the login page:\n%s", page)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "password": {webPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("log in: %s", resp.Status)
	}
	return &webClient{t: t, base: base, c: c}
}

func (c *webClient) getJSON(path string, v any) {
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
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}
