package dir_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/dbdump"
	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/archive/hooks"
	"github.com/piosnap/piosnap/store"
)

// snapshotTree records what a restore must bring back: per relative path,
// type, mode, owner, mtime, link target and content.
func snapshotTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "logs" || strings.HasPrefix(rel, "logs/") || strings.HasSuffix(rel, ".db") || strings.HasSuffix(rel, ".bolt") {
			return nil // the stand-in keeps writing these
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d ", fi.Mode(), st.Uid, st.Gid)
		if !fi.IsDir() {
			desc += fi.ModTime().UTC().Format(time.RFC3339Nano) + " "
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += "-> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += string(b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s is missing", what, k)
		} else if g != w {
			t.Errorf("%s: %s = %q, want %q", what, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s should not exist", what, k)
		}
	}
}

func (f *fixture) restore(o dir.RestoreOptions) (*dir.RestoreResult, string, error) {
	var out bytes.Buffer
	o.Repo, o.Source, o.Out = f.repo, f.src, &out
	res, err := dir.Restore(context.Background(), o)
	return res, out.String(), err
}

func (f *fixture) rows() string {
	return f.db.Exec("SELECT GROUP_CONCAT(note ORDER BY id SEPARATOR '|') FROM cells.activity WHERE note NOT LIKE 'write %'")
}

// TestRestoreInPlace: after changes to files, owners, modes, links and
// rows, a restore brings back the version's state; the replaced folder and
// a dump of the replaced database are kept; the stand-in runs again.
func TestRestoreInPlace(t *testing.T) {
	f := newFixture(t, true)
	f.src.Excludes = nil
	welcome := filepath.Join(f.root, "data/pydiods1/welcome.txt")
	if err := os.Lchown(welcome, 1234, 2345); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(f.root, "services/pydio.grpc.update/cells-4.4.0"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(f.root, "data/welcome-link"), 77, 88); err != nil {
		t.Fatal(err)
	}
	f.db.Exec("INSERT INTO cells.activity (note) VALUES ('kept')")
	v, _, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	if err := hooksRun(f.src.Stop); err != nil {
		t.Fatal(err)
	}
	want := snapshotTree(t, f.root)
	wantRows := f.rows()
	if err := hooksRun(f.src.Start); err != nil {
		t.Fatal(err)
	}

	// Damage everything.
	os.WriteFile(welcome, []byte("overwritten"), 0o666)
	os.Lchown(welcome, 0, 0)
	os.Remove(filepath.Join(f.root, "data/welcome-link"))
	os.Symlink("/etc/passwd", filepath.Join(f.root, "data/welcome-link"))
	os.Chmod(filepath.Join(f.root, "cells-vault-key"), 0o644)
	os.RemoveAll(filepath.Join(f.root, "data/cellsdata"))
	os.WriteFile(filepath.Join(f.root, "data/new.txt"), []byte("new"), 0o644)
	f.db.Exec("DELETE FROM cells.activity WHERE note = 'kept'")
	f.db.Exec("INSERT INTO cells.activity (note) VALUES ('after')")
	damagedRows := f.rows()

	// A dry run changes nothing.
	if _, out, err := f.restore(dir.RestoreOptions{Version: v, DryRun: true}); err != nil || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(welcome); string(b) != "overwritten" {
		t.Fatal("the dry run changed a file")
	}

	res, out, err := f.restore(dir.RestoreOptions{Version: v})
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !f.running() {
		t.Error("the stand-in is not running after the restore")
	}
	if err := hooksRun(f.src.Stop); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, "restored tree", snapshotTree(t, f.root), want)
	if got := f.rows(); got != wantRows {
		t.Errorf("rows = %q, want %q", got, wantRows)
	}
	if len(res.Kept) != 1 || res.SafetyDump == "" || res.OwnersNotRestored != 0 {
		t.Fatalf("result = %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Kept[0], "data/pydiods1/welcome.txt")); string(b) != "overwritten" {
		t.Errorf("the kept folder does not hold the replaced state")
	}
	safety, _ := os.ReadFile(res.SafetyDump)
	if !strings.Contains(string(safety), "'after'") || strings.Contains(string(safety), "'kept'") {
		t.Errorf("the safety dump does not hold the replaced rows (%s)", damagedRows)
	}
	if fi, _ := os.Stat(res.SafetyDump); fi.Mode().Perm() != 0o600 {
		t.Errorf("safety dump mode %v", fi.Mode().Perm())
	}
	if len(res.Checklist) != 0 {
		t.Errorf("an in-place restore has a checklist: %v", res.Checklist)
	}
}

func hooksRun(h interface{ Run(context.Context) error }) error { return h.Run(context.Background()) }

// TestRestoreRollsBack: the version's dump is broken, so loading it fails
// after the folders were swapped and the database dropped; the restore
// puts both back as they were and starts the application.
func TestRestoreRollsBack(t *testing.T) {
	f := newFixture(t, true)
	good := f.src.DB
	f.src.DB, _ = dbdump.New(dbdump.Options{Engine: dbdump.Command, Name: "cells", Dump: []string{"echo", "THIS IS NOT SQL;"}, Load: []string{"true"}})
	v, _, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	f.src.DB = good
	os.WriteFile(filepath.Join(f.root, "data/pydiods1/welcome.txt"), []byte("current"), 0o644)
	f.db.Exec("INSERT INTO cells.activity (note) VALUES ('current')")
	if err := hooksRun(f.src.Stop); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, f.root)
	beforeRows := f.rows()
	if err := hooksRun(f.src.Start); err != nil {
		t.Fatal(err)
	}

	_, out, err := f.restore(dir.RestoreOptions{Version: v})
	if err == nil || !strings.Contains(err.Error(), "the database was put back") || !strings.Contains(err.Error(), "the folders were put back") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !f.running() {
		t.Error("the stand-in is not running after the failed restore")
	}
	if err := hooksRun(f.src.Stop); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, "tree after rollback", snapshotTree(t, f.root), before)
	if got := f.rows(); got != beforeRows {
		t.Errorf("rows after rollback = %q, want %q", got, beforeRows)
	}
	leftovers, _ := filepath.Glob(f.root + ".piosnap-*")
	if len(leftovers) != 0 {
		t.Errorf("left behind: %v", leftovers)
	}
}

// TestRestoreTo restores files only to another folder and lists what must
// be edited; the original is untouched.
func TestRestoreTo(t *testing.T) {
	f := newFixture(t, false)
	v, _, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "var-cells")
	res, out, err := f.restore(dir.RestoreOptions{Version: v, To: map[string]string{f.root: target}, FilesOnly: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(target, "data/pydiods1/welcome.txt")); err != nil || string(b) != "welcome to cells\n" {
		t.Errorf("restored file: %q, %v", b, err)
	}
	if len(res.Kept) != 0 || len(res.Checklist) == 0 || !strings.Contains(res.Checklist[0], "CELLS_WORKING_DIR") && !strings.Contains(strings.Join(res.Checklist, "\n"), "urlInternal") {
		t.Errorf("result = %+v", res)
	}
	// A target that is a symbolic link is restored where it points.
	real := filepath.Join(t.TempDir(), "real-cells")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "old.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "cells-link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	res, out, err = f.restore(dir.RestoreOptions{Version: v, To: map[string]string{f.root: link}, FilesOnly: true})
	if err != nil {
		t.Fatalf("restore through a link: %v\n%s", err, out)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(real, "data/pydiods1/welcome.txt")); string(b) != "welcome to cells\n" {
		t.Errorf("through the link: welcome.txt = %q", b)
	}
	if len(res.Kept) != 1 || !strings.HasPrefix(res.Kept[0], real+".pre-restore-") {
		t.Errorf("kept = %v", res.Kept)
	}
	// A path that is a symbolic link is refused with the fix.
	f.src.Paths = []string{link}
	if _, _, err := f.take(); err == nil || !strings.Contains(err.Error(), "list "+real+" in paths") {
		t.Errorf("backup of a linked path: %v", err)
	}
	if _, _, err := f.restore(dir.RestoreOptions{Version: v, DBOnly: true}); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("--db-only without a dump: %v", err)
	}
	if _, _, err := f.restore(dir.RestoreOptions{Version: v, To: map[string]string{"/elsewhere": target}}); err == nil || !strings.Contains(err.Error(), "no path /elsewhere") {
		t.Errorf("--to an unknown path: %v", err)
	}
}

// TestRestoreRefusesUnsafeNames: entries under a symbolic link or with
// ".." are refused before anything is written.
func TestRestoreRefusesUnsafeNames(t *testing.T) {
	for _, entries := range [][]store.Entry{
		{{Name: "srv/app/", Mode: fs.ModeDir | 0o755}, {Name: "srv/app/link", Mode: fs.ModeSymlink | 0o777, Link: "/etc"}, {Name: "srv/app/link/passwd", Mode: 0o644}},
		{{Name: "srv/app/", Mode: fs.ModeDir | 0o755}, {Name: "srv/app/../../etc/passwd", Mode: 0o644}},
		{{Name: "srv/app/", Mode: fs.ModeDir | 0o755}, {Name: "srv/other/file", Mode: 0o644}},
	} {
		v := &store.Version{Host: "x", Paths: []string{"/srv/app"}, Entries: entries}
		_, err := dir.Restore(context.Background(), dir.RestoreOptions{Version: v, Source: &dir.Source{Name: "x"}, To: map[string]string{"/srv/app": t.TempDir() + "/x"}})
		if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("%v: err = %v", entries[len(entries)-1].Name, err)
		}
	}
}

// TestRestoreFailsBeforeChanging: failures before the swap leave the
// folder and the database as they were, remove the staging folder and
// start the application again.
func TestRestoreFailsBeforeChanging(t *testing.T) {
	f := newFixture(t, false)
	dbFile := filepath.Join(t.TempDir(), "db.sql")
	if err := os.WriteFile(dbFile, []byte("v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.src.DB, _ = dbdump.New(dbdump.Options{Engine: dbdump.Command, Name: "cells", Dump: []string{"cat", dbFile}, Load: []string{"sh", "-c", "cat > " + dbFile}})
	v, _, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	good := f.src.DB
	now := time.Date(2026, 5, 3, 9, 15, 2, 0, time.UTC)
	stamp := "20260503T091502Z"
	welcome := filepath.Join(f.root, "data/pydiods1/welcome.txt")
	if err := os.WriteFile(welcome, []byte("current"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken := f.root + ".piosnap-restore-" + stamp
	if err := os.WriteFile(taken, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q and nothing was changed", name, err, want)
		}
		if b, _ := os.ReadFile(welcome); string(b) != "current" {
			t.Errorf("%s: the folder was changed", name)
		}
		if b, _ := os.ReadFile(dbFile); string(b) != "v1\n" {
			t.Errorf("%s: the database was changed", name)
		}
		left, _ := filepath.Glob(f.root + ".p*-*") // .piosnap-restore-*, .pre-restore-*
		if name == "staging" {
			left = slices.DeleteFunc(left, func(p string) bool { return p == taken })
		}
		if len(left) != 0 {
			t.Errorf("%s: left behind: %v", name, left)
		}
		if !f.running() {
			t.Errorf("%s: the application is not running", name)
		}
	}

	// The staging folder cannot be made (here: its name is taken; a full
	// disk fails the same way, while the application still runs). What
	// holds the name is not piosnap's and is left alone.
	_, _, err = f.restore(dir.RestoreOptions{Version: v, Now: func() time.Time { return now }})
	if _, serr := os.Stat(taken); serr != nil {
		t.Errorf("the file in the staging folder's way was removed: %v", serr)
	}
	os.Remove(taken)
	check("staging", err, "staging")

	// The stop hook fails.
	stop := f.src.Stop
	f.src.Stop = hooks.Hook{Name: "stop", Argv: []string{"sh", "-c", "echo unit not loaded >&2; exit 5"}}
	_, _, err = f.restore(dir.RestoreOptions{Version: v})
	f.src.Stop = stop
	check("stop hook", err, "unit not loaded")

	// The safety dump of the current database fails.
	f.src.DB, _ = dbdump.New(dbdump.Options{Engine: dbdump.Command, Name: "cells", Dump: []string{"sh", "-c", "echo gone >&2; exit 1"}, Load: []string{"sh", "-c", "cat > " + dbFile}})
	_, _, err = f.restore(dir.RestoreOptions{Version: v})
	f.src.DB = good
	check("safety dump", err, "safety dump")
}
