package pioreactor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// Kinds of failure. Errors returned by Client match at most one of these
// with errors.Is; the message of the returned error says what to do.
var (
	// ErrUnreachable: no HTTP reply (DNS, refused connection, timeout).
	ErrUnreachable = errors.New("unit unreachable")
	// ErrSentinel: the unit has ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM.
	ErrSentinel = errors.New("DISALLOW_UI_FILE_SYSTEM is present")
	// ErrUnauthorized: HTTP Basic credentials are missing or wrong.
	ErrUnauthorized = errors.New("HTTP Basic credentials required")
	// ErrLeaderTimeout: the leader gave up collecting the cluster archive
	// (it waits at most 120 s); export each unit directly instead.
	ErrLeaderTimeout = errors.New("leader timed out fetching .pioreactor archive")
	// ErrLeaderMasked: the leader answered 502 and hid the unit's own reply.
	ErrLeaderMasked = errors.New("leader masked the unit's error")
	// ErrWrongUnit: the host answering is not the unit asked for, or the
	// archive was exported from another unit.
	ErrWrongUnit = errors.New("wrong unit")
	// ErrUnknownUnit: the leader does not know the unit name.
	ErrUnknownUnit = errors.New("unknown unit")
	// ErrNotLeader: the configured leader address answers as a worker.
	ErrNotLeader = errors.New("not the leader")
	// ErrImportLocked: another import holds the unit's import lock; retry
	// the upload later.
	ErrImportLocked = errors.New("an import is already running")
	// ErrImportFailed: the unit ran the import task and it failed.
	ErrImportFailed = errors.New("import failed")
	// ErrTmpFull: the unit's /tmp, which Pioreactor keeps in RAM, could not
	// hold the upload or the import's working copies. It also matches
	// ErrImportFailed when the import task was the one that ran out.
	ErrTmpFull = errors.New("no room in the unit's /tmp")
	// ErrNoReboot: the import succeeded but the unit did not reboot.
	ErrNoReboot = errors.New("unit did not reboot")
	// ErrNoComeback: the unit went down after an import and did not answer
	// again in time.
	ErrNoComeback = errors.New("unit did not come back")
	// ErrProtocol: the reply does not follow the Pioreactor contract.
	ErrProtocol = errors.New("unexpected reply")
)

// Error is a failure explained for the user. Msg names the unit and the fix;
// Kind is one of the Err* values; Err, when set, is the underlying error
// (often an *APIError).
type Error struct {
	Kind error
	Unit string
	Msg  string
	Err  error
}

// Error returns the explanation.
func (e *Error) Error() string { return e.Msg }

// Unwrap exposes both the kind and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// APIError is a non-success HTTP reply from a Pioreactor web server, with
// the error body decoded from whichever shape the release uses.
type APIError struct {
	Method string
	URL    string // never contains credentials
	Status int
	// Message is the reply's "error" (or "msg") text, or for a non-JSON
	// body its title or first line.
	Message     string
	Cause       string
	Remediation string
	// TaskStatus is the "status" string some replies carry ("failed", ...).
	TaskStatus string
}

// Error describes the reply on one line.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Cause != "" && e.Cause != e.Message {
		b.WriteString(": " + e.Cause)
	}
	if e.Remediation != "" {
		b.WriteString(" (" + e.Remediation + ")")
	}
	return b.String()
}

// maxErrorBody caps how much of an error reply is read.
const maxErrorBody = 64 << 10

// errorBody is the union of the error shapes of releases 25.9 to 26.7.
type errorBody struct {
	Error       json.RawMessage `json:"error"`
	Msg         string          `json:"msg"`
	Cause       string          `json:"cause"`
	Remediation string          `json:"remediation"`
	Status      json.RawMessage `json:"status"`
	ErrorInfo   *struct {
		Cause       string `json:"cause"`
		Remediation string `json:"remediation"`
	} `json:"error_info"`
}

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaces    = regexp.MustCompile(`\s+`)
)

// readAPIError consumes and closes resp.Body and decodes it.
func readAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return parseAPIError(resp.Request.Method, resp.Request.URL.String(), resp.StatusCode, raw)
}

// parseAPIError decodes an error reply of any known shape: flat (≥ 26.3),
// error_info (26.2), {"error": ...} (≤ 26.1), the 25.9 {"msg": ...} timeout
// and non-JSON or HTML bodies.
func parseAPIError(method, url string, status int, raw []byte) *APIError {
	e := &APIError{Method: method, URL: url, Status: status}
	var body errorBody
	if json.Unmarshal(raw, &body) == nil {
		var s string
		if json.Unmarshal(body.Error, &s) == nil {
			e.Message = s
		} else if len(body.Error) > 0 && string(body.Error) != "null" {
			e.Message = string(body.Error)
		}
		if e.Message == "" {
			e.Message = body.Msg
		}
		e.Cause, e.Remediation = body.Cause, body.Remediation
		if body.ErrorInfo != nil {
			if e.Cause == "" {
				e.Cause = body.ErrorInfo.Cause
			}
			if e.Remediation == "" {
				e.Remediation = body.ErrorInfo.Remediation
			}
		}
		_ = json.Unmarshal(body.Status, &e.TaskStatus)
	} else {
		text := string(raw)
		if m := htmlTitle.FindStringSubmatch(text); m != nil {
			text = m[1]
		} else {
			text = htmlTag.ReplaceAllString(text, " ")
		}
		text = strings.TrimSpace(spaces.ReplaceAllString(text, " "))
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		e.Message = text
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// explain turns an HTTP failure of op ("export", "import", ...) on to into
// an *Error for the known cases, and returns ae itself otherwise. unit is the
// unit the operation is about, which differs from to.name for requests that
// go through the leader.
func (c *Client) explain(ae *APIError, op string, to target, unit string) error {
	text := ae.Message + " " + ae.Cause
	switch {
	case ae.Status == http.StatusUnauthorized:
		msg := fmt.Sprintf("%s requires HTTP Basic credentials: set user and password_file under [pioreactor] in piosnap's configuration (or the password in $PIOSNAP_PIOREACTOR_PASSWORD)", to.name)
		if c.user != "" {
			msg = fmt.Sprintf("%s rejected the HTTP Basic credentials of user %q: check user under [pioreactor] and the password in password_file (or $PIOSNAP_PIOREACTOR_PASSWORD)", to.name, c.user)
		}
		return &Error{Kind: ErrUnauthorized, Unit: to.name, Msg: msg, Err: ae}
	case ae.Status == http.StatusForbidden && strings.Contains(text, "DISALLOW_UI_FILE_SYSTEM"):
		return &Error{Kind: ErrSentinel, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s refuses %s: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on %s", unit, op, unit)}
	case ae.Status == http.StatusInternalServerError && (strings.Contains(ae.Message, "Timed out fetching") || ae.Message == "Timed out"):
		return &Error{Kind: ErrLeaderTimeout, Unit: to.name, Err: ae,
			Msg: fmt.Sprintf("%s timed out collecting the %s archive (it waits at most 120 s for all units): export each unit directly instead", to.name, unit)}
	case ae.Status == http.StatusInternalServerError && op == "import" && ae.Message == "Failed to save uploaded archive":
		return &Error{Kind: ErrTmpFull, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s could not save the uploaded archive in its /tmp (%s): Pioreactor keeps /tmp in RAM, and it is too full for the archive; nothing was imported. "+
				"Reboot %s to empty /tmp and restore again; a compressed archive needs less room (`piosnap restore --compress`, the default for a large one)", to.name, ae.Cause, to.name)}
	case ae.Status == http.StatusBadGateway && op == "import":
		return &Error{Kind: ErrLeaderMasked, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s could not import into %s and hides the unit's reply (HTTP 502 %q): check that %s is reachable from %s, "+
				"that ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM is absent on %s and that the archive was exported from %s; "+
				"importing directly into %s shows the unit's own error", to.name, unit, ae.Message, unit, to.name, unit, unit, unit)}
	case ae.Status == http.StatusBadGateway && unit == "cluster":
		return &Error{Kind: ErrLeaderMasked, Unit: to.name, Err: ae,
			Msg: fmt.Sprintf("%s received no archive from its units (HTTP 502 %q): a unit is unreachable from %s or refuses export; export each unit directly to see why",
				to.name, ae.Message, to.name)}
	case ae.Status == http.StatusBadGateway:
		return &Error{Kind: ErrLeaderMasked, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s received no archive from %s (HTTP 502 %q): %s is unreachable from %s or refuses export; export %s directly to see why",
				to.name, unit, ae.Message, unit, to.name, unit)}
	case ae.Status == http.StatusBadRequest && strings.HasPrefix(ae.Message, "Unknown Pioreactor unit"):
		return &Error{Kind: ErrUnknownUnit, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s does not know unit %s: add it to the cluster or fix the unit name", to.name, unit)}
	case ae.Status == http.StatusBadRequest && strings.HasPrefix(ae.Message, "Archive prepared for"):
		return &Error{Kind: ErrWrongUnit, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("%s rejects the archive: %s; import an archive exported from %s", unit, ae.Message, unit)}
	case ae.Status == http.StatusConflict:
		return &Error{Kind: ErrWrongUnit, Unit: unit, Err: ae,
			Msg: fmt.Sprintf("the host at %s is not %s (%s): the address of %s is probably wrong: fix it under [pioreactor.addresses] in piosnap's configuration", to.base.Host, unit, ae.Message, unit)}
	case ae.Status == http.StatusNotFound && strings.Contains(ae.Message, "isn't the leader"):
		return &Error{Kind: ErrNotLeader, Unit: to.name, Err: ae,
			Msg: fmt.Sprintf("%s at %s is a worker, not the leader: set the leader address to the leader's host", to.name, to.base.Host)}
	}
	return fmt.Errorf("pioreactor: %s %s: %w", op, unit, ae)
}
