package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// preRestoreRig is a directory source with copies earlier restores left
// beside its folder: one from 2020 and one from an hour ago.
type preRestoreRig struct {
	cfg, root, old, recent string
}

func newPreRestoreRig(t *testing.T, policy string) *preRestoreRig {
	t.Helper()
	tmp := t.TempDir()
	r := &preRestoreRig{root: filepath.Join(tmp, "srv", "cells")}
	layoutDir(t, r.root)
	r.old = r.root + ".pre-restore-20200101T000000Z"
	r.recent = r.root + ".pre-restore-" + time.Now().Add(-time.Hour).UTC().Format("20060102T150405Z")
	for _, p := range []string{r.old, r.recent} {
		if err := os.MkdirAll(filepath.Join(p, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.cfg = filepath.Join(tmp, "piosnap.toml")
	text := fmt.Sprintf("zone = \"UTC\"\nlock_wait = \"2s\"\n[[store]]\nname = \"local\"\npath = %q\n\n[[source]]\nkind = \"dir\"\nname = \"cells\"\npaths = [%q]\n%s",
		filepath.Join(tmp, "repo"), r.root, policy)
	if err := os.WriteFile(r.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cliRun(t, r.cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	return r
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// A backup deletes the copies of the state before a restore that
// [source.pre_restore] no longer keeps (by default the newest and those
// younger than 7 days stay), and logs each; a restore keeps the one it
// makes and says how long.
func TestBackupPrunesPreRestoreCopies(t *testing.T) {
	r := newPreRestoreRig(t, "")
	staging := r.root + ".piosnap-restore-20200101T000000Z" // a restore cut short by a power cut
	if err := os.Mkdir(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, r.cfg, "backup")
	if code != exitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errs)
	}
	if !exists(staging) || !strings.Contains(errs, "an earlier restore that did not finish left a folder nothing uses") || !strings.Contains(errs, "sudo rm -rf "+staging) {
		t.Errorf("the backup does not report the leftover staging folder (exists: %v):\n%s", exists(staging), errs)
	}
	if code, out, errs := cliRun(t, r.cfg, "restore", "--host", "cells", "--dry-run"); code != exitOK || !strings.Contains(out, "WARNING: "+staging+" was left by an earlier restore that did not finish") || !exists(staging) {
		t.Errorf("restore --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	if err := os.Remove(staging); err != nil {
		t.Fatal(err)
	}
	if exists(r.old) || !exists(r.recent) {
		t.Errorf("after the backup: the 2020 copy exists %v (want false), the recent one %v (want true)", exists(r.old), exists(r.recent))
	}
	if !strings.Contains(errs, "deleted the state before an earlier restore") || !strings.Contains(errs, r.old) || !strings.Contains(errs, "keep_within = 7d") {
		t.Errorf("the backup does not log the deletion:\n%s", errs)
	}
	code, out, errs = cliRun(t, r.cfg, "restore", "--host", "cells", "--yes")
	if code != exitOK || !strings.Contains(out, "later restores and backups delete them as pre_restore.keep_last = 1, keep_within = 7d says") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	if !exists(r.recent) {
		t.Error("the restore deleted a copy younger than keep_within")
	}
	// keep_last = 0 and keep_within = "0d": the next backup deletes every
	// copy, the restore's too.
	text, err := os.ReadFile(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.cfg, append(text, "[source.pre_restore]\nkeep_last = 0\nkeep_within = \"0d\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cliRun(t, r.cfg, "backup"); code != exitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errs)
	}
	left, _ := filepath.Glob(r.root + ".pre-restore-*")
	if len(left) != 0 || !exists(r.root) {
		t.Errorf("with keep_last = 0 and keep_within = 0d, left %v (and the folder exists: %v)", left, exists(r.root))
	}
}

// A copy that cannot be deleted (the folder's file system is read-only to
// piosnap, as under the systemd unit's ProtectSystem=strict) costs the
// backup nothing: it is stored, and the log says what to delete by hand.
func TestBackupPreRestoreCopyNotDeletable(t *testing.T) {
	r := newPreRestoreRig(t, "")
	mountFS(t, filepath.Dir(r.root), "")
	code, out, errs := cliRun(t, r.cfg, "backup")
	if code != exitOK || !strings.Contains(out, "cells") {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errs)
	}
	if !exists(r.old) {
		t.Fatal("the copy on the read-only file system is gone")
	}
	for _, want := range []string{"past [source.pre_restore] but was not deleted", "read-only file system", "sudo rm -rf " + r.old} {
		if !strings.Contains(errs, want) {
			t.Errorf("the log lacks %q:\n%s", want, errs)
		}
	}
	if vs := cliVersions(t, r.cfg); len(vs) != 1 {
		t.Errorf("%d versions stored, want 1", len(vs))
	}
}
