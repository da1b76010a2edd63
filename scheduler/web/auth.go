package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Password settings. bcrypt, not argon2id: its hash string carries its own
// salt and cost, and it needs 4 KiB of memory per check, so a burst of
// logins cannot exhaust a Raspberry Pi's memory the way argon2id at a
// useful memory cost (tens of MiB per check) could; cost 12 takes about a
// quarter of a second on a Raspberry Pi 4, which the rate limit multiplies.
const (
	// PasswordCost is the bcrypt cost of new hashes.
	PasswordCost = 12
	// MinPasswordLength is the shortest password accepted, in bytes.
	MinPasswordLength = 10
	// maxPasswordLength is bcrypt's limit.
	maxPasswordLength = 72
)

// Login and session limits.
const (
	sessionCookie = "piosnap_session"
	loginCookie   = "piosnap_login"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
	// sessionMaxAge ends a session however active it is.
	sessionMaxAge = 7 * 24 * time.Hour
	// failWindow is the window failed logins are counted in.
	failWindow = 15 * time.Minute
	// maxFailsPerClient and maxFailsTotal bound failed logins per window
	// from one address and from all addresses together.
	maxFailsPerClient = 5
	maxFailsTotal     = 30
)

// WritePasswordFile stores password's bcrypt hash in path (mode 0600),
// replacing the file atomically.
func WritePasswordFile(path, password string) error {
	return writePasswordFile(path, password, PasswordCost)
}

// writePasswordFile is WritePasswordFile with a given bcrypt cost (tests
// use the lowest, which the race detector makes bearable).
func writePasswordFile(path, password string, cost int) error {
	switch {
	case len(password) < MinPasswordLength:
		return fmt.Errorf("the password is %d characters long; use at least %d", len(password), MinPasswordLength)
	case len(password) > maxPasswordLength:
		return fmt.Errorf("the password is %d bytes long; bcrypt takes at most %d", len(password), maxPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(append(hash, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write password file %s: %w", path, err)
	}
	return nil
}

// errNoPassword means no password has been set.
var errNoPassword = errors.New("no password set")

// checkPassword compares password with the hash in path.
func checkPassword(path, password string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, errNoPassword
	}
	if err != nil {
		return false, fmt.Errorf("read password file: %w", err)
	}
	hash := []byte(strings.TrimSpace(string(b)))
	if len(password) > maxPasswordLength {
		return false, nil
	}
	err = bcrypt.CompareHashAndPassword(hash, []byte(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, fmt.Errorf("password file %s holds no bcrypt hash (%w): write it again with `piosnap web passwd`", path, err)
}

// randomToken returns 32 random bytes, URL-safe base64 encoded.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is one logged-in browser.
type session struct {
	csrf    string
	created time.Time
	last    time.Time
}

// sessions holds the live sessions in memory: a daemon restart logs
// everyone out, which is the safe direction.
type sessions struct {
	idle time.Duration
	now  func() time.Time
	mu   sync.Mutex
	m    map[string]*session
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, now: now, m: map[string]*session{}}
}

func (ss *sessions) create() (token string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for tok, s := range ss.m {
		if ss.expired(s, now) {
			delete(ss.m, tok)
		}
	}
	token = randomToken()
	s = &session{csrf: randomToken(), created: now, last: now}
	ss.m[token] = s
	return token, s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.last) > ss.idle || now.Sub(s.created) > sessionMaxAge
}

// get returns the live session of token and marks it used.
func (ss *sessions) get(token string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[token]
	if s == nil {
		return nil
	}
	now := ss.now()
	if ss.expired(s, now) {
		delete(ss.m, token)
		return nil
	}
	s.last = now
	return s
}

func (ss *sessions) remove(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, token)
}

// limiter counts failed logins per client address and in all.
type limiter struct {
	now   func() time.Time
	mu    sync.Mutex
	fails map[string][]time.Time
	all   []time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fails: map[string][]time.Time{}}
}

func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= failWindow {
		i++
	}
	return ts[i:]
}

// blocked returns how long client must wait before trying again, or 0.
func (l *limiter) blocked(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.all = recent(l.all, now)
	f := recent(l.fails[client], now)
	if len(f) == 0 {
		delete(l.fails, client)
	} else {
		l.fails[client] = f
	}
	var wait time.Duration
	if len(f) >= maxFailsPerClient {
		wait = failWindow - now.Sub(f[len(f)-maxFailsPerClient])
	}
	if len(l.all) >= maxFailsTotal {
		wait = max(wait, failWindow-now.Sub(l.all[len(l.all)-maxFailsTotal]))
	}
	return wait
}

func (l *limiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.fails[client] = append(l.fails[client], now)
	l.all = append(l.all, now)
}

// clientAddr is the request's remote IP (no proxy headers are trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// authedHandler is a handler that runs with a live session.
type authedHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed requires a live session, and on state-changing requests its CSRF
// token. A page request without one is sent to the login page; an API
// request gets 401.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		c, err := r.Cookie(sessionCookie)
		if err == nil {
			sess = s.sessions.get(c.Value)
		}
		api := strings.HasPrefix(r.URL.Path, "/api/")
		if sess == nil {
			msg := "log in first"
			if err == nil {
				msg = "your session has ended: log in again"
				setCookie(w, r, sessionCookie, "", -1)
			}
			if api || r.Method != http.MethodGet {
				w.Header().Set("Cache-Control", "no-store")
				writeJSONError(w, http.StatusUnauthorized, msg+" (POST /login)")
				return
			}
			q := url.Values{"next": {r.URL.RequestURI()}}
			if err == nil {
				q.Set("expired", "1")
			}
			http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.csrf)) != 1 {
				s.cfg.Log.Warn("web: request refused: missing or wrong CSRF token", "path", r.URL.Path, "client", clientAddr(r))
				http.Error(w, "refused: this form is missing its security token or it is out of date: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, sess)
	}
}

// loginPage shows the login form with a fresh login token (a double-submit
// cookie that keeps other sites from logging a browser in).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 600)
	if msg == "" && r.URL.Query().Get("expired") != "" {
		msg = "Your session has ended. Please log in again."
	}
	_, err := os.Stat(s.cfg.PasswordFile)
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, code, "login", map[string]any{
		"Title": "Log in", "Token": tok, "Message": msg,
		"Next": safeNext(r.FormValue("next")), "NoPassword": err != nil, "PublicStatus": s.cfg.PublicStatus,
	})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		s.renderLogin(w, r, http.StatusForbidden, "The login form was out of date. Please try again.")
		return
	}
	if wait := s.limiter.blocked(client); wait > 0 {
		s.cfg.Log.Warn("web: login refused: too many failed attempts", "client", client)
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		s.renderLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords. Try again in %s.", wait.Round(time.Second)))
		return
	}
	ok, err := checkPassword(s.cfg.PasswordFile, r.PostFormValue("password"))
	if errors.Is(err, errNoPassword) {
		s.renderLogin(w, r, http.StatusServiceUnavailable, "No password has been set yet. On the leader, run: sudo -u piosnap piosnap web passwd")
		return
	}
	if err != nil {
		s.cfg.Log.Error("web: cannot check the password", "err", err)
		s.renderLogin(w, r, http.StatusInternalServerError, "The password file cannot be read: "+err.Error())
		return
	}
	if !ok {
		s.limiter.fail(client)
		s.cfg.Log.Warn("web: wrong password", "client", client)
		s.renderLogin(w, r, http.StatusUnauthorized, "Wrong password.")
		return
	}
	tok, _ := s.sessions.create()
	setCookie(w, r, sessionCookie, tok, int(sessionMaxAge.Seconds()))
	setCookie(w, r, loginCookie, "", -1)
	s.cfg.Log.Info("web: logged in", "client", client)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.remove(c.Value)
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
