package simulator

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestImportValidation(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	url := c.Unit("worker1").URL() + "/unit_api/import_zipped_dot_pioreactor"
	const cause, remedy = "Zip archive failed validation.", "Ensure the archive is a valid Pioreactor export and retry."
	file := func(name string) zipEntry { return zipEntry{name: name, mode: 0o100644, body: "x"} }
	tests := []struct {
		name     string
		field    string
		filename string
		data     []byte
		status   int
		want     string // exact body, or "" to only check status
	}{
		{"missing part", "", "", nil, 400, `{"error":"No archive uploaded","status":400,"cause":"Missing 'archive' file in multipart form-data."}`},
		{"wrong field", "file", "a.zip", makeZip(t, file("a")), 400, `{"error":"No archive uploaded","status":400,"cause":"Missing 'archive' file in multipart form-data."}`},
		{"empty filename", "archive", "", makeZip(t, file("a")), 400, `{"error":"No archive uploaded","status":400,"cause":"Missing 'archive' file in multipart form-data."}`},
		{"not a zip", "archive", "a.zip", []byte("hello"), 400, `{"error":"Uploaded file is not a valid zip archive","status":400,"cause":"Uploaded file is not a valid zip archive"}`},
		{"absolute path", "archive", "a.zip", makeZip(t, file("ok"), file("/etc/passwd")), 400,
			`{"error":"Archive contains absolute paths, aborting import.","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"traversal", "archive", "a.zip", makeZip(t, file("storage/../../x")), 400,
			`{"error":"Archive contains path traversal, aborting import.","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"symlink", "archive", "a.zip", makeZip(t, zipEntry{name: "link", mode: 0o120777, body: "/etc"}), 400,
			`{"error":"Archive contains symbolic links, aborting import.","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"metadata not json", "archive", "a.zip", makeZip(t, zipEntry{name: metadataName, mode: 0o600, body: "{nope"}), 400,
			`{"error":"Archive metadata invalid","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"metadata not utf-8", "archive", "a.zip", makeZip(t, zipEntry{name: metadataName, mode: 0o600, body: "\"\xff\""}), 400,
			`{"error":"Archive metadata invalid","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"metadata not an object", "archive", "a.zip", makeZip(t, zipEntry{name: metadataName, mode: 0o600, body: "[1]"}), 500,
			`{"error":"Failed to inspect uploaded archive","status":500,"cause":"Failed to inspect uploaded archive"}`},
		{"hostname mismatch", "archive", "a.zip", makeZip(t, file("config.ini"), metadataFor("worker2")), 400,
			`{"error":"Archive prepared for worker2, cannot import into worker1","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
		{"last metadata wins", "archive", "a.zip", makeZip(t, metadataFor("worker1"), metadataFor("worker9")), 400,
			`{"error":"Archive prepared for worker9, cannot import into worker1","status":400,"cause":"` + cause + `","remediation":"` + remedy + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postArchive(t, url, tt.field, tt.filename, tt.data)
			if r.status != tt.status || strings.TrimSpace(string(r.body)) != tt.want {
				t.Errorf("got %d %s\nwant %d %s", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if n := c.Unit("worker1").Imports(); n != 0 {
		t.Errorf("rejected archives ran %d imports", n)
	}
}

func TestImportAcceptsLegacyAndNamelessMetadata(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	for _, data := range [][]byte{
		makeZip(t, zipEntry{name: "config.ini", mode: 0o100644, body: "[a]\nb=1\n"}),
		makeZip(t, zipEntry{name: metadataName, mode: 0o600, body: `{"metadata_version": 1, "name": ""}`}),
	} {
		r := postArchive(t, u.URL()+"/unit_api/import_zipped_dot_pioreactor", "archive", "x.zip", data)
		if r.status != 202 || r.json(t)["status"] != "accepted" {
			t.Fatalf("got %d %s, want 202 accepted", r.status, r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := u.WaitRebooted(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if u.Imports() != 2 || u.Reboots() != 2 {
		t.Errorf("imports %d reboots %d, want 2 and 2", u.Imports(), u.Reboots())
	}
}

func TestImportLifecycle(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	// The import, the wait before the reboot and the downtime are held
	// until the test has seen each state, whatever the machine's load.
	u.SetRebootDelay(time.Hour)
	u.SetRebootDowntime(time.Hour)

	// Export, change the unit, import the export back.
	export := get(t, u.URL()+"/unit_api/zipped_dot_pioreactor").body
	os.WriteFile(filepath.Join(u.Dir(), "extra.txt"), []byte("gone after import"), 0o644)
	os.RemoveAll(filepath.Join(u.Dir(), "ui"))
	os.RemoveAll(filepath.Join(u.Dir(), "hardware"))
	os.MkdirAll(filepath.Join(u.Dir(), "ui", "jobs"), 0o755)
	os.WriteFile(filepath.Join(u.Dir(), "ui", "jobs", "kept.yaml"), []byte("x"), 0o644)
	// Drop ui/ and hardware/ from the archive so the unit's copies are kept.
	var entries []zipEntry
	for _, f := range readZip(t, export) {
		if strings.HasPrefix(f.Name, "ui/") || strings.HasPrefix(f.Name, "hardware/") {
			continue
		}
		entries = append(entries, zipEntry{name: f.Name, mode: f.ExternalAttrs >> 16, body: string(member(t, f))})
	}
	u.SetImportDelay(time.Hour)
	r := postArchive(t, u.URL()+"/unit_api/import_zipped_dot_pioreactor", "archive", "worker1_dot_pioreactor.zip", makeZip(t, entries...))
	if r.status != 202 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	acc := r.json(t)
	id, _ := acc["task_id"].(string)
	if acc["unit"] != "worker1" || acc["status"] != "accepted" || acc["result_url_path"] != "/unit_api/task_results/"+id || len(id) != 36 {
		t.Fatalf("accepted body %s", r.body)
	}
	if indexes(string(r.body), []string{`"unit"`, `"task_id"`, `"result_url_path"`, `"status"`}) == nil {
		t.Errorf("accepted body keys out of order: %s", r.body)
	}

	// While the task holds the lock: a second import is refused, the poll is pending.
	// The 202 comes when the task is queued; wait until it runs and holds the lock.
	waitFor(t, "the import task to take the lock", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.importing
	})
	r2 := postArchive(t, u.URL()+"/unit_api/import_zipped_dot_pioreactor", "archive", "x.zip", []byte("ignored, not even a zip"))
	wantLocked := `{"status":"running","lock":"import-dot-pioreactor-lock","retry_after_s":1,"remediation":"Wait for the running operation to finish, then retry."}`
	if r2.status != 202 || strings.TrimSpace(string(r2.body)) != wantLocked {
		t.Errorf("second import: %d %s, want 202 %s", r2.status, r2.body, wantLocked)
	}
	poll := u.URL() + "/unit_api/task_results/" + id
	if p := get(t, poll); p.status != 202 || p.json(t)["status"] != "pending" {
		t.Errorf("poll during import: %d %s", p.status, p.body)
	}

	// The task finishes: succeeded, then the unit goes down, then comes back.
	u.SetImportDelay(0)
	var done reply
	waitFor(t, "task success", func() bool { done = get(t, poll); return done.status == 200 })
	if m := done.json(t); m["status"] != "succeeded" || m["result"] != true || m["task_id"] != id {
		t.Errorf("final poll %s", done.body)
	}
	if again := get(t, poll); string(again.body) != string(done.body) {
		t.Errorf("results are preserved: second poll %s", again.body)
	}
	u.SetRebootDelay(0)
	waitFor(t, "connection refused", func() bool {
		resp, err := http.Get(u.URL() + "/unit_api/health")
		if err == nil {
			resp.Body.Close()
			return false
		}
		return strings.Contains(err.Error(), "refused")
	})
	u.SetRebootDowntime(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := u.WaitRebooted(ctx); err != nil {
		t.Fatal(err)
	}
	if p := get(t, poll); p.status != 202 || p.json(t)["status"] != "pending" {
		t.Errorf("poll after reboot: %d %s, want 202 pending", p.status, p.body)
	}
	if h := get(t, u.URL()+"/unit_api/health").json(t); h["status"] != "ok" || h["pioreactor_unit"] != "worker1" {
		t.Errorf("health after reboot: %v", h)
	}
	if ents, _ := os.ReadDir(u.TempDir()); len(ents) != 0 {
		t.Errorf("/tmp survived the reboot: %v", ents)
	}

	// The directory was replaced.
	if _, err := os.Stat(filepath.Join(u.Dir(), "extra.txt")); err == nil {
		t.Error("extra.txt survived a full replacement")
	}
	if _, err := os.Stat(filepath.Join(u.Dir(), "ui", "jobs", "kept.yaml")); err != nil {
		t.Errorf("ui/ missing from the archive was not restored from the backup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(u.Dir(), "hardware")); err == nil {
		t.Error("hardware/ reappeared although the backup had none")
	}
	cfg, _ := os.ReadFile(filepath.Join(u.Dir(), "config.ini"))
	for _, want := range []string{"[leds]\na=IR\n", "temporary_cache=" + temporaryCacheOption + "\n", "kp=0.05\n"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config.ini lacks %q after the rewrite:\n%s", want, cfg)
		}
	}
	if strings.Contains(string(cfg), "#") {
		t.Errorf("config.ini kept comments:\n%s", cfg)
	}
	if u.Imports() != 1 {
		t.Errorf("Imports() = %d", u.Imports())
	}

	// The stale metadata file is exported too: two entries of that name.
	files := readZip(t, get(t, u.URL()+"/unit_api/zipped_dot_pioreactor").body)
	var metas []int
	for i, f := range files {
		if f.Name == metadataName {
			metas = append(metas, i)
		}
	}
	if len(metas) != 2 || metas[1] != len(files)-1 || files[metas[0]].ExternalAttrs>>16 == 0o600 {
		t.Errorf("metadata entries at %v of %d; want the stale copy (rglob, real mode) and the fresh one last", metas, len(files))
	}
}

// indexes returns the positions of subs in s if they appear in order.
func indexes(s string, subs []string) []int {
	var out []int
	from := 0
	for _, sub := range subs {
		i := strings.Index(s[from:], sub)
		if i < 0 {
			return nil
		}
		from += i + len(sub)
		out = append(out, from)
	}
	return out
}

func TestImportFailureAndSentinel(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	url := u.URL() + "/unit_api/import_zipped_dot_pioreactor"
	archive := makeZip(t, zipEntry{name: "config.ini", mode: 0o100644, body: "[x]\ny=1\n"})

	u.FailNextImport("Failed to backup existing DOT_PIOREACTOR")
	r := postArchive(t, url, "archive", "a.zip", archive)
	id, _ := r.json(t)["task_id"].(string)
	var p reply
	waitFor(t, "task failure", func() bool { p = get(t, u.URL()+"/unit_api/task_results/"+id); return p.status == 200 })
	m := p.json(t)
	if m["status"] != "failed" || m["error"] != "Failed to backup existing DOT_PIOREACTOR" ||
		m["cause"] != "Huey task failed with an exception." || m["remediation"] != "Check logs and retry." {
		t.Errorf("failed task body %s", p.body)
	}
	if _, err := os.Stat(filepath.Join(u.Dir(), "unit_config.ini")); err != nil || u.Imports() != 0 || u.Reboots() != 0 {
		t.Errorf("a failed import changed the unit: %v imports=%d reboots=%d", err, u.Imports(), u.Reboots())
	}

	// A config.ini that configparser rejects fails the task and restores the backup.
	bad := makeZip(t, zipEntry{name: "config.ini", mode: 0o100644, body: "[leds]\nA=IR\na=IR\n"})
	r = postArchive(t, url, "archive", "a.zip", bad)
	id, _ = r.json(t)["task_id"].(string)
	waitFor(t, "task failure", func() bool { p = get(t, u.URL()+"/unit_api/task_results/"+id); return p.status == 200 })
	if m := p.json(t); m["error"] != "Failed to write new DOT_PIOREACTOR contents" {
		t.Errorf("duplicate option: %s", p.body)
	}
	if _, err := os.Stat(filepath.Join(u.Dir(), "unit_config.ini")); err != nil {
		t.Errorf("backup not restored: %v", err)
	}

	if err := u.SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	r = postArchive(t, url, "archive", "a.zip", archive)
	want := `{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system operations are disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or run the import locally via SSH."}`
	if r.status != 403 || strings.TrimSpace(string(r.body)) != want {
		t.Errorf("sentinel: %d %s", r.status, r.body)
	}
}
