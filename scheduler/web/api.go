package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxAPIBody bounds a JSON request body.
const maxAPIBody = 64 << 10

// APIRestore is the body of POST /api/restore/check and POST /api/restore.
type APIRestore struct {
	// Unit is the unit restored (the version's host).
	Unit string `json:"unit"`
	// Store and Version name the version. For a check, Version is an ID
	// or a prefix of at least 4 characters, or At a time as `piosnap
	// restore --at` takes it; Store is optional. For a restore, both are
	// what the check answered: the store and the full 64-character ID.
	Store   string `json:"store"`
	Version string `json:"version"`
	At      string `json:"at"`
	// Confirm must be the unit's name for a restore, as typed on the page.
	Confirm string `json:"confirm"`
}

// errNotChecked and errNotConfirmed are the confirmation rules every
// restore passes, from the page or the API.
var (
	errNotChecked   = errors.New("the restore does not name the checked version (its store and full ID)")
	errNotConfirmed = errors.New("the restore is not confirmed with the unit's name")
)

// confirmRestore applies the confirmation rules: req names exactly the
// version a check picked (its store and full ID), and confirm is the unit's
// name.
func confirmRestore(req RestoreRequest, confirm string) error {
	if req.Store == "" || len(req.Version) != 64 || strings.Trim(req.Version, "0123456789abcdef") != "" {
		return errNotChecked
	}
	if strings.TrimSpace(confirm) != req.Unit {
		return errNotConfirmed
	}
	return nil
}

// readAPIBody decodes a JSON request body into v: one object, no unknown
// field, at most maxAPIBody bytes. Its error is the answer's message.
func readAPIBody(r *http.Request, v any) (code int, err error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return http.StatusUnsupportedMediaType, fmt.Errorf("send the body as JSON with Content-Type: application/json (got %q)", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return http.StatusBadRequest, fmt.Errorf("the body is not a valid request: %v", err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("the body holds more than one JSON value: send one object")
	}
	return 0, nil
}

// apiSession gives a logged-in script its CSRF token, for the
// X-CSRF-Token header of state-changing requests.
func (s *Server) apiSession(w http.ResponseWriter, _ *http.Request, sess *session) {
	writeJSON(w, http.StatusOK, map[string]any{
		"csrf_token":           sess.csrf,
		"idle_timeout_seconds": int64(s.cfg.SessionTimeout.Seconds()),
	})
}

// apiRestoreCheck is the page's Check button: it picks the version and
// runs every check of `piosnap restore --dry-run`, changing nothing.
func (s *Server) apiRestoreCheck(w http.ResponseWriter, r *http.Request, _ *session) {
	var body APIRestore
	if code, err := readAPIBody(r, &body); err != nil {
		writeJSONError(w, code, err.Error())
		return
	}
	switch {
	case body.Unit == "":
		writeJSONError(w, http.StatusBadRequest, `"unit" is empty: name the unit to restore`)
		return
	case body.Version == "" && body.At == "":
		writeJSONError(w, http.StatusBadRequest, `give "version" (an ID as /api/versions lists it, at least 4 characters) or "at" (a time as `+"`piosnap restore --at`"+` takes it, e.g. "2026-05-02" or "latest")`)
		return
	case body.Version != "" && body.At != "":
		writeJSONError(w, http.StatusBadRequest, `give "version" or "at", not both`)
		return
	case body.Confirm != "":
		writeJSONError(w, http.StatusBadRequest, `"confirm" belongs to POST /api/restore: a check changes nothing`)
		return
	}
	if msg, dir := s.dirRestore(r, body.Unit); dir {
		writeJSONError(w, http.StatusBadRequest, msg+" Nothing was changed.")
		return
	}
	req := RestoreRequest{Unit: body.Unit, Store: body.Store, Version: body.Version, At: body.At}
	plan, err := s.restore.DryRun(r.Context(), req)
	if err != nil {
		ans := map[string]any{"error": err.Error(), "lines": []string{}}
		if plan != nil && plan.Lines != nil {
			ans["lines"] = plan.Lines
		}
		writeJSON(w, http.StatusUnprocessableEntity, ans)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

// apiRestore starts a restore of the version a check picked, confirmed with
// the unit's name, exactly as the page's Restore button does.
func (s *Server) apiRestore(w http.ResponseWriter, r *http.Request, _ *session) {
	var body APIRestore
	if code, err := readAPIBody(r, &body); err != nil {
		writeJSONError(w, code, err.Error())
		return
	}
	if body.Unit == "" {
		writeJSONError(w, http.StatusBadRequest, `"unit" is empty: name the unit to restore`)
		return
	}
	if body.At != "" {
		writeJSONError(w, http.StatusBadRequest, `"at" belongs to POST /api/restore/check: restore the "store" and "version" the check answered. Nothing was changed.`)
		return
	}
	if msg, dir := s.dirRestore(r, body.Unit); dir {
		writeJSONError(w, http.StatusBadRequest, msg+" Nothing was changed.")
		return
	}
	req := RestoreRequest{Unit: body.Unit, Store: body.Store, Version: body.Version}
	switch err := confirmRestore(req, body.Confirm); {
	case errors.Is(err, errNotChecked):
		writeJSONError(w, http.StatusBadRequest, `give the "store" and the full "version" (64 characters) that POST /api/restore/check answered. Nothing was changed.`)
		return
	case errors.Is(err, errNotConfirmed):
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf(`to confirm, set "confirm" to the unit's name, %q, exactly. Nothing was changed.`, body.Unit))
		return
	}
	job, err := s.startRestore(r, req)
	if err != nil {
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, job)
}
