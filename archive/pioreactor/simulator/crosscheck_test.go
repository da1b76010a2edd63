package simulator

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// python3 finds python3 or stops the test: a skip locally, a failure in CI.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required for the zipfile cross-check; install it with `apt-get install python3`")
		}
		t.Skip("python3 not found; the zipfile cross-check needs it (apt-get install python3)")
	}
	return p
}

type pyEntryInfo struct {
	Name         string `json:"name"`
	Method       int    `json:"method"`
	Mode         uint32 `json:"mode"`
	DOSDir       bool   `json:"dos_dir"`
	IsDir        bool   `json:"is_dir"`
	CreateSystem int    `json:"create_system"`
}

type pyReport struct {
	Unit struct {
		Entries  []pyEntryInfo  `json:"entries"`
		TestZip  *string        `json:"testzip"`
		Metadata map[string]any `json:"metadata"`
	} `json:"unit"`
	Expected  []string `json:"expected"`
	Aggregate struct {
		Entries []pyEntryInfo `json:"entries"`
		TestZip *string       `json:"testzip"`
	} `json:"aggregate"`
	Config string `json:"config"`
}

// TestPythonCrossCheck reads the simulator's archives with CPython's zipfile
// and compares them with what the real export code would produce.
func TestPythonCrossCheck(t *testing.T) {
	py := python3(t)
	c := startCluster(t, Options{Workers: []string{"worker1", "worker2"}})
	u := c.Unit("worker1")
	// Names whose order differs between string and component sorting, and links.
	for _, p := range []string{"a.txt", "a/b", "a-b", "a b", "B", "_x", "é.yaml"} {
		full := filepath.Join(u.Dir(), p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(p), 0o640)
	}
	os.Symlink(filepath.Join(t.TempDir()), filepath.Join(u.Dir(), "escape_dir"))
	os.Symlink("config.ini", filepath.Join(u.Dir(), "config_link"))
	os.Symlink("storage/calibrations", filepath.Join(u.Dir(), "calib_link"))
	os.WriteFile(filepath.Join(u.Dir(), "storage", "pioreactor.sqlite.backup"), []byte("x"), 0o644)

	dir := t.TempDir()
	unitZip, aggZip := filepath.Join(dir, "unit.zip"), filepath.Join(dir, "cluster.zip")
	os.WriteFile(unitZip, get(t, u.URL()+"/unit_api/zipped_dot_pioreactor").body, 0o644)
	os.WriteFile(aggZip, get(t, c.LeaderURL()+"/api/units/$broadcast/zipped_dot_pioreactor").body, 0o644)
	cfg := filepath.Join(dir, "config.ini")
	orig, _ := os.ReadFile(filepath.Join(u.Dir(), "config.ini"))
	os.WriteFile(cfg, orig, 0o644)

	out, err := exec.Command(py, "testdata/crosscheck.py", unitZip, u.Dir(), aggZip, cfg).Output()
	if err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	var rep pyReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("crosscheck.py output: %v\n%s", err, out)
	}

	if rep.Unit.TestZip != nil || rep.Aggregate.TestZip != nil {
		t.Errorf("zipfile.testzip found bad members: %v %v", rep.Unit.TestZip, rep.Aggregate.TestZip)
	}
	var names []string
	for _, e := range rep.Unit.Entries {
		names = append(names, e.Name)
		if e.CreateSystem != 3 {
			t.Errorf("%s: create_system %d, want 3 (Unix)", e.Name, e.CreateSystem)
		}
		switch {
		case e.Name == metadataName:
			if e.Mode != 0o600 || e.Method != 8 {
				t.Errorf("metadata: mode %o method %d", e.Mode, e.Method)
			}
		case e.IsDir:
			if e.Method != 0 || e.Mode&0o170000 != 0o40000 || !e.DOSDir {
				t.Errorf("directory %s: method %d mode %o dos %v", e.Name, e.Method, e.Mode, e.DOSDir)
			}
		default:
			if e.Method != 8 || e.Mode&0o170000 != 0o100000 {
				t.Errorf("file %s: method %d mode %o", e.Name, e.Method, e.Mode)
			}
		}
	}
	want := append(rep.Expected, metadataName)
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries differ from sorted(rglob):\n got %q\nwant %q", names, want)
	}
	if rep.Unit.Metadata["name"] != "worker1" || rep.Unit.Metadata["metadata_version"] != 1.0 || rep.Unit.Metadata["is_leader"] != false {
		t.Errorf("metadata as Python reads it: %v", rep.Unit.Metadata)
	}

	hosts := map[string]bool{}
	for _, e := range rep.Aggregate.Entries {
		h, _, _ := strings.Cut(e.Name, "/")
		hosts[h] = true
		wantMode := uint32(0o600)
		if e.IsDir {
			wantMode = 0o40775
		}
		if e.Method != 8 || e.Mode != wantMode {
			t.Errorf("aggregate %s: method %d mode %o, want 8 %o", e.Name, e.Method, e.Mode, wantMode)
		}
	}
	if len(hosts) != 3 {
		t.Errorf("aggregate host folders %v", hosts)
	}

	if err := rewriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(cfg)
	if string(got) != rep.Config {
		t.Errorf("config.ini rewrite differs from configparser's:\n%s\nvs\n%s", got, rep.Config)
	}
}
