package pioreactor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// patternReader generates n deterministic bytes without storing them.
type patternReader struct{ off, n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rest := p.n - p.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 7)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// captured is one request as the server saw it.
type captured struct {
	path, contentType, target string
	contentLength             int64
	declared                  string // Content-Length header
	body                      []byte
}

// capture answers 202 accepted and records each request.
func capture(t *testing.T, got *captured) string {
	var mu sync.Mutex
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server read: %v", err)
		}
		mu.Lock()
		*got = captured{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), target: r.Header.Get("X-Pioreactor-Target"),
			contentLength: r.ContentLength, declared: r.Header.Get("Content-Length"), body: b}
		mu.Unlock()
		reply(w, http.StatusAccepted, `{"unit": "worker2", "task_id": "7f1c", "result_url_path": "/unit_api/task_results/7f1c", "status": "accepted"}`)
	}))
}

func TestImportMultipartLayout(t *testing.T) {
	archive := []byte("PK\x03\x04 pretend zip \r\n--not-a-boundary\r\n bytes")
	tests := []struct {
		name       string
		direct     bool
		wantPath   string
		wantTarget string
	}{
		{"via leader", false, "/api/units/worker2/import_zipped_dot_pioreactor", ""},
		{"direct", true, "/unit_api/import_zipped_dot_pioreactor", "worker2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got captured
			addr := capture(t, &got)
			c := newClient(t, addr, map[string]string{"worker2": addr})
			call := c.Import
			if tt.direct {
				call = c.ImportDirect
			}
			var progress []int64
			task, err := call(testContext(t), "worker2", bytes.NewReader(archive), int64(len(archive)), func(n int64) { progress = append(progress, n) })
			if err != nil {
				t.Fatal(err)
			}
			want := Task{Unit: "worker2", TaskID: "7f1c", ResultURLPath: "/unit_api/task_results/7f1c", Status: "accepted"}
			if *task != want {
				t.Errorf("task = %+v, want %+v", *task, want)
			}
			if got.path != tt.wantPath || got.target != tt.wantTarget {
				t.Errorf("path %q target %q, want %q %q", got.path, got.target, tt.wantPath, tt.wantTarget)
			}
			if got.declared != strconv.Itoa(len(got.body)) || got.contentLength != int64(len(got.body)) {
				t.Errorf("Content-Length %q (%d), body has %d bytes", got.declared, got.contentLength, len(got.body))
			}
			mt, params, err := mime.ParseMediaType(got.contentType)
			if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
				t.Fatalf("Content-Type %q", got.contentType)
			}
			b := params["boundary"]
			wantBody := "--" + b + "\r\n" +
				`Content-Disposition: form-data; name="archive"; filename="worker2_dot_pioreactor.zip"` + "\r\n" +
				"Content-Type: application/zip\r\n\r\n" + string(archive) + "\r\n--" + b + "--\r\n"
			if string(got.body) != wantBody {
				t.Errorf("body\n got %q\nwant %q", got.body, wantBody)
			}
			mr := multipart.NewReader(bytes.NewReader(got.body), b)
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(p)
			if p.FormName() != "archive" || p.FileName() != "worker2_dot_pioreactor.zip" || p.Header.Get("Content-Type") != "application/zip" || !bytes.Equal(data, archive) {
				t.Errorf("part %q %q %q %q", p.FormName(), p.FileName(), p.Header.Get("Content-Type"), data)
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Errorf("extra part: %v", err)
			}
			if len(progress) == 0 || progress[len(progress)-1] != int64(len(archive)) {
				t.Errorf("progress %v, want to end at %d", progress, len(archive))
			}
		})
	}
}

// TestImportWerkzeug feeds the exact bytes the client sends to Werkzeug's
// form parser, which Pioreactor's Flask app uses.
func TestImportWerkzeug(t *testing.T) {
	if err := exec.Command("python3", "-c", "import werkzeug").Run(); err != nil {
		msg := "python3 with Werkzeug is needed to check the multipart body: install with `pip install Werkzeug==3.1.8`: " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	archive, err := io.ReadAll(&patternReader{n: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var got captured
	addr := capture(t, &got)
	c := newClient(t, addr, map[string]string{"worker2": addr})
	if _, err := c.Import(testContext(t), "worker2", bytes.NewReader(archive), int64(len(archive)), nil); err != nil {
		t.Fatal(err)
	}
	bodyFile := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(bodyFile, got.body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", filepath.Join("testdata", "werkzeug_parse.py"), bodyFile, got.contentType).Output()
	if err != nil {
		t.Fatalf("werkzeug: %v\n%s", err, out)
	}
	var res struct {
		Form, Files                             []string
		Filename, SecureFilename, Mimetype, SHA string
	}
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	json.Unmarshal(out, &res)
	res.SecureFilename, _ = raw["secure_filename"].(string)
	res.SHA, _ = raw["sha256"].(string)
	sum := sha256.Sum256(archive)
	if strings.Join(res.Files, ",") != "archive" || len(res.Form) != 0 ||
		res.Filename != "worker2_dot_pioreactor.zip" || res.SecureFilename != "worker2_dot_pioreactor.zip" ||
		res.Mimetype != "application/zip" || res.SHA != hex.EncodeToString(sum[:]) {
		t.Fatalf("werkzeug saw %s", out)
	}
}

func TestImportReplies(t *testing.T) {
	sentinel := `{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system operations are disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or run the import locally via SSH."}`
	masked := `{"error":"Importing system files failed on worker2. See system logs.","status":502,"cause":"Worker returned an error during import.","remediation":"Check worker logs and retry the import."}`
	tests := []struct {
		name     string
		direct   bool
		status   int
		body     string
		wantTask *Task
		kind     error
		msg      string
	}{
		{"accepted", false, 202, `{"unit": "worker2", "task_id": "t1", "result_url_path": "/unit_api/task_results/t1", "status": "accepted"}`,
			&Task{Unit: "worker2", TaskID: "t1", ResultURLPath: "/unit_api/task_results/t1", Status: "accepted"}, nil, ""},
		{"accepted before 26.5.3", true, 202, `{"unit": "worker2", "task_id": "t1", "result_url_path": "/unit_api/task_results/t1"}`,
			&Task{Unit: "worker2", TaskID: "t1", ResultURLPath: "/unit_api/task_results/t1"}, nil, ""},
		{"testing mode empty 202", true, 202, "", &Task{Unit: "worker2"}, nil, ""},
		{"locked", true, 202, `{"status":"running","lock":"import-dot-pioreactor-lock","retry_after_s":1,"remediation":"Wait for the running operation to finish, then retry."}`,
			&Task{Unit: "worker2", Status: "running", RetryAfter: time.Second}, ErrImportLocked,
			"worker2 is already running an import: wait for it to finish, then retry"},
		{"locked 26.2", false, 202, `{"status":"in_progress","lock":"import-dot-pioreactor-lock"}`,
			&Task{Unit: "worker2", Status: "in_progress", RetryAfter: time.Second}, ErrImportLocked, ""},
		{"not json", true, 202, `<html>ok</html>`, nil, ErrProtocol, ""},
		{"leader 502", false, 502, masked, nil, ErrLeaderMasked,
			`leader1 could not import into worker2 and hides the unit's reply (HTTP 502 "Importing system files failed on worker2. See system logs."): ` +
				"check that worker2 is reachable from leader1, that ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM is absent on worker2 and that the archive was exported from worker2; " +
				"importing directly into worker2 shows the unit's own error"},
		{"sentinel", true, 403, sentinel, nil, ErrSentinel,
			"worker2 refuses import: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker2"},
		{"wrong archive", true, 400, `{"error":"Archive prepared for worker1, cannot import into worker2","status":400,"cause":"Zip archive failed validation.","remediation":"Ensure the archive is a valid Pioreactor export and retry."}`,
			nil, ErrWrongUnit, "worker2 rejects the archive: Archive prepared for worker1, cannot import into worker2; import an archive exported from worker2"},
		{"target mismatch", true, 409, `{"error":"X-Pioreactor-Target mismatch","status":409}`, nil, ErrWrongUnit, ""},
		{"not a zip", true, 400, `{"error":"Uploaded file is not a valid zip archive","status":400}`, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				reply(w, tt.status, tt.body)
			}))
			c := newClient(t, addr, map[string]string{"worker2": addr})
			call := c.Import
			if tt.direct {
				call = c.ImportDirect
			}
			task, err := call(testContext(t), "worker2", strings.NewReader("zip"), 3, nil)
			if tt.kind != nil {
				checkErr(t, err, tt.kind, tt.msg)
			} else if tt.status/100 != 2 {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != tt.status {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.wantTask != nil && (task == nil || *task != *tt.wantTask) {
				t.Fatalf("task = %+v, want %+v", task, tt.wantTask)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestImportBodyErrors(t *testing.T) {
	var mu sync.Mutex
	full := 0 // requests the server received in full
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err == nil {
			mu.Lock()
			full++
			mu.Unlock()
		}
		reply(w, 202, `{"task_id":"x"}`)
	}))
	c := newClient(t, addr, map[string]string{"worker2": addr})
	tests := []struct {
		name string
		body io.Reader
		size int64
		want string
	}{
		{"short", strings.NewReader("abc"), 10, "archive ended after 3 of the declared 10 bytes"},
		{"long", strings.NewReader("abcdef"), 3, "archive is longer than the declared 3 bytes"},
		{"negative", strings.NewReader(""), -1, "archive size -1 is negative"},
		{"read error", failingReader{}, 5, "read archive: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ImportDirect(testContext(t), "worker2", tt.body, tt.size, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if full != 0 {
		t.Fatalf("the server received %d complete bodies from bad archives", full)
	}
}

// TestImportStalledUpload: a server that stops reading trips the
// no-progress watchdog instead of hanging.
func TestImportStalledUpload(t *testing.T) {
	release := make(chan struct{})
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	c := newClient(t, addr, map[string]string{"worker2": addr}, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	_, err := c.ImportDirect(testContext(t), "worker2", &patternReader{n: 64 << 20}, 64<<20, nil)
	checkErr(t, err, ErrUnreachable, "worker2 unreachable at "+addr+": no response within 200ms")
}

// TestImportLargeConstantMemory uploads 256 MiB generated on the fly and
// checks that neither side buffered it.
func TestImportLargeConstantMemory(t *testing.T) {
	const size = 256 << 20
	var received, declared int64
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		declared = r.ContentLength
		mr, err := r.MultipartReader()
		if err != nil {
			reply(w, 400, `{"error":"No archive uploaded"}`)
			return
		}
		p, err := mr.NextPart()
		if err != nil || p.FormName() != "archive" {
			reply(w, 400, `{"error":"No archive uploaded"}`)
			return
		}
		received, _ = io.Copy(io.Discard, p)
		reply(w, 202, `{"unit":"worker2","task_id":"big","result_url_path":"/unit_api/task_results/big","status":"accepted"}`)
	}))
	c := newClient(t, addr, map[string]string{"worker2": addr})
	var last int64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	task, err := c.Import(testContext(t), "worker2", &patternReader{n: size}, size, func(n int64) { last = n })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if task.TaskID != "big" || received != size || last != size || declared <= size {
		t.Fatalf("task %q, server received %d, progress %d, Content-Length %d", task.TaskID, received, last, declared)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("allocated %d MiB for a %d MiB upload: the body is being buffered", alloc>>20, size>>20)
	}
}
