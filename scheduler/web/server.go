package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/klauspost/compress/gzhttp"

	"github.com/piosnap/piosnap/store"
)

//go:embed templates/*.html assets/*
var files embed.FS

// Source reads what the pages show.
type Source interface {
	// StatusJSON is the document `piosnap status --json` prints.
	StatusJSON(ctx context.Context) ([]byte, error)
	// ListJSON is the document `piosnap list --json` prints, only host's
	// versions when host is not empty.
	ListJSON(ctx context.Context, host string) ([]byte, error)
	// Versions returns each configured store's versions, newest first. A
	// store that cannot be read is returned with Err set.
	Versions(ctx context.Context) ([]StoreVersions, error)
	// Notices are lines for the top of the overview, such as the outcome
	// of a restore of the leader, which its reboot took from the page.
	Notices(ctx context.Context) []string
}

// StoreVersions is one store's versions.
type StoreVersions struct {
	Store    string
	Repo     *store.Repository
	Versions []*store.Version
	Err      error
}

// Backupper takes a backup now.
type Backupper interface {
	// BackupNow backs up every unit into every store, as a scheduled run
	// does (repository locks included), and reports what it prints line by
	// line on say.
	BackupNow(ctx context.Context, say func(line string)) error
}

// RestoreRequest names the version to restore onto its unit.
type RestoreRequest struct {
	// Unit is the unit restored (the version's host).
	Unit string `json:"unit"`
	// Store reads the version; empty: the first store that has it.
	Store string `json:"store,omitempty"`
	// Version is an ID or an ID prefix of at least 4 characters; At is a
	// time as `restore --at` takes it. Exactly one is set.
	Version string `json:"version,omitempty"`
	At      string `json:"at,omitempty"`
}

// Plan is the outcome of a dry run: the version chosen and the checks.
type Plan struct {
	Store   string    `json:"store"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	// Lines are what `piosnap restore --dry-run` prints.
	Lines []string `json:"lines"`
}

// Restore steps, in order.
const (
	StepCheck  = "check"
	StepSafety = "safety"
	StepUpload = "upload"
	StepImport = "import"
	StepReboot = "reboot"
	StepVerify = "verify"
)

// Step states.
const (
	StatePending = "pending"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
	StateSkipped = "skipped"
)

// Event is one step of a restore starting or ending, upload progress, or
// a line of the restore's output.
type Event struct {
	// Step and State: a step changed state (both empty for a Line only).
	Step  string `json:"step,omitempty"`
	State string `json:"state,omitempty"`
	// Line is a line as `piosnap restore` prints it.
	Line string `json:"line,omitempty"`
	// Sent and Total are the upload's progress in bytes.
	Sent  int64 `json:"sent,omitempty"`
	Total int64 `json:"total,omitempty"`
	// SafetyVersion and SafetyStore name the safety snapshot once taken.
	SafetyVersion string `json:"safety_version,omitempty"`
	SafetyStore   string `json:"safety_store,omitempty"`
}

// Restorer restores versions onto their units.
type Restorer interface {
	// DryRun picks the version and does every check `piosnap restore
	// --dry-run` does, changing nothing.
	DryRun(ctx context.Context, req RestoreRequest) (*Plan, error)
	// Restore restores the version exactly named by req (Store and a full
	// Version ID, as a Plan gives them), reporting on ev.
	Restore(ctx context.Context, req RestoreRequest, ev func(Event)) error
}

// Config configures a Server.
type Config struct {
	// PasswordFile holds the bcrypt hash `piosnap web passwd` writes.
	PasswordFile string
	// PublicStatus serves /status without a login.
	PublicStatus bool
	// SessionTimeout ends an idle session.
	SessionTimeout time.Duration
	// Zone shows times in the configuration's zone.
	Zone *time.Location
	// Log receives one line per login, logout, backup and restore; never a
	// secret.
	Log *slog.Logger
	// WriteTar writes a directory source's version as the tar `piosnap
	// export` writes; nil: the pages offer no download of such versions.
	WriteTar func(ctx context.Context, w io.Writer, repo *store.Repository, v *store.Version) error
}

// Server is the web application. Create it with New; it is an
// http.Handler.
type Server struct {
	cfg      Config
	src      Source
	backup   Backupper
	restore  Restorer
	pages    map[string]*template.Template
	mux      *http.ServeMux
	handler  http.Handler // mux, gzip-compressed for clients that accept it
	sessions *sessions
	limiter  *limiter
	jobs     *jobs
	now      func() time.Time
}

// New returns the web application. ctx bounds the jobs (backups and
// restores) it starts: cancel it when the daemon stops.
func New(ctx context.Context, cfg Config, src Source, b Backupper, r Restorer) (*Server, error) {
	if cfg.Zone == nil {
		cfg.Zone = time.UTC
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 12 * time.Hour
	}
	if cfg.PasswordFile == "" {
		return nil, errors.New("web: no password file configured: set web.password_file")
	}
	pages, err := parsePages(cfg.Zone)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, src: src, backup: b, restore: r, pages: pages,
		now: time.Now,
	}
	s.sessions = newSessions(cfg.SessionTimeout, func() time.Time { return s.now() })
	s.limiter = newLimiter(func() time.Time { return s.now() })
	s.jobs = newJobs(ctx, cfg.Log, func() time.Time { return s.now() })
	s.routes()
	return s, nil
}

// Wait blocks until every job the server started has returned.
func (s *Server) Wait() { s.jobs.wait() }

func (s *Server) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(files, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	m.Handle("GET /assets/", cacheFor(static, time.Hour))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.authed(s.logout))
	m.HandleFunc("GET /status", s.publicStatus)
	m.HandleFunc("GET /{$}", s.authed(s.overview))
	m.HandleFunc("GET /units/{unit}", s.authed(s.unitPage))
	m.HandleFunc("GET /units/{unit}/versions/{store}/{id}/zip", s.authed(s.download(false)))
	m.HandleFunc("GET /units/{unit}/versions/{store}/{id}/tar", s.authed(s.download(true)))
	m.HandleFunc("GET /units/{unit}/restore", s.authed(s.restorePage))
	m.HandleFunc("POST /units/{unit}/restore/check", s.authed(s.restoreCheck))
	m.HandleFunc("POST /units/{unit}/restore", s.authed(s.restoreStart))
	m.HandleFunc("POST /backup", s.authed(s.backupStart))
	m.HandleFunc("GET /jobs/{id}", s.authed(s.jobPage))
	m.HandleFunc("GET /api/status", s.authed(s.apiStatus))
	m.HandleFunc("GET /api/versions", s.authed(s.apiVersions))
	m.HandleFunc("GET /api/jobs", s.authed(s.apiJobs))
	m.HandleFunc("GET /api/jobs/{id}", s.authed(s.apiJob))
	m.HandleFunc("POST /api/backup", s.authed(s.apiBackup))
	m.HandleFunc("GET /api/session", s.authed(s.apiSession))
	m.HandleFunc("POST /api/restore/check", s.authed(s.apiRestoreCheck))
	m.HandleFunc("POST /api/restore", s.authed(s.apiRestore))
	s.mux = m
	// Pages and JSON shrink to a tenth on a phone's Wi-Fi; downloads are
	// left alone (gzhttp skips compressed content types such as ZIP, and
	// the tar handler opts out).
	s.handler = gzhttp.GzipHandler(m)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		http.Error(w, "refused: the request comes from another site (Origin does not match)", http.StatusForbidden)
		return
	}
	s.handler.ServeHTTP(w, r)
}

// sameOrigin reports whether a state-changing request's Origin (or, when
// absent, Referer) names this server. Requests with neither, such as from
// curl, are left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	for _, scheme := range []string{"http://", "https://"} {
		p := scheme + r.Host
		if o == p || len(o) > len(p) && o[:len(p)] == p && o[len(p)] == '/' {
			return true
		}
	}
	return false
}

func cacheFor(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}
