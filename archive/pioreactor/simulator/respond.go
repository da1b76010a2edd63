package simulator

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// apiError is the flat error payload of Pioreactor ≥ 26.3. Cause defaults to
// the error text, as the ensure_error_payload hook does; Remediation is
// omitted when empty.
type apiError struct {
	Error       string `json:"error"`
	Status      int    `json:"status"`
	Cause       string `json:"cause"`
	Remediation string `json:"remediation,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, cause, remediation string) {
	if cause == "" {
		cause = msg
	}
	writeJSON(w, status, apiError{Error: msg, Status: status, Cause: cause, Remediation: remediation})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// utcTimestamp formats t like Pioreactor's current_utc_timestamp():
// ISO 8601, UTC, millisecond precision, "Z" suffix.
func utcTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// newTaskID returns a random UUID4 string, like huey's task ids.
func newTaskID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// basicAuthValue is the Authorization header value for creds, the form the
// plugin stores as [ui_basic_auth] api_key.
func basicAuthValue(creds *[2]string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds[0]+":"+creds[1]))
}

// withAuth requires HTTP Basic credentials on every path, like lighttpd's
// mod_auth with "require" => "valid-user".
func withAuth(creds *[2]string, next http.Handler) http.Handler {
	if creds == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(creds[0])) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(creds[1])) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="Pioreactor", charset="UTF-8"`)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routes builds the unit's handler: /unit_api on every unit, /api on the
// leader (workers answer /api with the spec's 404).
func (u *Unit) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /unit_api/health", u.handleHealth)
	mux.HandleFunc("GET /unit_api/zipped_dot_pioreactor", u.handleExport)
	mux.HandleFunc("POST /unit_api/import_zipped_dot_pioreactor", u.handleImport)
	mux.HandleFunc("GET /unit_api/task_results/{id}", u.handleTaskResult)
	if u.isLeader {
		mux.HandleFunc("GET /api/units", u.handleUnits)
		mux.HandleFunc("GET /api/workers", u.handleWorkers)
		mux.HandleFunc("GET /api/units/{unit}/zipped_dot_pioreactor", u.handleLeaderExport)
		mux.HandleFunc("POST /api/units/{unit}/import_zipped_dot_pioreactor", u.handleLeaderImport)
	} else {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?", "", "")
		})
	}
	return withAuth(u.c.opts.BasicAuth, u.withSlow(mux))
}

func (u *Unit) withSlow(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.hold(r.Context(), time.Now(), &u.slow) != nil {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (u *Unit) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Status  string `json:"status"`
		Unit    string `json:"pioreactor_unit"`
		UTCTime string `json:"utc_time"`
	}{"ok", u.name, utcTimestamp(time.Now())})
}

// secureFilename approximates werkzeug's secure_filename: ASCII only, path
// separators become spaces, words joined by "_", only [A-Za-z0-9_.-] kept,
// leading and trailing "._" stripped.
func secureFilename(name string) string {
	name = strings.NewReplacer("/", " ", "\\", " ").Replace(name)
	name = strings.Join(strings.Fields(name), "_")
	var b strings.Builder
	for _, r := range name {
		if r < 0x80 && (r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	return strings.Trim(b.String(), "._")
}
