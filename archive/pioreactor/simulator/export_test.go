package simulator

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// listing renders name, method and mode of every member, one per line.
func listing(t *testing.T, body []byte) string {
	t.Helper()
	var b strings.Builder
	for _, f := range readZip(t, body) {
		fmt.Fprintf(&b, "%s method=%d mode=%06o\n", f.Name, f.Method, f.ExternalAttrs>>16)
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file %s (run with -update if intended):\n%s", name, p, got)
	}
}

// localWall is t's local wall-clock time labelled UTC, which is how Go's
// zip reader reports an MS-DOS timestamp written from Python's localtime.
func localWall(t time.Time) time.Time {
	l := t.Local()
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

var metaRE = regexp.MustCompile(`^\{"metadata_version": 1, "name": "([^"]*)", "leader_hostname": "leader1", "is_leader": (true|false), "app_version": "26\.7\.2", "exported_at_utc": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"\}$`)

func TestUnitExportLayout(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	for _, unit := range []string{"leader1", "worker1"} {
		t.Run(unit, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			r := get(t, c.Unit(unit).URL()+"/unit_api/zipped_dot_pioreactor")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got, want := r.header.Get("Content-Disposition"), "attachment; filename="+unit+"_dot_pioreactor.zip"; got != want {
				t.Errorf("Content-Disposition = %q, want %q", got, want)
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
				t.Errorf("Content-Length = %q, body has %d bytes", got, len(r.body))
			}
			if r.header.Get("Content-Type") != "application/zip" {
				t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			golden(t, unit+"_export.golden", listing(t, r.body))
			files := readZip(t, r.body)
			for _, f := range files {
				dir := strings.HasSuffix(f.Name, "/")
				if f.Flags&0x8 != 0 {
					t.Errorf("%s uses a data descriptor; Python writes sizes in the local header", f.Name)
				}
				if dir && (f.ExternalAttrs&0x10 == 0 || f.CompressedSize64 != 0) {
					t.Errorf("directory %s: attrs %#x size %d, want MS-DOS dir bit and size 0", f.Name, f.ExternalAttrs, f.CompressedSize64)
				}
				if !dir && f.Name != metadataName && !f.Modified.Equal(localWall(seedTime)) && !strings.HasSuffix(f.Name, "pioreactor.sqlite") {
					t.Errorf("%s mtime %v, want the file's mtime %v", f.Name, f.Modified, seedTime)
				}
				if f.Name == "storage/pioreactor.sqlite.backup" {
					t.Errorf("the database backup must be excluded")
				}
			}
			last := files[len(files)-1]
			if last.Name != metadataName || last.ExternalAttrs>>16 != 0o600 {
				t.Fatalf("last member %s mode %o, want %s mode 600", last.Name, last.ExternalAttrs>>16, metadataName)
			}
			if last.Modified.Before(localWall(before).Truncate(2 * time.Second)) {
				t.Errorf("metadata mtime %v is not the export time", last.Modified)
			}
			m := metaRE.FindStringSubmatch(string(member(t, last)))
			if m == nil {
				t.Fatalf("metadata %q does not match json.dumps format", member(t, last))
			}
			if m[1] != unit || m[2] != strconv.FormatBool(unit == "leader1") {
				t.Errorf("metadata name=%s is_leader=%s for %s", m[1], m[2], unit)
			}
			at, _ := time.Parse(time.RFC3339, m[3])
			if at.Before(before) || at.After(time.Now()) {
				t.Errorf("exported_at_utc %s is not the export time", m[3])
			}
			waitFor(t, "temporary export file removal", func() bool {
				entries, _ := os.ReadDir(c.Unit(unit).TempDir())
				return len(entries) == 0
			})
		})
	}
}

func TestRglobOrder(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.txt", "a/b", "a-b", "a/c/d", "B", "_x", ".hidden", "a b", "é"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rglob(dir)
	if err != nil {
		t.Fatal(err)
	}
	// sorted(Path.rglob("*")) compares path components, so "a/..." sorts
	// before "a b", "a-b" and "a.txt" although "/" > " ", "-", ".".
	want := []string{".hidden", "B", "_x", "a", "a/b", "a/c", "a/c/d", "a b", "a-b", "a.txt", "é"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rglob order\n got %q\nwant %q", got, want)
	}
	if _, err := rglob(filepath.Join(dir, "missing")); err == nil {
		t.Error("rglob of a missing directory succeeded")
	}
}

func TestExportSymlinks(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("secret"), 0o644)
	links := map[string]string{
		"escape_link":           outside,
		"inside_link.ini":       filepath.Join(u.Dir(), "config.ini"),
		"dangling":              filepath.Join(u.Dir(), "nope"),
		"plugins/relative_link": "../unit_config.ini",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(u.Dir(), name)); err != nil {
			t.Fatal(err)
		}
	}
	r := get(t, u.URL()+"/unit_api/zipped_dot_pioreactor")
	byName := map[string][]byte{}
	modes := map[string]uint32{}
	for _, f := range readZip(t, r.body) {
		byName[f.Name] = member(t, f)
		modes[f.Name] = f.ExternalAttrs >> 16
	}
	cfg, _ := os.ReadFile(filepath.Join(u.Dir(), "config.ini"))
	unitCfg, _ := os.ReadFile(filepath.Join(u.Dir(), "unit_config.ini"))
	tests := []struct {
		name    string
		present bool
		content []byte
	}{
		{"escape_link", false, nil},
		{"dangling", false, nil},
		{"inside_link.ini", true, cfg},
		{"plugins/relative_link", true, unitCfg},
	}
	for _, tt := range tests {
		got, ok := byName[tt.name]
		if ok != tt.present {
			t.Errorf("%s present=%v, want %v", tt.name, ok, tt.present)
			continue
		}
		if ok && (string(got) != string(tt.content) || modes[tt.name]&0o170000 != 0o100000) {
			t.Errorf("%s: mode %o content %q, want a regular file with the target's content", tt.name, modes[tt.name], got)
		}
	}
}

func TestExportSentinel(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	url := u.URL() + "/unit_api/zipped_dot_pioreactor"

	// A directory with the sentinel's name does not count.
	os.Mkdir(filepath.Join(u.Dir(), sentinelName), 0o755)
	if r := get(t, url); r.status != 200 {
		t.Fatalf("sentinel directory blocked the export: %d", r.status)
	}
	os.Remove(filepath.Join(u.Dir(), sentinelName))

	if err := u.SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	r := get(t, url)
	want := `{"error":"DISALLOW_UI_FILE_SYSTEM is present","status":403,"cause":"File system access is disabled on this unit.","remediation":"Remove DISALLOW_UI_FILE_SYSTEM or export files locally via SSH."}`
	if r.status != 403 || strings.TrimSpace(string(r.body)) != want {
		t.Errorf("got %d %s, want 403 %s", r.status, r.body, want)
	}
	if err := u.SetSentinel(false); err != nil {
		t.Fatal(err)
	}
	if r := get(t, url); r.status != 200 {
		t.Errorf("after removing the sentinel: %d", r.status)
	}
	if err := u.SetSentinel(false); err != nil {
		t.Errorf("removing an absent sentinel: %v", err)
	}
}

func TestExportUnreadableFileSkipped(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("running as root: permissions do not block reads, checking the file is exported instead")
	}
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	p := filepath.Join(u.Dir(), "private.txt")
	os.WriteFile(p, []byte("x"), 0o000)
	found := false
	for _, f := range readZip(t, get(t, u.URL()+"/unit_api/zipped_dot_pioreactor").body) {
		found = found || f.Name == "private.txt"
	}
	if found != (os.Geteuid() == 0) {
		t.Errorf("unreadable file exported=%v; want it skipped unless running as root", found)
	}
}

func TestExportMetadataEncoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{"worker1", `"worker1"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"é\n", `"\u00e9\n"`},
		{"😀", `"\ud83d\ude00"`},
		{"\x7f", `"\u007f"`},
	}
	for _, tt := range tests {
		if got := pyString(tt.in); got != tt.want {
			t.Errorf("pyString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestExportDelayAndSlow(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	for _, tt := range []struct {
		name string
		set  func(time.Duration)
	}{{"export delay", u.SetExportDelay}, {"slow", u.SetSlow}} {
		tt.set(300 * time.Millisecond)
		start := time.Now()
		r := get(t, u.URL()+"/unit_api/zipped_dot_pioreactor")
		if d := time.Since(start); r.status != 200 || d < 300*time.Millisecond {
			t.Errorf("%s: status %d after %v, want 200 after at least 300ms", tt.name, r.status, d)
		}
		tt.set(0)
	}
}

// TestExportHeldAndReleased: a long export delay holds an export that has
// begun (Exports counts it) until the delay is set to 0.
func TestExportHeldAndReleased(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	u.SetExportDelay(time.Hour)
	status := make(chan int, 1)
	go func() {
		resp, err := http.Get(u.URL() + "/unit_api/zipped_dot_pioreactor")
		if err != nil {
			status <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	waitFor(t, "the export to begin", func() bool { return u.Exports() == 1 })
	select {
	case s := <-status:
		t.Fatalf("the held export answered %d", s)
	default:
	}
	u.SetExportDelay(0)
	if s := <-status; s != 200 {
		t.Errorf("released export: status %d, want 200", s)
	}
}

func TestUnitTempDirFailures(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	if err := os.RemoveAll(u.TempDir()); err != nil {
		t.Fatal(err)
	}
	defer os.MkdirAll(u.TempDir(), 0o755)
	if r := get(t, u.URL()+"/unit_api/zipped_dot_pioreactor"); r.status != 500 || r.json(t)["error"] != "Failed to create export archive" {
		t.Errorf("export without a temp dir: %d %s", r.status, r.body)
	}
	r := postArchive(t, u.URL()+"/unit_api/import_zipped_dot_pioreactor", "archive", "a.zip", makeZip(t, metadataFor("worker1")))
	if r.status != 500 || r.json(t)["error"] != "Failed to save uploaded archive" {
		t.Errorf("import without a temp dir: %d %s", r.status, r.body)
	}
}

func TestExportHead(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	req, _ := http.NewRequest(http.MethodHead, c.Unit("worker1").URL()+"/unit_api/zipped_dot_pioreactor", nil)
	r := do(t, req)
	if r.status != 200 || r.header.Get("Content-Length") == "" || len(r.body) != 0 {
		t.Errorf("HEAD: %d, length %q, %d body bytes", r.status, r.header.Get("Content-Length"), len(r.body))
	}
}
