package daemon

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// Consecutive days read every part once; the day is the configured zone's.
func TestVerifyPart(t *testing.T) {
	utc := time.UTC
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, utc)
	for _, days := range []int{1, 7, 30} {
		seen := map[int]bool{}
		for i := range days {
			sub := verifyPart(start.AddDate(0, 0, i), utc, days)
			if sub.Of != days || sub.Part < 1 || sub.Part > days || seen[sub.Part] {
				t.Errorf("verify_days %d, day %d: part %v (seen: %v)", days, i, sub, seen)
			}
			seen[sub.Part] = true
		}
	}
	// 23:30 UTC on the 30th is already the 1st in Berlin.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	late := time.Date(2026, 11, 30, 23, 30, 0, 0, utc)
	if a, b := verifyPart(late, utc, 7), verifyPart(late, berlin, 7); a == b {
		t.Errorf("part %v in both UTC and Berlin at %v; the day differs", a, late)
	}
	if !sameDay(late, time.Date(2026, 12, 1, 0, 10, 0, 0, berlin), berlin) || sameDay(late, late.Add(-time.Hour), berlin) {
		t.Error("sameDay does not follow the zone")
	}
}

func TestVerifyFailures(t *testing.T) {
	recs := []VerifyRecord{
		{Store: "local", Part: "3/30"},
		{Store: "offsite", Part: "3/30", Error: "connection refused"},
		{Store: "usb", Part: "1/7", Problems: []store.Problem{{Object: "packs/ab/abcd", Reason: "pack content does not match its name", Versions: []string{"1234abcd (worker1 2026-11-29 03:00)"}}}},
	}
	got := verifyFailures(recs)
	for _, want := range []string{"verifying store offsite (part 3/30) failed: connection refused", "store usb is damaged: packs/ab/abcd", "1234abcd (worker1", "piosnap repair --store usb"} {
		if !strings.Contains(got, want) {
			t.Errorf("verifyFailures lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "local") {
		t.Errorf("a sound store is reported:\n%s", got)
	}
	if verifyFailures(recs[:1]) != "" {
		t.Error("sound stores give a failure text")
	}
}

// A store taken out of the configuration, or whose verify_days became 0,
// loses its record, so its old damage no longer shows in piosnap status.
func TestConfiguredOnly(t *testing.T) {
	cfg, err := config.Parse("[[store]]\nname = \"local\"\npath = \"/r\"\n[[store]]\nname = \"usb\"\npath = \"/u\"\nverify_days = 0\n")
	if err != nil {
		t.Fatal(err)
	}
	recs := []VerifyRecord{{Store: "local", Part: "1/30"}, {Store: "usb", Part: "1/30"}, {Store: "gone", Part: "2/7", Problems: []store.Problem{{Object: "packs/ab/abcd"}}}}
	got := configuredOnly(recs, cfg)
	if len(got) != 1 || got[0].Store != "local" {
		t.Errorf("configuredOnly = %+v; want local's record only", got)
	}
}

// Damage found in a pack stays reported until a reading of its part finds
// it sound; problems of objects every reading examines are those of the
// latest reading only; a failed reading keeps everything.
func TestStillDamaged(t *testing.T) {
	// A pack ID in part 1 of 2 and one in part 2: the first 4 bytes, big
	// endian, are even and odd.
	even := "packs/00/" + strings.Repeat("0", 63) + "2"
	odd := "packs/00/00000001" + strings.Repeat("0", 56)
	first, second := store.Subset{Part: 1, Of: 2}, store.Subset{Part: 2, Of: 2}
	if !first.Covers(even) || first.Covers(odd) || !second.Covers(odd) || !first.Covers("versions/ab.json") {
		t.Fatal("test pack names are not in the parts they are meant for")
	}
	earlier := []store.Problem{{Object: even, Reason: "pack content does not match its name"}, {Object: "versions/ab.json", Reason: "its page tree cannot be read"}}
	names := func(ps []store.Problem) (s []string) {
		for _, p := range ps {
			s = append(s, p.Object)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		rec  VerifyRecord
		sub  store.Subset
		want []string
	}{
		{"other part read, sound", VerifyRecord{}, second, []string{even}},
		{"its part read, sound", VerifyRecord{}, first, nil},
		{"its part read, damaged again", VerifyRecord{Problems: earlier[:1]}, first, []string{even}},
		{"other part read, new damage", VerifyRecord{Problems: []store.Problem{{Object: odd}}}, second, []string{odd, even}},
		{"reading failed", VerifyRecord{Error: "connection refused"}, first, []string{even, "versions/ab.json"}},
	} {
		if got := names(stillDamaged(tc.rec, earlier, tc.sub)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// DropGone drops the damage recorded in packs the store no longer has at
// all (a repair removed them), and keeps the rest: a pack still stored,
// a pack missing while the index still names it, and other objects.
func TestDropGone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	for _, host := range []string{"worker1", "worker2"} {
		p := w.Begin(host)
		if _, err := p.Add(ctx, "config.ini", 0o644, time.Now(), bytes.NewReader([]byte("["+host+"]\n"))); err != nil {
			t.Fatal(err)
		}
		if res := p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup}); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
	_ = filepath.WalkDir(filepath.Join(dir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			packs = append(packs, filepath.ToSlash(rel))
		}
		return err
	})
	if len(packs) != 2 {
		t.Fatalf("packs %v, want 2", packs)
	}
	// packs[1] is missing but still indexed: damage, not gone.
	if err := os.Remove(filepath.Join(dir, packs[1])); err != nil {
		t.Fatal(err)
	}
	removed := "packs/ab/ab" + strings.Repeat("0", 62) // neither stored nor indexed
	rec := VerifyRecord{Store: "local", Problems: []store.Problem{
		{Object: packs[0]}, {Object: packs[1]}, {Object: removed}, {Object: "versions/" + strings.Repeat("1", 64) + ".json"},
	}}
	if err := rec.DropGone(ctx, repo); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rec.Problems {
		got = append(got, p.Object)
	}
	if want := []string{packs[0], packs[1], "versions/" + strings.Repeat("1", 64) + ".json"}; !slices.Equal(got, want) {
		t.Errorf("after DropGone: %v, want %v", got, want)
	}
}

// DamagedIn names the stores whose readings recorded a version damaged,
// but not one whose damaged object a repair removed since, and leaves the
// records alone.
func TestDamagedIn(t *testing.T) {
	ctx := context.Background()
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("1a", 32)
	removed := "packs/ab/ab" + strings.Repeat("0", 62) // not in the store: a repair removed it
	index := "index/" + strings.Repeat("2", 64)        // damaged, still there
	named := []string{id[:8] + " worker1 2026-05-10 03:00"}
	recs := []VerifyRecord{
		{Store: "repaired", Problems: []store.Problem{{Object: removed, Versions: named}}},
		{Store: "unreadable", Problems: []store.Problem{{Object: removed, Versions: named}}},
		{Store: "other-version", Problems: []store.Problem{{Object: index, Versions: []string{strings.Repeat("3", 8) + " worker1"}}}},
		{Store: "sound"},
		{Store: "damaged", Problems: []store.Problem{{Object: index, Versions: named}}},
	}
	asked := map[string]bool{}
	got := DamagedIn(ctx, recs, id, func(name string) *store.Repository {
		asked[name] = true
		if name == "unreadable" {
			return nil
		}
		return repo
	})
	if want := []string{"unreadable", "damaged"}; !slices.Equal(got, want) {
		t.Errorf("DamagedIn = %v, want %v", got, want)
	}
	if asked["other-version"] || asked["sound"] {
		t.Errorf("DamagedIn read stores whose records do not name the version: %v", asked)
	}
	if len(recs[0].Problems) != 1 {
		t.Errorf("DamagedIn changed the records: %+v", recs[0])
	}
}
