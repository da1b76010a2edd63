package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

// cliCluster starts a simulated cluster and writes a config for it with one
// local store; it returns the cluster and the config path.
func cliCluster(t *testing.T, workers []string, extra string) (*simulator.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	c, err := simulator.Start(context.Background(), simulator.Options{Dir: filepath.Join(dir, "cluster"), Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var addrs strings.Builder
	for u, a := range c.Addresses() {
		fmt.Fprintf(&addrs, "%s = %q\n", u, a)
	}
	cfg := fmt.Sprintf(`zone = "UTC"
lock_wait = "2s"
state_dir = %q
[pioreactor]
leader = %q
timeout = "1m"
[pioreactor.addresses]
%s
[[store]]
name = "local"
path = %q
[store.retention]
keep_last = 1
%s`, filepath.Join(dir, "state"), c.LeaderURL(), addrs.String(), filepath.Join(dir, "repo"), extra)
	path := filepath.Join(dir, "piosnap.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// cliRun runs piosnap in-process and returns its exit code and output.
func cliRun(t *testing.T, cfgPath string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"-c", cfgPath}, args...)
	code := Main(context.Background(), full, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func cliVersions(t *testing.T, cfgPath string, args ...string) []listedVersion {
	t.Helper()
	code, out, errs := cliRun(t, cfgPath, append([]string{"list", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	var vs []listedVersion
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return vs
}

func cliZipFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		if f.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s: export holds a symlink %s", path, f.Name)
		}
		if f.FileInfo().IsDir() {
			continue
		}
		rc, _ := f.Open()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

func TestCLIBackupListExportImport(t *testing.T) {
	c, cfg := cliCluster(t, []string{"worker1", "worker2", "worker3"}, "")
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	if code, out, errs := cliRun(t, cfg, "backup"); code != 0 || !strings.Contains(out, "worker3") {
		t.Fatalf("backup: %d\n%s\n%s", code, out, errs)
	}
	if err := c.Unit("worker1").WriteCalibration("od90", "new", "x: 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.GrowDatabase(context.Background(), 128<<10); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "backup", "--json")
	if code != 0 {
		t.Fatalf("second backup: %d %s", code, errs)
	}
	var rep struct {
		Hosts []struct {
			Host   string
			Stores []struct {
				Stored int64 `json:"stored_bytes"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Hosts) != 4 {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	vs := cliVersions(t, cfg)
	if len(vs) != 8 {
		t.Fatalf("%d versions, want 8", len(vs))
	}
	if got := cliVersions(t, cfg, "--host", "worker2"); len(got) != 2 {
		t.Errorf("list --host worker2: %d versions", len(got))
	}
	// Every version exports; the newest of each host matches the unit's files.
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, v := range vs {
		zipPath := filepath.Join(dir, v.ShortID+".zip")
		if code, _, errs := cliRun(t, cfg, "export", "--host", v.Host, "--version", v.ShortID, "-o", zipPath); code != 0 {
			t.Fatalf("export %s: %d %s", v.ShortID, code, errs)
		}
		if seen[v.Host] {
			continue
		}
		seen[v.Host] = true
		got := cliZipFiles(t, zipPath)
		// --stored writes the same entries uncompressed.
		storedPath := filepath.Join(dir, v.ShortID+"-stored.zip")
		if code, _, errs := cliRun(t, cfg, "export", "--stored", "--host", v.Host, "--version", v.ShortID, "-o", storedPath); code != 0 {
			t.Fatalf("export --stored %s: %d %s", v.ShortID, code, errs)
		}
		if stored := cliZipFiles(t, storedPath); !maps.EqualFunc(got, stored, bytes.Equal) {
			t.Errorf("%s: export --stored holds other files than export", v.ShortID)
		}
		// A named pipe (like /dev/null, not a regular file) is written in
		// place, not replaced by a renamed temporary file.
		fifo := filepath.Join(dir, v.ShortID+".fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		read := make(chan []byte, 1)
		go func() {
			b, _ := os.ReadFile(fifo)
			read <- b
		}()
		if code, _, errs := cliRun(t, cfg, "export", "--stored", "--host", v.Host, "--version", v.ShortID, "-o", fifo); code != 0 {
			t.Fatalf("export to a named pipe: %d %s", code, errs)
		}
		if fi, err := os.Lstat(fifo); err != nil {
			t.Fatal(err)
		} else if fi.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("export replaced the named pipe %s by a file of mode %v", fifo, fi.Mode())
		}
		want, rerr := os.ReadFile(storedPath)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if b := <-read; !bytes.Equal(b, want) {
			t.Errorf("%s: the named pipe read %d bytes, want the %d of export --stored", v.ShortID, len(b), len(want))
		}
		err := filepath.WalkDir(c.Unit(v.Host).Dir(), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(c.Unit(v.Host).Dir(), p)
			if rel == "storage/pioreactor.sqlite.backup" {
				return nil
			}
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got[filepath.ToSlash(rel)], want) {
				t.Errorf("%s: %s differs in export", v.Host, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// --at picks the newest at or before a time; a date before any fails.
	if code, _, errs := cliRun(t, cfg, "export", "--host", "worker1", "--at", "2020-01-01", "-o", filepath.Join(dir, "x.zip")); code != 1 || !strings.Contains(errs, "the oldest is from") {
		t.Errorf("export before first version: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.zip")); !os.IsNotExist(err) {
		t.Error("a failed export left a file behind")
	}
	// import: a hand-exported ZIP becomes a version with the metadata's time.
	first := filepath.Join(dir, vs[len(vs)-1].ShortID+".zip")
	host := vs[len(vs)-1].Host
	code, out, errs = cliRun(t, cfg, "import", "--host", host, first)
	if code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	if got := cliVersions(t, cfg, "--host", host); len(got) != 3 || got[2].Kind != "import" && got[1].Kind != "import" && got[0].Kind != "import" {
		t.Errorf("after import: %+v", got)
	}
	// The wrong host is refused and nothing is stored.
	other := "worker3"
	if host == "worker3" {
		other = "worker2"
	}
	code, _, errs = cliRun(t, cfg, "import", "--host", other, first)
	if code != 1 || !strings.Contains(errs, "names unit") {
		t.Errorf("import for wrong host: %d %s", code, errs)
	}
	if n := len(cliVersions(t, cfg)); n != 9 {
		t.Errorf("%d versions after a refused import, want 9", n)
	}
	// Retention with keep_last = 1 leaves one version per host and a clean repo.
	if code, out, errs := cliRun(t, cfg, "forget", "--dry-run"); code != 0 || !strings.Contains(out, "would be removed") {
		t.Errorf("forget --dry-run: %d %s %s", code, out, errs)
	}
	if n := len(cliVersions(t, cfg)); n != 9 {
		t.Errorf("dry run removed versions: %d left", n)
	}
	if code, out, errs := cliRun(t, cfg, "forget"); code != 0 || !strings.Contains(out, "removed 5 versions") {
		t.Errorf("forget: %d %s %s", code, out, errs)
	}
	if code, out, errs := cliRun(t, cfg, "check", "--read-data"); code != 0 || !strings.Contains(out, "no damage found") {
		t.Errorf("check after forget: %d %s %s", code, out, errs)
	}
}

func TestCLIFailingUnitsExitPartial(t *testing.T) {
	c, cfg := cliCluster(t, []string{"worker1", "worker2", "worker3"}, "")
	cliRun(t, cfg, "init")
	if err := c.Unit("worker2").SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	if err := c.Unit("worker3").SetOffline(true); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "backup")
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitPartial, out, errs)
	}
	for _, want := range []string{"worker2 refuses export: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker2", "worker3 unreachable at " + c.Unit("worker3").Addr(), "2 of 4 hosts are missing"} {
		if !strings.Contains(out+errs, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out, errs)
		}
	}
	if n := len(cliVersions(t, cfg)); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
}

func TestCLIErrors(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("shedule = \"@daily\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  string
		args []string
		code int
		want string
	}{
		{"unknown command", cfg, []string{"bakup"}, exitUsage, `unknown command "bakup"`},
		{"bad config", bad, []string{"list"}, exitUsage, "unknown key shedule"},
		{"missing config", filepath.Join(t.TempDir(), "none.toml"), []string{"list"}, exitUsage, "does not exist"},
		{"no repository", cfg, []string{"list"}, exitFailure, "piosnap init"},
		{"export needs host", cfg, []string{"export", "-o", "x.zip", "--at", "latest"}, exitUsage, "--host and -o are required"},
		{"export takes one selector", cfg, []string{"export", "--host", "leader1", "-o", "x.zip", "--at", "latest", "--version", "abcd"}, exitUsage, "one of --version ID and --at TIME, not both"},
		{"unknown store", cfg, []string{"list", "--store", "offsite"}, exitUsage, `no store named "offsite"`},
		{"bad flag", cfg, []string{"list", "--nope"}, exitUsage, "flag provided but not defined"},
		{"config check", cfg, []string{"config", "check"}, exitOK, ""},
		{"forget negative count", cfg, []string{"forget", "--keep-daily", "-5"}, exitUsage, "keep_daily is -5"},
		{"forget bad duration", cfg, []string{"forget", "--keep-within", "1w"}, exitUsage, `--keep-within: retention duration "1w"`},
		{"forget empty override", cfg, []string{"forget", "--keep-daily", "0"}, exitUsage, "empty"},
		{"import needs a file", cfg, []string{"import", "--host", "leader1"}, exitUsage, "exactly one ZIP file"},
		{"import time latest", cfg, []string{"import", "--host", "leader1", "--time", "latest", "x.zip"}, exitUsage, "give a date or RFC 3339 time"},
		{"config check bad", bad, []string{"config", "check"}, exitUsage, "unknown key shedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := cliRun(t, tt.cfg, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.want, out, errs)
			}
		})
	}
}

// An empty ZIP is refused with an error, not a crash, and stores nothing.
func TestCLIImportEmptyArchive(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	cliRun(t, cfg, "init")
	empty := filepath.Join(t.TempDir(), "empty.zip")
	if err := os.WriteFile(empty, []byte("PK\x05\x06"+strings.Repeat("\x00", 18)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "import", "--host", "leader1", empty)
	if code != exitFailure || !strings.Contains(errs, "holds no files") {
		t.Errorf("import of an empty ZIP: exit %d, want %d and an error saying it holds no files:\n%s%s", code, exitFailure, out, errs)
	}
	if n := len(cliVersions(t, cfg)); n != 0 {
		t.Errorf("%d versions after a refused import, want 0", n)
	}
}

func TestCLICheckReportsDamage(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	repo := filepath.Join(filepath.Dir(cfg), "repo")
	var victim string
	_ = filepath.WalkDir(filepath.Join(repo, "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && victim == "" {
			victim = p
		}
		return err
	})
	if err := os.WriteFile(victim, []byte("rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cliRun(t, cfg, "check", "--read-data")
	if code != exitDamaged || !strings.Contains(out, "DAMAGED packs/") || !strings.Contains(out, "affects version") {
		t.Errorf("check: exit %d\n%s", code, out)
	}
	// Of two halves, the one holding the damaged pack reads it and names
	// it. (Both see that the version's page tree cannot be read, as a
	// check without --read-data does: the pack holds tree nodes.)
	found := 0
	for _, part := range []string{"1/2", "2/2"} {
		code, out, _ := cliRun(t, cfg, "check", "--read-data-subset", part)
		if code != exitDamaged || !strings.Contains(out, "(part "+part+")") {
			t.Errorf("check --read-data-subset %s: exit %d; want %d, naming the part:\n%s", part, code, exitDamaged, out)
		}
		if strings.Contains(out, "DAMAGED packs/") {
			found++
		}
	}
	if found != 1 {
		t.Errorf("%d halves found the damaged pack, want 1", found)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--read-data", "--read-data-subset", "1/2"}, "give one of them"},
		{[]string{"--read-data-subset", "3/2"}, "N must be from 1 to T"},
		{[]string{"--read-data-subset", "half"}, "write it as N/T"},
	} {
		code, _, errs := cliRun(t, cfg, append([]string{"check"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("check %v: exit %d, %q; want exit %d saying %q", tc.args, code, errs, exitUsage, tc.want)
		}
	}
}

func TestCLIDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("demo seeds a 16 MiB database")
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"demo", "--db-size", "4"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != 0 {
		t.Fatalf("demo: %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"Second backup", "no damage found", "What happened", "_dot_pioreactor.zip", "cells        ok", "welcome.txt holds \"welcome to cells\" again"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	_ = time.Second
}

// A store that cannot be opened at the start of a run (an unmounted disk)
// does not cost the other store its versions; the run exits 3 and names it.
func TestCLIUnavailableStoreDoesNotCostOthers(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "unmounted")
	_, cfg := cliCluster(t, []string{"worker1"}, fmt.Sprintf("\n[[store]]\nname = \"usb\"\npath = %q\n", missing))
	if code, _, errs := cliRun(t, cfg, "init", "--store", "local"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	code, out, errs := cliRun(t, cfg, "backup")
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitPartial, out, errs)
	}
	if !strings.Contains(out, "store usb: ") || !strings.Contains(out, "piosnap init") {
		t.Errorf("report does not name the unavailable store and the fix:\n%s", out)
	}
	if n := len(cliVersions(t, cfg, "--store", "local")); n != 2 {
		t.Errorf("local store has %d versions, want 2", n)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("the unavailable store's directory was created: an unmounted disk must not be filled")
	}
}

// A host that left the cluster keeps all its versions, unless forget is
// told to treat it like the others.
func TestCLIForgetDepartedHost(t *testing.T) {
	_, cfg := cliCluster(t, []string{"worker1"}, "")
	cliRun(t, cfg, "init")
	zipPath := filepath.Join(t.TempDir(), "worker9_dot_pioreactor.zip")
	f, err := os.Create(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range map[string]string{"config.ini": "[a]\nb=1\n", "pioreactor_export_metadata.json": `{"metadata_version": 1, "name": "worker9", "app_version": "26.7.2"}`} {
		w, _ := zw.Create(name)
		_, _ = w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, when := range []string{"2026-01-01", "2026-01-02"} {
		if code, _, errs := cliRun(t, cfg, "import", "--host", "worker9", "--time", when, zipPath); code != 0 {
			t.Fatalf("import: %s", errs)
		}
	}
	code, out, errs := cliRun(t, cfg, "forget")
	if code != 0 || !strings.Contains(out, "host worker9  (no longer in the cluster") {
		t.Fatalf("forget: %d\n%s%s", code, out, errs)
	}
	if n := len(cliVersions(t, cfg, "--host", "worker9")); n != 2 {
		t.Errorf("departed host has %d versions after forget, want both kept", n)
	}
	if code, _, errs := cliRun(t, cfg, "forget", "--include-departed"); code != 0 {
		t.Fatal(errs)
	}
	if n := len(cliVersions(t, cfg, "--host", "worker9")); n != 1 {
		t.Errorf("with --include-departed, %d versions left, want 1 (keep_last = 1)", n)
	}
}

// forget refuses a store without retention rules instead of removing
// nothing silently or everything by mistake.
func TestCLIForgetWithoutRules(t *testing.T) {
	c, cfg := cliCluster(t, nil, "")
	_ = c
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noRules := strings.Replace(string(text), "keep_last = 1", "", 1)
	if err := os.WriteFile(cfg, []byte(noRules), 0o600); err != nil {
		t.Fatal(err)
	}
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	code, _, errs := cliRun(t, cfg, "forget")
	if code != exitFailure || !strings.Contains(errs, "has no retention rules") || !strings.Contains(errs, "keep_") {
		t.Errorf("forget without rules: exit %d: %s", code, errs)
	}
	if n := len(cliVersions(t, cfg)); n != 1 {
		t.Errorf("%d versions after a refused forget, want 1", n)
	}
}
