package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

const testPassword = "correct horse battery"

// testSource serves a real local repository and a fixed status document.
type testSource struct {
	repo *store.Repository
	// names are the stores that serve repo, in order: "local" if empty.
	names  []string
	mu     sync.Mutex
	status []byte
}

func (s *testSource) StatusJSON(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, nil
}

// setStatus replaces the status document.
func (s *testSource) setStatus(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = b
}

func (s *testSource) Notices(context.Context) []string {
	return []string{"restore of this machine (leader1) to version 91d0f3c7: restored and verified"}
}

func (s *testSource) ListJSON(ctx context.Context, host string) ([]byte, error) {
	vs, err := s.repo.Versions(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, v := range vs {
		if host == "" || v.Host == host {
			ids = append(ids, v.ID)
		}
	}
	return json.Marshal(ids)
}

func (s *testSource) Versions(ctx context.Context) ([]StoreVersions, error) {
	vs, err := s.repo.Versions(ctx)
	names := s.names
	if len(names) == 0 {
		names = []string{"local"}
	}
	var out []StoreVersions
	for _, n := range names {
		out = append(out, StoreVersions{Store: n, Repo: s.repo, Versions: vs, Err: err})
	}
	return out, nil
}

// testRunner is a Backupper and Restorer that reports the real steps and
// waits for the test to let each job end.
type testRunner struct {
	mu       sync.Mutex
	backups  int
	restores []RestoreRequest
	release  chan struct{}
}

func (r *testRunner) BackupNow(ctx context.Context, say func(string)) error {
	r.mu.Lock()
	r.backups++
	r.mu.Unlock()
	say("backing up")
	select {
	case <-r.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (r *testRunner) DryRun(_ context.Context, req RestoreRequest) (*Plan, error) {
	if req.Unit == "gone" {
		return nil, errors.New("no versions of host \"gone\"")
	}
	return &Plan{Store: "local", Version: strings.Repeat("ab", 32), Time: time.Date(2026, 5, 2, 2, 0, 0, 0, time.UTC), Kind: "backup", Lines: []string{"dry run: every check passed"}}, nil
}

func (r *testRunner) Restore(ctx context.Context, req RestoreRequest, ev func(Event)) error {
	r.mu.Lock()
	r.restores = append(r.restores, req)
	r.mu.Unlock()
	ev(Event{Step: StepCheck, State: StateRunning})
	ev(Event{Step: StepCheck, State: StateDone})
	ev(Event{Step: StepSafety, State: StateDone, SafetyVersion: strings.Repeat("cd", 32), SafetyStore: "local"})
	ev(Event{Step: StepUpload, State: StateRunning, Sent: 10, Total: 100})
	select {
	case <-r.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return errors.New("upload to worker1: connection reset")
}

type rig struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	runner *testRunner
	logs   *bytes.Buffer
	repo   *store.Repository
	src    *testSource
	clock  *time.Time
	mu     sync.Mutex
}

func newRig(t *testing.T, public bool) *rig {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	b, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "web.password")
	if err := writePasswordFile(pw, testPassword, bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	r := &rig{t: t, runner: &testRunner{release: make(chan struct{})}, logs: logs, repo: repo, src: &testSource{repo: repo, status: status}}
	now := time.Now()
	r.clock = &now
	jobsCtx, cancel := context.WithCancel(ctx)
	srv, err := New(jobsCtx, Config{PasswordFile: pw, PublicStatus: public, SessionTimeout: time.Hour, Log: slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))},
		r.src, r.runner, r.runner)
	if err != nil {
		t.Fatal(err)
	}
	srv.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return *r.clock }
	r.srv = srv
	r.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		r.ts.Close()
		cancel()
		srv.Wait()
	})
	return r
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.clock = r.clock.Add(d)
}

// client returns an HTTP client with its own cookie jar that does not
// follow redirects.
func (r *rig) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login logs c in with password and returns the response.
func (r *rig) login(c *http.Client, password string) *http.Response {
	r.t.Helper()
	resp, err := c.Get(r.ts.URL + "/login")
	if err != nil {
		r.t.Fatal(err)
	}
	m := csrfRE.FindStringSubmatch(body(r.t, resp))
	if m == nil {
		r.t.Fatal("login page has no token")
	}
	resp, err = c.PostForm(r.ts.URL+"/login", url.Values{"csrf": {m[1]}, "password": {password}, "next": {"/"}})
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// loggedIn returns a logged-in client and its CSRF token.
func (r *rig) loggedIn() (*http.Client, string) {
	r.t.Helper()
	c := r.client()
	resp := r.login(c, testPassword)
	body(r.t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		r.t.Fatalf("login: %s", resp.Status)
	}
	resp, err := c.Get(r.ts.URL + "/")
	if err != nil {
		r.t.Fatal(err)
	}
	page := body(r.t, resp)
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("overview: %s\n%s", resp.Status, page)
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		r.t.Fatal("overview has no CSRF token")
	}
	return c, m[1]
}

func TestEveryPageNeedsALogin(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	for _, p := range []string{"/", "/units/worker1", "/units/worker1/restore", "/jobs/1", "/units/worker1/versions/local/x/zip", "/status"} {
		resp, err := c.Get(r.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s: %s to %q, want a redirect to /login", p, resp.Status, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/api/status", "/api/versions", "/api/jobs"} {
		resp, err := c.Get(r.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %s, want 401", p, resp.Status)
		}
	}
	for _, p := range []string{"/backup", "/api/backup", "/units/worker1/restore", "/units/worker1/restore/check", "/logout"} {
		resp, err := c.PostForm(r.ts.URL+p, url.Values{"csrf": {"x"}, "confirm": {"worker1"}})
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s: %s, want 401", p, resp.Status)
		}
	}
	if r.runner.backups != 0 || len(r.runner.restores) != 0 {
		t.Errorf("a request without login started a job")
	}
}

func TestLogin(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	resp := r.login(c, "wrong password!")
	if page := body(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Wrong password") {
		t.Fatalf("wrong password: %s\n%s", resp.Status, page)
	}
	resp = r.login(c, testPassword)
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("right password: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Strict", sess)
	}
	resp, err := c.Get(r.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "worker1") {
		t.Fatalf("overview after login: %s\n%s", resp.Status, page)
	}
	if strings.Contains(r.logs.String(), testPassword) || strings.Contains(r.logs.String(), sess.Value) {
		t.Errorf("the log holds a secret:\n%s", r.logs)
	}
	if !strings.Contains(r.logs.String(), "wrong password") {
		t.Errorf("the failed login is not logged:\n%s", r.logs)
	}
}

func TestLoginNeedsTheFormToken(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	resp, err := c.PostForm(r.ts.URL+"/login", url.Values{"password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the form's token: %s, want 403", resp.Status)
	}
}

func TestLoginRateLimited(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	for i := range maxFailsPerClient {
		resp := r.login(c, fmt.Sprintf("wrong password %d", i))
		body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %s", i+1, resp.Status)
		}
	}
	resp := r.login(c, testPassword)
	page := body(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "Too many wrong passwords") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right password after %d failures: %s\n%s", maxFailsPerClient, resp.Status, page)
	}
	r.advance(failWindow)
	resp = r.login(c, testPassword)
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %s, want a login", resp.Status)
	}
}

func TestCSRFRequired(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	// The wrong token differs from the right one in its first character;
	// a fixed replacement would equal the token whenever it happens to
	// start with that character.
	wrong := "x" + token[1:]
	if wrong == token {
		wrong = "y" + token[1:]
	}
	for _, tc := range []struct {
		name  string
		token string
		code  int
	}{
		{"missing", "", http.StatusForbidden},
		{"wrong", wrong, http.StatusForbidden},
		{"right", token, http.StatusSeeOther},
	} {
		resp, err := c.PostForm(r.ts.URL+"/backup", url.Values{"csrf": {tc.token}})
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != tc.code {
			t.Errorf("%s token: %s, want %d", tc.name, resp.Status, tc.code)
		}
	}
	// The job runs on its own goroutine; count only after it has ended.
	close(r.runner.release)
	r.srv.Wait()
	r.runner.mu.Lock()
	n := r.runner.backups
	r.runner.mu.Unlock()
	if n != 1 {
		t.Errorf("%d backups started, want 1 (only the request with the right token)", n)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	req, _ := http.NewRequest("POST", r.ts.URL+"/backup", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %s, want 403", resp.Status)
	}
}

func TestCrossSiteFetchRefused(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	req, _ := http.NewRequest("POST", r.ts.URL+"/api/backup", nil)
	req.Header.Set(csrfHeader, token)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusForbidden || r.runner.backups != 0 {
		t.Fatalf("cross-site fetch: %s, %d backups; want 403 and none", resp.Status, r.runner.backups)
	}
}

func TestSessionExpires(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	r.advance(time.Hour + time.Minute)
	resp, err := c.Get(r.ts.URL + "/units/worker1")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "expired=1") {
		t.Fatalf("expired session: %s to %q, want the login page saying so", resp.Status, loc)
	}
	resp, err = c.PostForm(r.ts.URL+"/backup", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || r.runner.backups != 0 {
		t.Fatalf("POST with an expired session: %s, %d backups", resp.Status, r.runner.backups)
	}
}

func TestLogout(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	resp, err := c.PostForm(r.ts.URL+"/logout", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	resp, err = c.Get(r.ts.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %s, want 401", resp.Status)
	}
}

func TestPublicStatus(t *testing.T) {
	r := newRig(t, true)
	resp, err := r.client().Get(r.ts.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "worker2") || !strings.Contains(page, "STALE") {
		t.Fatalf("public status: %s\n%s", resp.Status, page)
	}
	for _, action := range []string{"/backup", "/units/", "csrf"} {
		if strings.Contains(page, action) {
			t.Errorf("the public status page offers %q", action)
		}
	}
}

func TestOverviewFlags(t *testing.T) {
	r := newRig(t, false)
	c, _ := r.loggedIn()
	resp, err := c.Get(r.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	for _, want := range []string{
		"STALE: the newest version is 48 h old, more than stale_after (36 h)",
		"departed: the leader no longer lists this unit; its versions are kept",
		"failing: the last run could not back it up: worker2 unreachable at worker2.local:80",
		"Back up now",
		"2026-05-04 01:00 UTC",
		"restore of this machine (leader1) to version 91d0f3c7: restored and verified",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

func TestRestoreNeedsTheUnitsName(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	version := strings.Repeat("ab", 32)
	resp, err := c.PostForm(r.ts.URL+"/units/worker1/restore", url.Values{"csrf": {token}, "store": {"local"}, "version": {version}, "confirm": {"worker2"}})
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "type the unit") {
		t.Fatalf("wrong name: %s\n%s", resp.Status, page)
	}
	if len(r.runner.restores) != 0 {
		t.Fatal("a restore started without the unit's name")
	}
	resp, err = c.PostForm(r.ts.URL+"/units/worker1/restore", url.Values{"csrf": {token}, "store": {"local"}, "version": {version}, "confirm": {"worker1"}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs/1" {
		t.Fatalf("confirmed restore: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	// A second job while the first runs is refused.
	resp, err = c.PostForm(r.ts.URL+"/backup", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(page, "a restore of worker1 is running") {
		t.Fatalf("backup during a restore: %s\n%s", resp.Status, page)
	}
	close(r.runner.release)
	r.srv.Wait()
	resp, err = c.Get(r.ts.URL + "/api/jobs/1")
	if err != nil {
		t.Fatal(err)
	}
	var j Job
	if err := json.Unmarshal([]byte(body(t, resp)), &j); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{StepCheck: StateDone, StepSafety: StateDone, StepUpload: StateFailed, StepImport: StateSkipped, StepReboot: StateSkipped, StepVerify: StateSkipped}
	for _, s := range j.Steps {
		if want[s.Step] != s.State {
			t.Errorf("step %s: %s, want %s", s.Step, s.State, want[s.Step])
		}
	}
	if j.State != StateFailed || !strings.Contains(j.Error, "connection reset") || j.SafetyVersion != strings.Repeat("cd", 32) {
		t.Errorf("job %+v", j)
	}
	resp, err = c.Get(r.ts.URL + "/jobs/1")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, resp); !strings.Contains(page, "Undo this restore") || !strings.Contains(page, `value="`+strings.Repeat("cd", 32)+`"`) {
		t.Errorf("the failed restore's page offers no undo:\n%s", page)
	}
}

func TestRestoreCheckShowsTheDryRun(t *testing.T) {
	r := newRig(t, false)
	c, token := r.loggedIn()
	resp, err := c.PostForm(r.ts.URL+"/units/worker1/restore/check", url.Values{"csrf": {token}, "date": {"2026-05-02"}})
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "dry run: every check passed") || !strings.Contains(page, `name="confirm"`) {
		t.Fatalf("check: %s\n%s", resp.Status, page)
	}
	resp, err = c.PostForm(r.ts.URL+"/units/gone/restore/check", url.Values{"csrf": {token}, "date": {"2026-05-02"}})
	if err != nil {
		t.Fatal(err)
	}
	page = body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "no versions of host") || strings.Contains(page, `name="confirm"`) {
		t.Fatalf("failed check: %s\n%s", resp.Status, page)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/units/w1": "/units/w1", "//evil.example/": "/", "https://evil.example": "/", "/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWritePasswordFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := WritePasswordFile(p, "short"); err == nil || !strings.Contains(err.Error(), "at least 10") {
		t.Fatalf("short password: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused password left a file: %v", err)
	}
	if err := WritePasswordFile(p, testPassword); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode(), err)
	}
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), testPassword) || !strings.HasPrefix(string(b), "$2a$12$") {
		t.Fatalf("file holds %q, want a bcrypt hash of cost 12", b)
	}
	for pw, want := range map[string]bool{testPassword: true, testPassword + " ": false} {
		if ok, err := checkPassword(p, pw); ok != want || err != nil {
			t.Errorf("checkPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	if err := os.WriteFile(p, []byte("plain text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkPassword(p, testPassword); err == nil || !strings.Contains(err.Error(), "piosnap web passwd") {
		t.Errorf("damaged file: %v", err)
	}
	if _, err := checkPassword(filepath.Join(dir, "none"), testPassword); !errors.Is(err, errNoPassword) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRestorePageOffersAnOldVersion(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	w, err := store.NewWriter(ctx, r.repo)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	start := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	for d := range 40 {
		p := w.Begin("worker1")
		if _, err := p.Add(ctx, "config.ini", 0o644, start, strings.NewReader(fmt.Sprintf("[day]\nn = %d\n", d))); err != nil {
			t.Fatal(err)
		}
		res := p.Commit(ctx, store.Version{Time: start.AddDate(0, 0, d), Zone: "UTC", Kind: store.KindBackup, Source: "pioreactor"})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		ids = append(ids, res[0].Version.ID)
	}
	c, _ := r.loggedIn()
	for _, tc := range []struct {
		name, id string
	}{{"newest", ids[39]}, {"oldest", ids[0]}} {
		resp, err := c.Get(r.ts.URL + "/units/worker1/restore?store=local&version=" + tc.id)
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, resp)
		if n := strings.Count(page, `value="`+tc.id+`" selected`); n != 1 {
			t.Errorf("%s version: selected %d times on the restore page", tc.name, n)
		}
	}
	resp, err := c.Get(r.ts.URL + "/units/worker1")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if !strings.Contains(page, "40 versions") || !strings.Contains(page, "1 changed") || !strings.Contains(page, "first version") {
		t.Errorf("unit page:\n%s", page)
	}
}

// TestDirSourcePages: a directory source's versions are offered as a tar
// (when the server can write one) and never as a ZIP or a restore through
// the Pioreactor path, which is refused, page by page and POST by POST.
func TestDirSourcePages(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	w, err := store.NewWriter(ctx, r.repo)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(host, source string) string {
		p := w.Begin(host)
		if _, err := p.Add(ctx, "a.txt", 0o644, time.Now(), strings.NewReader("alpha "+host)); err != nil {
			t.Fatal(err)
		}
		res := p.Commit(ctx, store.Version{Time: time.Date(2026, 5, 2, 2, 0, 0, 0, time.UTC), Zone: "UTC", Kind: store.KindBackup, Source: source})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		return res[0].Version.ID
	}
	cells, unit := commit("cells", dirSourceKind), commit("worker1", "pioreactor")
	c, token := r.loggedIn()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(r.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body(t, resp)
	}
	refusal := "sudo piosnap restore --host cells"

	resp, page := get("/units/cells")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cells' page: %s\n%s", resp.Status, page)
	}
	for _, bad := range []string{"/zip", "/units/cells/restore", "Download ZIP", "Download tar"} {
		if strings.Contains(page, bad) {
			t.Errorf("cells' page offers %q (no WriteTar configured):\n%s", bad, page)
		}
	}
	if !strings.Contains(page, `id="dir-restore"`) || !strings.Contains(page, refusal) || !strings.Contains(page, "needs root") {
		t.Errorf("cells' page does not say how to restore it:\n%s", page)
	}
	// A Pioreactor unit keeps its ZIP and its restore.
	if _, page := get("/units/worker1"); !strings.Contains(page, "/units/worker1/versions/local/"+unit+"/zip") || !strings.Contains(page, `href="/units/worker1/restore"`) {
		t.Errorf("worker1's page lost its ZIP or restore:\n%s", page)
	}

	// The ZIP of a directory version, and the tar of a unit's, are refused;
	// without WriteTar there is no tar at all.
	for _, tc := range []struct{ path, want string }{
		{"/units/cells/versions/local/" + cells + "/zip", "downloads as a tar"},
		{"/units/worker1/versions/local/" + unit + "/tar", "downloads as a ZIP"},
		{"/units/cells/versions/local/" + cells + "/tar", "piosnap export --host cells"},
	} {
		resp, page := get(tc.path)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Disposition") != "" || !strings.Contains(page, tc.want) {
			t.Errorf("GET %s: %s %q, want 404 saying %q:\n%s", tc.path, resp.Status, resp.Header.Get("Content-Disposition"), tc.want, page)
		}
	}

	// Every way into a restore of cells is refused with the command to run.
	resp, page = get("/units/cells/restore?store=local&version=" + cells)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, refusal) || strings.Contains(page, `name="confirm"`) {
		t.Errorf("restore page of cells: %s\n%s", resp.Status, page)
	}
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/units/cells/restore/check", url.Values{"csrf": {token}, "store": {"local"}, "version": {cells}}},
		{"/units/cells/restore/check", url.Values{"csrf": {token}, "date": {"2026-05-02"}}},
		{"/units/cells/restore", url.Values{"csrf": {token}, "store": {"local"}, "version": {cells}, "confirm": {"cells"}}},
	} {
		resp, err := c.PostForm(r.ts.URL+tc.path, tc.form)
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, refusal) || !strings.Contains(page, "this page restores Pioreactor units only") {
			t.Errorf("POST %s %v: %s\n%s", tc.path, tc.form, resp.Status, page)
		}
	}
	r.runner.mu.Lock()
	n := len(r.runner.restores)
	r.runner.mu.Unlock()
	if n != 0 {
		t.Errorf("%d restores reached the Restorer", n)
	}
	if jobs := r.srv.jobs.list(); len(jobs) != 0 {
		t.Errorf("jobs started: %+v", jobs)
	}
	if !strings.Contains(r.logs.String(), "restore of a directory source refused") {
		t.Errorf("the refusal is not logged:\n%s", r.logs.String())
	}
}

// TestDirSourceTar: with WriteTar, a directory version downloads as a tar
// under the unit's name, uncompressed in transit.
func TestDirSourceTar(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	w, err := store.NewWriter(ctx, r.repo)
	if err != nil {
		t.Fatal(err)
	}
	p := w.Begin("cells")
	if _, err := p.Add(ctx, "a.txt", 0o644, time.Now(), strings.NewReader("alpha")); err != nil {
		t.Fatal(err)
	}
	res := p.Commit(ctx, store.Version{Time: time.Date(2026, 5, 2, 2, 0, 0, 0, time.UTC), Zone: "UTC", Kind: store.KindBackup, Source: dirSourceKind})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	id := res[0].Version.ID
	var wrote []string
	r.srv.cfg.WriteTar = func(_ context.Context, w io.Writer, _ *store.Repository, v *store.Version) error {
		wrote = append(wrote, v.ID)
		_, err := io.WriteString(w, strings.Repeat("tar of "+v.Host+"\n", 1000)) // above gzhttp's minimum size
		return err
	}
	c, _ := r.loggedIn()
	resp, err := c.Get(r.ts.URL + "/units/cells")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	link := "/units/cells/versions/local/" + id + "/tar"
	if !strings.Contains(page, `href="`+link+`" download>Download tar`) || strings.Contains(page, "/zip") {
		t.Fatalf("cells' page does not offer the tar:\n%s", page)
	}
	req, _ := http.NewRequest("GET", r.ts.URL+link, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := body(t, resp)
	h := resp.Header
	if resp.StatusCode != http.StatusOK || got != strings.Repeat("tar of cells\n", 1000) || h.Get("Content-Type") != "application/x-tar" ||
		h.Get("Content-Disposition") != `attachment; filename="cells_2026-05-02_0200.tar"` || h.Get("Content-Encoding") != "" || h.Get("No-Gzip-Compression") != "" {
		t.Errorf("tar download: %s %v %q", resp.Status, h, got)
	}
	if len(wrote) != 1 || wrote[0] != id {
		t.Errorf("WriteTar called for %v", wrote)
	}
}
