package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWebDirSource runs the daemon with the cluster and a directory
// source: the source's page offers the tar `piosnap export` writes, not a
// ZIP, and no restore; a restore posted anyway is refused with the command
// to run on the server, and changes nothing.
func TestWebDirSource(t *testing.T) {
	w := newWebRig(t, "1h")
	root := filepath.Join(w.dir, "cells")
	layoutDir(t, root)
	text, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.cfgPath, append(text, dirConfig(root)...), 0o600); err != nil {
		t.Fatal(err)
	}
	w.mustRun("backup")
	var cells *listedVersion
	for _, v := range w.versions() {
		if v.Host == "cells" {
			cells = &v
		}
	}
	if cells == nil {
		t.Fatal("no version of cells")
	}
	tarPath := filepath.Join(w.dir, "cells.tar")
	w.mustRun("export", "--host", "cells", "--version", cells.ID, "-o", tarPath)
	want, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	hooks, _ := os.ReadFile(root + ".hooks")
	w.start(t)
	c := newWebClient(t, w.base)
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := c.c.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	resp, page := get("/units/cells")
	tarLink := "/units/cells/versions/" + cells.Store + "/" + cells.ID + "/tar"
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`href="`+tarLink+`"`)) {
		t.Fatalf("cells' page: %s, no link to %s:\n%s", resp.Status, tarLink, page)
	}
	for _, bad := range []string{"/zip", "/units/cells/restore", "Download ZIP", "Restore this version"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("cells' page offers %q", bad)
		}
	}
	if !bytes.Contains(page, []byte("sudo piosnap restore --host cells")) {
		t.Errorf("cells' page does not say how to restore it:\n%s", page)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on cells' page")
	}
	token := string(m[1])

	resp, got := get(tarLink)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-tar" || !bytes.Equal(got, want) {
		t.Errorf("GET %s: %s %s, %d bytes; `piosnap export` wrote %d", tarLink, resp.Status, resp.Header.Get("Content-Type"), len(got), len(want))
	}
	zipLink := strings.TrimSuffix(tarLink, "/tar") + "/zip"
	if resp, page := get(zipLink); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") == "application/zip" {
		t.Errorf("GET %s: %s %s\n%s", zipLink, resp.Status, resp.Header.Get("Content-Type"), page)
	}

	if resp, page := get("/units/cells/restore"); resp.StatusCode != http.StatusBadRequest || !bytes.Contains(page, []byte("sudo piosnap restore --host cells")) {
		t.Errorf("restore page of cells: %s\n%s", resp.Status, page)
	}
	for _, path := range []string{"/units/cells/restore/check", "/units/cells/restore"} {
		resp, err := c.c.PostForm(c.base+path, url.Values{"csrf": {token}, "store": {cells.Store}, "version": {cells.ID}, "confirm": {"cells"}})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(page, []byte("sudo piosnap restore --host cells --version ID --dry-run")) || !bytes.Contains(page, []byte("Nothing was changed")) {
			t.Errorf("POST %s: %s\n%s", path, resp.Status, page)
		}
	}
	var jobs []map[string]any
	c.getJSON("/api/jobs", &jobs)
	if len(jobs) != 0 {
		t.Errorf("jobs started: %v", jobs)
	}
	if now, _ := os.ReadFile(root + ".hooks"); !bytes.Equal(now, hooks) {
		t.Errorf("the source's hooks ran: %q, before the requests %q", now, hooks)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "data/pydiods1/a.txt")); string(b) != "alpha" {
		t.Errorf("the source's file: %q", b)
	}

	// A unit of the cluster keeps its ZIP and its restore.
	if _, page := get("/units/worker1"); !bytes.Contains(page, []byte("/zip")) || !bytes.Contains(page, []byte(`href="/units/worker1/restore"`)) {
		t.Errorf("worker1's page lost its ZIP or restore:\n%s", page)
	}
}

// TestRestoreDirVersionNeedsItsSource: a directory source's version, once
// the source is gone from the configuration, is refused by the Pioreactor
// restore instead of being sent to a unit.
func TestRestoreDirVersionNeedsItsSource(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "cells")
	layoutDir(t, root)
	cfg := filepath.Join(tmp, "piosnap.toml")
	base := fmt.Sprintf("zone = \"UTC\"\nlock_wait = \"2s\"\n[[store]]\nname = \"local\"\npath = %q\n", filepath.Join(tmp, "repo"))
	if err := os.WriteFile(cfg, []byte(base+dirConfig(root)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init"}, {"backup"}} {
		if code, out, errs := cliRun(t, cfg, args...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	if err := os.WriteFile(cfg, []byte(base+"[pioreactor]\nleader = \"127.0.0.1:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "restore", "--host", "cells", "--yes")
	if code == 0 || !strings.Contains(errs, "directory source's version") || !strings.Contains(errs, "no [[source]] named cells") {
		t.Errorf("restore of a directory version without its source: exit %d\n%s\n%s", code, out, errs)
	}
}
