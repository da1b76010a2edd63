package main

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A unit file with a backslash in its name (legal on Linux) is backed up
// with the rest of the unit, exported under its own name (which Python's
// zipfile, Pioreactor's import, extracts as that one file), and restored.
func TestBackslashFileNameIsBackedUpAndRestored(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	w1 := r.cluster.Unit("worker1")
	odd := filepath.Join(w1.Dir(), "storage", `od\90.yaml`)
	if err := os.WriteFile(odd, []byte("curve: [1, 2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, w1.Dir())
	r.mustRun("backup", "--host", "worker1")

	zipPath := filepath.Join(t.TempDir(), "worker1.zip")
	r.mustRun("export", "--host", "worker1", "--at", "latest", "-o", zipPath)
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range zr.File {
		found = found || f.Name == `storage/od\90.yaml`
	}
	zr.Close()
	if !found {
		t.Fatalf("export lacks storage/od\\90.yaml")
	}
	if py, err := exec.LookPath("python3"); err == nil {
		dest := t.TempDir()
		out, err := exec.Command(py, "-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", zipPath, dest).CombinedOutput()
		if err != nil {
			t.Fatalf("python3 zipfile extractall: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(filepath.Join(dest, "storage", `od\90.yaml`)); err != nil || !bytes.Equal(b, []byte("curve: [1, 2]\n")) {
			t.Errorf("Python extracted %q, %v; want the file under its own name", b, err)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("python3 is required to check what Pioreactor's import extracts: install it (apt-get install python3)")
	}

	if err := os.Remove(odd); err != nil {
		t.Fatal(err)
	}
	code, out, errs := r.run("restore", "--host", "worker1", "--at", "latest", "--yes")
	if code != exitOK || !strings.Contains(out, "restored and verified") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	compareTrees(t, before, readTree(t, w1.Dir()))
}

// A cluster archive given to `import --host` as one unit's is refused,
// saying what it is; nothing is stored.
func TestImportRefusesClusterArchive(t *testing.T) {
	t.Parallel()
	_, cfg := cliCluster(t, []string{"worker1"}, "")
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"worker1/config.ini", "worker1/pioreactor_export_metadata.json", "notes.txt"} {
		w, _ := zw.Create(name)
		body := "x"
		if strings.HasSuffix(name, ".json") {
			body = `{"metadata_version": 1, "name": "worker1"}`
		}
		_, _ = w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cluster_dot_pioreactor.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "import", "--host", "worker1", p)
	if code != exitFailure || !strings.Contains(errs, "is a cluster archive, not one unit's") || !strings.Contains(errs, "nothing was stored") {
		t.Errorf("import of a cluster archive: exit %d\n%s%s", code, out, errs)
	}
	if vs := cliVersions(t, cfg); len(vs) != 0 {
		t.Errorf("%d versions stored", len(vs))
	}
}

// import, like backup, stores into the stores it can write when another
// is unavailable, and exits 3.
func TestImportWithAnUnavailableStore(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "unmounted")
	c, cfg := cliCluster(t, []string{"worker1"}, fmt.Sprintf("\n[[store]]\nname = \"usb\"\npath = %q\n", missing))
	if code, _, errs := cliRun(t, cfg, "init", "--store", "local"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	zipPath := filepath.Join(t.TempDir(), "worker1_dot_pioreactor.zip")
	resp, err := http.Get(c.Unit("worker1").URL() + "/unit_api/zipped_dot_pioreactor")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export from the simulated unit: %v %s", err, resp.Status)
	}
	if err := os.WriteFile(zipPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "import", "--host", "worker1", zipPath)
	if code != exitPartial || !strings.Contains(out, "into store local") || !strings.Contains(errs, `store "usb"`) {
		t.Errorf("import with the usb store unavailable: exit %d\n%s%s", code, out, errs)
	}
	if vs := cliVersions(t, cfg, "--store", "local"); len(vs) != 1 {
		t.Errorf("local store has %d versions, want 1", len(vs))
	}
}
