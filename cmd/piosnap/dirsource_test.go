package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirConfig returns a [[source]] of kind dir over root whose "database" is
// the file db.sql beside it, dumped and loaded by shell commands, and
// whose hooks leave marker files.
func dirConfig(root string) string {
	db := root + ".db.sql"
	return fmt.Sprintf(`
[[source]]
kind = "dir"
name = "cells"
paths = [%q]
excludes = ["data/.minio.sys/tmp", "logs/*.log.*"]
[source.hooks]
stop = ["sh", "-c", "echo stop >> %[2]s.hooks"]
start = ["sh", "-c", "echo start >> %[2]s.hooks"]
timeout = "10s"
[source.database]
engine = "command"
name = "cells"
dump = ["cat", %[3]q]
load = ["sh", "-c", "cat > %[3]s"]
`, root, root, db)
}

func layoutDir(t *testing.T, root string) {
	t.Helper()
	for name, content := range map[string]string{
		"pydio.json":                `{"defaults":{"urlInternal":"http://old:8080"},"path":"` + root + `"}`,
		"data/pydiods1/a.txt":       "alpha",
		"data/.minio.sys/tmp/part":  "junk",
		"logs/pydio.log":            "log",
		"logs/pydio.log.1":          "rotated",
		"services/docstore/db.bolt": "bolt",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "data/empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pydiods1/a.txt", filepath.Join(root, "data/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(root, "data/pydiods1/a.txt"), 4321, 4321); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+".db.sql", []byte("rows: one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDirSourceCLI runs a directory-only configuration through init,
// backup, list, export (tar) and restore (in place and --to).
func TestDirSourceCLI(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "cells")
	layoutDir(t, root)
	cfg := filepath.Join(tmp, "piosnap.toml")
	text := fmt.Sprintf("zone = \"UTC\"\nlock_wait = \"2s\"\n[[store]]\nname = \"local\"\npath = %q\n[store.retention]\nkeep_last = 3\n", filepath.Join(tmp, "repo")) + dirConfig(root)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	code, out, errs := cliRun(t, cfg, "backup")
	if code != 0 || !strings.Contains(out, "cells") || !strings.Contains(out, "ok") {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errs)
	}
	if hooks, _ := os.ReadFile(root + ".hooks"); string(hooks) != "stop\nstart\n" {
		t.Errorf("hooks ran: %q", hooks)
	}
	vs := cliVersions(t, cfg)
	if len(vs) != 1 || vs[0].Host != "cells" {
		t.Fatalf("list: %+v", vs)
	}

	// export: a tar with owners, links, empty folders and the dump.
	tarPath := filepath.Join(tmp, "cells.tar")
	if code, out, errs := cliRun(t, cfg, "export", "--host", "cells", "--at", "latest", "-o", tarPath); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errs)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]*tar.Header{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
	}
	base := strings.TrimPrefix(root, "/")
	if h := seen[base+"/data/pydiods1/a.txt"]; h == nil || h.Uid != 4321 || h.Mode != 0o640 {
		t.Errorf("a.txt in the tar: %+v", h)
	}
	if h := seen[base+"/data/link"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "pydiods1/a.txt" {
		t.Errorf("link in the tar: %+v", h)
	}
	if h := seen[base+"/data/empty/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o750 {
		t.Errorf("empty folder in the tar: %+v", h)
	}
	if seen["piosnap-database/cells.dump"] == nil {
		t.Errorf("the dump is not in the tar: %v", seen)
	}
	for _, gone := range []string{base + "/data/.minio.sys/tmp/part", base + "/logs/pydio.log.1"} {
		if seen[gone] != nil {
			t.Errorf("%s was not excluded", gone)
		}
	}

	// restore in place
	os.WriteFile(filepath.Join(root, "data/pydiods1/a.txt"), []byte("changed"), 0o644)
	os.WriteFile(root+".db.sql", []byte("rows: changed\n"), 0o600)
	if code, _, errs := cliRun(t, cfg, "restore", "--host", "cells"); code == 0 || !strings.Contains(errs, "--yes") {
		t.Errorf("restore without --yes on a non-terminal: %d %s", code, errs)
	}
	if code, out, errs := cliRun(t, cfg, "restore", "--host", "cells", "--dry-run"); code != 0 || !strings.Contains(out, "nothing was changed") {
		t.Errorf("dry run: %d %s %s", code, out, errs)
	}
	code, out, errs = cliRun(t, cfg, "restore", "--host", "cells", "--yes")
	if code != 0 {
		t.Fatalf("restore: %d\n%s\n%s", code, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "data/pydiods1/a.txt")); string(b) != "alpha" {
		t.Errorf("a.txt = %q", b)
	}
	if b, _ := os.ReadFile(root + ".db.sql"); string(b) != "rows: one\n" {
		t.Errorf("database = %q", b)
	}
	if !strings.Contains(out, ".pre-restore-") {
		t.Errorf("the kept state is not named:\n%s", out)
	}

	// restore --to, files only: a checklist names pydio.json's old path.
	dst := filepath.Join(tmp, "new-cells")
	code, out, errs = cliRun(t, cfg, "restore", "--host", "cells", "--yes", "--files-only", "--to", dst)
	if code != 0 || !strings.Contains(out, "sed -i 's#"+root+"#"+dst+"#g'") || !strings.Contains(out, "urlInternal") {
		t.Errorf("restore --to: %d\n%s\n%s", code, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "data/pydiods1/a.txt")); string(b) != "alpha" {
		t.Errorf("--to: a.txt = %q", b)
	}
	if code, _, errs := cliRun(t, cfg, "restore", "--host", "cells", "--files-only", "--db-only", "--yes"); code == 0 || !strings.Contains(errs, "at most one") {
		t.Errorf("--files-only --db-only: %d %s", code, errs)
	}
	if code, _, errs := cliRun(t, cfg, "restore", "--host", "cells", "--stored", "--yes"); code != exitUsage || !strings.Contains(errs, "are for Pioreactor units") {
		t.Errorf("--stored for a directory source: %d %s", code, errs)
	}
}

// TestDirSourceWithCluster backs up a simulated cluster and a directory
// source in one run.
func TestDirSourceWithCluster(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cells")
	layoutDir(t, root)
	_, cfg := cliCluster(t, []string{"worker1"}, dirConfig(root))
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	code, out, errs := cliRun(t, cfg, "backup")
	if code != 0 {
		t.Fatalf("backup: %d\n%s\n%s", code, out, errs)
	}
	hosts := map[string]bool{}
	for _, v := range cliVersions(t, cfg) {
		hosts[v.Host] = true
	}
	if !hosts["cells"] || !hosts["leader1"] || !hosts["worker1"] {
		t.Errorf("hosts stored: %v", hosts)
	}
	// --host picks the directory source alone.
	code, out, _ = cliRun(t, cfg, "backup", "--host", "cells")
	if code != 0 || strings.Contains(out, "worker1") {
		t.Errorf("backup --host cells: %d\n%s", code, out)
	}
	if code, _, errs := cliRun(t, cfg, "restore", "--host", "worker1", "--files-only"); code == 0 || !strings.Contains(errs, "directory sources") {
		t.Errorf("--files-only on a unit: %d %s", code, errs)
	}
}

// TestDirSourceConfigCheck: config check warns about a missing folder and
// an option file others can read, before any backup fails on them.
func TestDirSourceConfigCheck(t *testing.T) {
	tmp := t.TempDir()
	cnf := filepath.Join(tmp, "cells-db.cnf")
	if err := os.WriteFile(cnf, []byte("[client]\npassword=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "piosnap.toml")
	text := fmt.Sprintf(`[[store]]
path = %q
[[source]]
kind = "dir"
name = "cells"
paths = [%q]
[source.database]
engine = "mariadb"
name = "cells"
options_file = %q
`, filepath.Join(tmp, "repo"), filepath.Join(tmp, "missing"), cnf)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "config", "check")
	if code != 0 || !strings.Contains(out, "is not a folder here") || !strings.Contains(out, "chmod 600 "+cnf) {
		t.Errorf("config check: %d\n%s\n%s", code, out, errs)
	}
}
