package pioreactor

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseAPIError(t *testing.T) {
	tests := []struct {
		name                       string
		status                     int
		body                       string
		msg, cause, remedy, taskSt string
	}{
		{"flat 26.3+", 403,
			`{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system access is disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or export files locally via SSH."}`,
			"DISALLOW_UI_FILE_SYSTEM is present", "File system access is disabled on this unit.", "Remove DISALLOW_UI_FILE_SYSTEM or export files locally via SSH.", ""},
		{"error_info 26.2", 400,
			`{"error":"No archive uploaded","error_info":{"cause":"Missing 'archive' file in multipart form-data.","remediation":"Upload one."}}`,
			"No archive uploaded", "Missing 'archive' file in multipart form-data.", "Upload one.", ""},
		{"bare 26.1", 500, `{"error": "Timed out fetching .pioreactor archive"}`, "Timed out fetching .pioreactor archive", "", "", ""},
		{"25.9 timeout", 500, `{"result": false, "filename": null, "msg": "Timed out"}`, "Timed out", "", "", ""},
		{"old task failure", 500, `{"status":"failed","error":"boom"}`, "boom", "", "", "failed"},
		{"html title", 401, "<?xml version=\"1.0\"?>\n<html><head><title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>", "401 Unauthorized", "", "", ""},
		{"html without title", 502, "<html><body><h1>Bad\n   Gateway</h1></body></html>", "Bad Gateway", "", "", ""},
		{"plain text", 500, "Internal Server Error\n", "Internal Server Error", "", "", ""},
		{"empty body", 503, "", "Service Unavailable", "", "", ""},
		{"json array", 500, `[1,2]`, "[1,2]", "", "", ""},
		{"non-string error", 500, `{"error": {"code": 7}}`, `{"code": 7}`, "", "", ""},
		{"long text", 500, strings.Repeat("x", 300), strings.Repeat("x", 200) + "...", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := parseAPIError("GET", "http://u/x", tt.status, []byte(tt.body))
			if e.Status != tt.status || e.Message != tt.msg || e.Cause != tt.cause || e.Remediation != tt.remedy || e.TaskStatus != tt.taskSt {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

func TestAPIErrorMessage(t *testing.T) {
	e := &APIError{Method: "GET", URL: "http://w:80/x", Status: 403, Message: "m", Cause: "c", Remediation: "r"}
	if got, want := e.Error(), "GET http://w:80/x: HTTP 403: m: c (r)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	e = &APIError{Method: "GET", URL: "http://w:80/x", Status: 400, Message: "m", Cause: "m"}
	if got, want := e.Error(), "GET http://w:80/x: HTTP 400: m"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestExportErrors drives every known export failure through real servers.
func TestExportErrors(t *testing.T) {
	sentinel := `{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system access is disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or export files locally via SSH."}`
	tests := []struct {
		name    string
		cluster bool // ExportCluster rather than ExportUnit("worker3")
		status  int
		body    string
		kind    error
		msg     string
	}{
		{"sentinel flat", false, 403, sentinel, ErrSentinel,
			"worker3 refuses export: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker3"},
		{"sentinel 26.1", false, 403, `{"error": "DISALLOW_UI_FILE_SYSTEM is present"}`, ErrSentinel,
			"worker3 refuses export: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker3"},
		{"unit 401", false, 401, "<html><title>401 Unauthorized</title></html>", ErrUnauthorized,
			"worker3 requires HTTP Basic credentials: set user and password_file under [pioreactor] in piosnap's configuration (or the password in $PIOSNAP_PIOREACTOR_PASSWORD)"},
		{"leader 401", true, 401, "", ErrUnauthorized,
			"leader1 requires HTTP Basic credentials: set user and password_file under [pioreactor] in piosnap's configuration (or the password in $PIOSNAP_PIOREACTOR_PASSWORD)"},
		{"leader timeout", true, 500, `{"error":"Timed out fetching .pioreactor archive","status":500,"cause":"Timed out fetching .pioreactor archive"}`, ErrLeaderTimeout,
			"leader1 timed out collecting the cluster archive (it waits at most 120 s for all units): export each unit directly instead"},
		{"leader timeout 25.9", true, 500, `{"result": false, "filename": null, "msg": "Timed out"}`, ErrLeaderTimeout, ""},
		{"leader 502", true, 502, `{"error":"No data received from worker","status":502,"cause":"Worker returned an empty response body.","remediation":"Check worker connectivity and retry."}`, ErrLeaderMasked,
			`leader1 received no archive from its units (HTTP 502 "No data received from worker"): a unit is unreachable from leader1 or refuses export; export each unit directly to see why`},
		{"worker as leader", true, 404, `{"error": "Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?"}`, ErrNotLeader, ""},
		{"other 500", false, 500, "<html>oops</html>", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, fixed(tt.status, tt.body))
			c := newClient(t, addr, map[string]string{"worker3": addr})
			var err error
			if tt.cluster {
				_, err = c.ExportCluster(testContext(t))
			} else {
				_, err = c.ExportUnit(testContext(t), "worker3")
			}
			if err == nil {
				t.Fatal("no error")
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status {
				t.Fatalf("error %v does not carry the HTTP %d reply", err, tt.status)
			}
			if tt.kind != nil {
				checkErr(t, err, tt.kind, tt.msg)
			}
		})
	}
}

func TestUnknownUnitAndWrongArchive(t *testing.T) {
	tests := []struct {
		name string
		body string
		kind error
		msg  string
	}{
		{"unknown", `{"error":"Unknown Pioreactor unit: worker9","status":400}`, ErrUnknownUnit,
			"leader1 does not know unit worker9: add it to the cluster or fix the unit name"},
		{"plain 400", `{"error":"No archive uploaded"}`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, fixed(http.StatusBadRequest, tt.body))
			c := newClient(t, addr, nil)
			_, err := c.Import(testContext(t), "worker9", strings.NewReader("zip"), 3, nil)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("error %v does not carry the reply", err)
			}
			if tt.kind != nil {
				checkErr(t, err, tt.kind, tt.msg)
			}
		})
	}
}
