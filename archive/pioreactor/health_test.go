package pioreactor

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// probeUnit answers health as name and import probes like a 26.7 unit
// with the given sentinel and lock state; it fails the test if a probe
// carries an archive.
func probeUnit(t *testing.T, name string, sentinel, locked bool, importStatus int) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/unit_api/health":
			reply(w, 200, `{"status": "ok", "pioreactor_unit": "`+name+`", "utc_time": "2026-08-04T16:54:52.123Z"}`)
		case "/unit_api/import_zipped_dot_pioreactor":
			if r.Method != http.MethodPost || r.Header.Get("X-Pioreactor-Target") != "worker3" {
				t.Errorf("probe sent %s with target %q", r.Method, r.Header.Get("X-Pioreactor-Target"))
			}
			if importStatus != 0 {
				reply(w, importStatus, `{"error":"nope"}`)
				return
			}
			if sentinel {
				reply(w, 403, `{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system operations are disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or run the import locally via SSH."}`)
				return
			}
			if locked {
				reply(w, 202, `{"status":"running","lock":"import-dot-pioreactor-lock","retry_after_s":1,"remediation":"Wait for the running operation to finish, then retry."}`)
				return
			}
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				t.Errorf("probe form does not parse: %v", err)
			}
			if r.MultipartForm != nil && len(r.MultipartForm.File) > 0 {
				t.Errorf("probe uploaded files: %v", r.MultipartForm.File)
			}
			reply(w, 400, `{"error":"No archive uploaded","status":400,"cause":"Missing 'archive' file in multipart form-data."}`)
		case "/unit_api/zipped_dot_pioreactor":
			t.Errorf("probe started an export")
			io.WriteString(w, "zip")
		default:
			http.NotFound(w, r)
		}
	}))
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name         string
		answersAs    string
		sentinel     bool
		locked       bool
		importStatus int
		kinds        []error
		msg          string
	}{
		{"clear", "worker3", false, false, 0, nil, ""},
		{"sentinel", "worker3", true, false, 0, []error{ErrSentinel},
			"worker3 refuses export and import: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker3"},
		{"locked", "worker3", false, true, 0, []error{ErrImportLocked}, ""},
		{"wrong host", "worker4", false, false, 0, []error{ErrWrongUnit},
			"the host at {addr} answers as worker4, not worker3: the address of worker3 is probably wrong: fix it under [pioreactor.addresses] in piosnap's configuration"},
		{"wrong host and sentinel", "worker4", true, false, 0, []error{ErrWrongUnit, ErrSentinel}, ""},
		{"release without import", "worker3", false, false, 404, nil, ""},
		{"unauthorized", "worker3", false, false, 401, []error{ErrUnauthorized}, ""},
		{"server error", "worker3", false, false, 500, []error{errAPI}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := probeUnit(t, tt.answersAs, tt.sentinel, tt.locked, tt.importStatus)
			c := newClient(t, addr, map[string]string{"worker3": addr})
			err := c.Probe(testContext(t), "worker3")
			if len(tt.kinds) == 0 {
				if err != nil {
					t.Fatalf("Probe: %v", err)
				}
				return
			}
			for _, k := range tt.kinds {
				if k == errAPI {
					var ae *APIError
					if !errors.As(err, &ae) {
						t.Fatalf("err %v carries no *APIError", err)
					}
					continue
				}
				checkErr(t, err, k, "")
			}
			if want := strings.ReplaceAll(tt.msg, "{addr}", addr); want != "" && err.Error() != want {
				t.Fatalf("message\n got: %s\nwant: %s", err, want)
			}
		})
	}
}
