package dir_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/store/retention"
)

// keptTree makes two targets (the second a symbolic link to a folder
// elsewhere) and what restores at the given times would have left beside
// them: the replaced folders and, beside the first, the dump of database
// "cells". It also makes names a restore never writes. It returns the
// targets and every path made beside them.
func keptTree(t *testing.T, times ...time.Time) (targets []string, made []string) {
	t.Helper()
	root := t.TempDir()
	cells, data := filepath.Join(root, "var", "cells"), filepath.Join(root, "srv", "real-data")
	link := filepath.Join(root, "srv", "data")
	for _, d := range []string{cells, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	mkfile := func(p string) {
		if err := os.WriteFile(p, []byte("-- dump\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	for _, tm := range times {
		stamp := tm.UTC().Format("20060102T150405Z")
		mkdir(cells + ".pre-restore-" + stamp)
		mkfile(cells + ".pre-restore-" + stamp + ".cells.sql")
		mkdir(data + ".pre-restore-" + stamp)
	}
	// Names no restore writes: never touched.
	mkdir(cells + ".pre-restore-notes")
	mkdir(cells + ".pre-restore-20200101T000000Z-mine")
	mkfile(cells + ".pre-restore-20200101T000000Z")                          // a file, not a folder
	mkfile(cells + ".pre-restore-20200101T000000Z.other.sql")                // another database
	mkfile(data + ".pre-restore-20200101T000000Z.cells.sql")                 // beside the second target
	mkdir(filepath.Join(root, "var", "cellsx.pre-restore-20200101T000000Z")) // another folder's
	return []string{cells, link}, made
}

func TestPruneKept(t *testing.T) {
	now := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	times := []time.Time{now.Add(-1 * time.Hour), now.Add(-3 * day), now.Add(-10 * day), now.Add(-40 * day)}
	stamp := func(i int) string { return times[i].Format("20060102T150405Z") }
	week, _ := retention.ParseDuration("7d")
	for _, tc := range []struct {
		name    string
		policy  dir.KeepPolicy
		exempt  string
		deleted []int // indexes into times
	}{
		{"defaults: newest and a week", dir.KeepPolicy{Last: 1, Within: week}, stamp(0), []int{2, 3}},
		{"newest three", dir.KeepPolicy{Last: 3}, stamp(0), []int{3}},
		{"a week only", dir.KeepPolicy{Within: week}, "", []int{2, 3}},
		{"nothing but the one just made", dir.KeepPolicy{}, stamp(0), []int{1, 2, 3}},
		{"nothing at all (a backup)", dir.KeepPolicy{}, "", []int{0, 1, 2, 3}},
		{"the one just made is kept even when old", dir.KeepPolicy{}, stamp(3), []int{0, 1, 2}},
		{"everything young enough", dir.KeepPolicy{Last: 1, Within: retention.Duration{Years: 1}}, stamp(0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, made := keptTree(t, times...)
			found, err := dir.FindKept(targets, "cells")
			if err != nil || len(found) != len(times) {
				t.Fatalf("FindKept: %d copies, %v; want %d", len(found), err, len(times))
			}
			for i, k := range found {
				if !k.Time.Equal(times[i]) || len(k.Paths) != 3 {
					t.Errorf("copy %d: %s %v; want %s with 3 paths, newest first", i, k.Time, k.Paths, times[i])
				}
			}
			deleted, err := dir.PruneKept(targets, "cells", tc.policy, now, tc.exempt)
			if err != nil {
				t.Fatal(err)
			}
			var gone []string
			for _, i := range tc.deleted {
				for _, k := range found {
					if k.Time.Equal(times[i]) {
						gone = append(gone, k.Paths...)
					}
				}
			}
			var reported []string
			for _, k := range deleted {
				reported = append(reported, k.Paths...)
			}
			sort.Strings(gone)
			sort.Strings(reported)
			if !slices.Equal(gone, reported) {
				t.Errorf("reported deleted:\n%s\nwant:\n%s", strings.Join(reported, "\n"), strings.Join(gone, "\n"))
			}
			for _, p := range made {
				_, err := os.Lstat(p)
				if want := !slices.Contains(gone, p); want != (err == nil) {
					t.Errorf("%s: exists %v, want %v", p, err == nil, want)
				}
			}
		})
	}
}

// Without a database the dumps are not a restore's, and a target whose
// parent cannot be read is an error that names it.
func TestFindKeptEdges(t *testing.T) {
	targets, _ := keptTree(t, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	found, err := dir.FindKept(targets, "")
	if err != nil || len(found) != 1 || len(found[0].Paths) != 2 {
		t.Fatalf("without a database: %+v, %v; want one copy of the two folders", found, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.FindKept([]string{filepath.Join(file, "cells")}, "cells"); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("parent is a file: %v; want an error naming it", err)
	}
	if found, err := dir.FindKept([]string{filepath.Join(t.TempDir(), "gone", "cells")}, "cells"); err != nil || len(found) != 0 {
		t.Errorf("missing parent: %v, %v; want nothing found and no error", found, err)
	}
}

// A restore deletes, once it has succeeded, the copies earlier restores
// kept that the policy no longer keeps (folders and database dumps), and
// says so; a dry run deletes nothing, and a source without a policy keeps
// everything.
func TestRestorePrunesKept(t *testing.T) {
	f := newFixture(t, true)
	v, _, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	week, _ := retention.ParseDuration("7d")

	// No policy: two restores keep both copies.
	first, out, err := f.restore(dir.RestoreOptions{Version: v, Now: at(0)})
	if err != nil {
		t.Fatalf("first restore: %v\n%s", err, out)
	}
	f.src.Kept = &dir.KeepPolicy{Last: 1, Within: week}
	// A day later: the first copy is younger than a week and stays.
	second, out, err := f.restore(dir.RestoreOptions{Version: v, Now: at(24 * time.Hour)})
	if err != nil || len(second.Pruned) != 0 || strings.Contains(out, "deleted") {
		t.Fatalf("second restore: %v, pruned %v\n%s", err, second.Pruned, out)
	}
	firstPaths := append(slices.Clone(first.Kept), first.SafetyDump)
	// A month later, a dry run deletes nothing.
	if _, out, err := f.restore(dir.RestoreOptions{Version: v, DryRun: true, Now: at(30 * 24 * time.Hour)}); err != nil || strings.Contains(out, "deleted") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, p := range firstPaths {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("after the dry run: %v", err)
		}
	}
	// Ten days after the second: both earlier copies are past the week and
	// not the newest; the copy just made stays.
	third, out, err := f.restore(dir.RestoreOptions{Version: v, Now: at(11 * 24 * time.Hour)})
	if err != nil || third.PruneErr != nil {
		t.Fatalf("third restore: %v, %v\n%s", err, third.PruneErr, out)
	}
	var pruned []string
	for _, k := range third.Pruned {
		pruned = append(pruned, k.Paths...)
	}
	want := append(firstPaths, append(slices.Clone(second.Kept), second.SafetyDump)...)
	sort.Strings(pruned)
	sort.Strings(want)
	if !slices.Equal(pruned, want) {
		t.Errorf("pruned %v\nwant %v", pruned, want)
	}
	for _, p := range want {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists: %v", p, err)
		}
	}
	for _, p := range append(slices.Clone(third.Kept), third.SafetyDump) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("the copy the restore just made: %v", err)
		}
	}
	if !strings.Contains(out, "deleted the state before the restore of 2026-05-01T09:00:00Z, which pre_restore.keep_last = 1, keep_within = 7d no longer keeps: ") {
		t.Errorf("the restore does not say what it deleted:\n%s", out)
	}
}

// What an interrupted restore left is found (through a linked target too)
// and never confused with the copies a restore keeps or other names.
func TestLeftovers(t *testing.T) {
	targets, _ := keptTree(t, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	real, err := filepath.EvalSymlinks(targets[1])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{targets[0] + ".piosnap-restore-20260502T010203Z", real + ".piosnap-failed-20260502T010203Z"}
	for _, p := range append(slices.Clone(want), targets[0]+".piosnap-restore-later", targets[0]+".piosnap-restore-20260502T010203Z-x") {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(targets[0]+".piosnap-failed-20260503T000000Z", nil, 0o600); err != nil { // a file: not a restore's
		t.Fatal(err)
	}
	got, err := dir.Leftovers(targets)
	sort.Strings(got)
	sort.Strings(want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Leftovers = %v, %v; want %v", got, err, want)
	}
	if found, err := dir.FindKept(targets, "cells"); err != nil || len(found) != 1 {
		t.Errorf("FindKept counts leftovers: %+v, %v", found, err)
	}
}
