package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// damageLargestPack overwrites 64 bytes in the middle of the largest pack
// under repo, so that one frame is broken and the others (and the header
// at the end) stay sound. It returns the pack's name.
func damageLargestPack(t *testing.T, repo string) string {
	t.Helper()
	var victim string
	var size int64
	err := filepath.WalkDir(filepath.Join(repo, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.Size() > size {
			victim, size = p, fi.Size()
		}
		return err
	})
	if err != nil || victim == "" {
		t.Fatalf("no pack under %s: %v", repo, err)
	}
	f, err := os.OpenFile(victim, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 64), size/2); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(repo, victim)
	return filepath.ToSlash(rel)
}

// objects returns the objects under repo (locks aside) and their contents'
// hashes.
func objects(t *testing.T, repo string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		if strings.HasPrefix(rel, "locks") {
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type repairJSON []struct {
	Store  string             `json:"store"`
	From   string             `json:"from"`
	Report store.RepairReport `json:"report"`
	Error  string             `json:"error"`
}

func TestCLIRepair(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	repo := filepath.Join(filepath.Dir(cfg), "repo")
	pack := damageLargestPack(t, repo)

	code, out, errs := cliRun(t, cfg, "check", "--read-data")
	if code != exitDamaged || !strings.Contains(out, "DAMAGED "+pack) || !strings.Contains(errs, "piosnap repair --store local") {
		t.Errorf("check: exit %d, want %d naming %s and the fix\n%s%s", code, exitDamaged, pack, out, errs)
	}

	// A dry run reports and changes nothing.
	before := objects(t, repo)
	code, out, errs = cliRun(t, cfg, "repair", "--dry-run")
	if code != exitDamaged || !strings.Contains(out, "DAMAGED "+pack) || !strings.Contains(out, "dry run, nothing changed") || !strings.Contains(out, "INCOMPLETE version") {
		t.Errorf("repair --dry-run: exit %d, want %d\n%s%s", code, exitDamaged, out, errs)
	}
	if after := objects(t, repo); !maps.Equal(before, after) {
		t.Errorf("repair --dry-run changed the repository: %d objects before, %d after", len(before), len(after))
	}

	code, out, errs = cliRun(t, cfg, "repair", "--store", "local", "--pack", pack, "--json")
	var res repairJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("repair --json: %v\n%s", err, out)
	}
	if code != exitDamaged || !strings.Contains(errs, "next backup") || !strings.Contains(errs, "piosnap forget --version ID --store STORE") || len(res) != 1 {
		t.Fatalf("repair: exit %d, want %d saying the next backup completes the versions\n%s%s", code, exitDamaged, out, errs)
	}
	rep := res[0].Report
	if rep.PacksRead != 1 || len(rep.Damaged) != 1 || rep.Damaged[0].Pack != pack || rep.BlobsSalvaged == 0 || rep.BlobsLost == 0 || len(rep.Incomplete) == 0 || rep.PacksDeleted != 1 {
		t.Errorf("repair report %+v: want %s removed, blobs salvaged and lost, versions incomplete", rep, pack)
	}
	if _, err := os.Stat(filepath.Join(repo, pack)); err == nil {
		t.Errorf("damaged pack %s still stored", pack)
	}
	// The next backup stores the lost blobs again: nothing is damaged.
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := cliRun(t, cfg, "check", "--read-data"); code != 0 || !strings.Contains(out, "no damage found") {
		t.Errorf("check after repair and backup: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cliRun(t, cfg, "repair"); code != 0 || !strings.Contains(out, "no damage found, nothing to repair") {
		t.Errorf("repair of a sound store: exit %d\n%s%s", code, out, errs)
	}
}

func TestCLIRepairRefuses(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	cliRun(t, cfg, "init")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--store", "nope"}, exitUsage, `"nope"`},
		{[]string{"--from", "nope"}, exitUsage, `"nope"`},
		{[]string{"--store", "local", "--from", "local"}, exitUsage, "both name store"},
		{[]string{"--pack", "packs/ab/" + strings.Repeat("ab", 32)}, exitUsage, "give --store too"},
		{[]string{"--store", "local", "--pack", "packs/ab/" + strings.Repeat("ab", 32)}, exitFailure, "neither stored nor named by the index"},
	} {
		code, out, errs := cliRun(t, cfg, append([]string{"repair"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("repair %v: exit %d, want %d saying %q\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
	// A repository another piosnap holds is left alone.
	ctx := context.Background()
	b, err := local.Open(filepath.Join(filepath.Dir(cfg), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	code, out, errs := cliRun(t, writeFast(t, cfg), "repair")
	if code != exitLocked || !strings.Contains(errs, "locked") {
		t.Errorf("repair of a locked store: exit %d, want %d\n%s%s", code, exitLocked, out, errs)
	}
	// A dry run takes no lock.
	if code, out, errs := cliRun(t, cfg, "repair", "--dry-run"); code != 0 {
		t.Errorf("repair --dry-run of a locked store: exit %d\n%s%s", code, out, errs)
	}
}

// writeFast returns a copy of the config at cfg with lock_wait = "1ms".
func writeFast(t *testing.T, cfg string) string {
	t.Helper()
	fast := strings.Replace(cfg, ".toml", "-fast.toml", 1)
	writeFastConfig(t, cfg, fast)
	return fast
}

// An off-site copy heals the local store: repair --from fetches the blobs
// that cannot be salvaged, and every version is complete at once. A store
// that lacks them heals nothing.
func TestS3RepairFromOffsite(t *testing.T) {
	h := newS3Harness(t, 1<<20, "worker1")
	cfg := h.config("repair", h.localStore("local"), h.s3Store("offsite", "repair", ""), h.localStore("empty"))
	h.mustMain(cfg, "init", "--create-bucket")
	h.mustMain(cfg, "backup", "--store", "local", "--store", "offsite")
	pack := damageLargestPack(t, h.localPath("local"))

	code, out, errs := h.main(context.Background(), cfg, "repair", "--store", "local", "--from", "empty", "--dry-run")
	if code != exitDamaged || !strings.Contains(out, "0 would be fetched from store empty") {
		t.Errorf("repair --from a store lacking the blobs: exit %d, want %d\n%s%s", code, exitDamaged, out, errs)
	}
	out = h.mustMain(cfg, "repair", "--store", "local", "--from", "offsite", "--json")
	var res repairJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("repair --json: %v\n%s", err, out)
	}
	if rep := res[0].Report; len(res) != 1 || len(rep.Damaged) != 1 || rep.Damaged[0].Pack != pack || rep.BlobsFetched == 0 || rep.BlobsLost != 0 || len(rep.Incomplete) != 0 {
		t.Errorf("repair --from offsite: %+v; want the lost blobs fetched", res)
	}
	if out := h.mustMain(cfg, "check", "--read-data", "--store", "local"); !strings.Contains(out, "no damage found") {
		t.Errorf("check after repair --from: %s", out)
	}
	for _, unit := range h.cluster.Units() {
		if !bytes.Equal(h.export(cfg, unit, "--store", "local"), h.export(cfg, unit, "--store", "offsite")) {
			t.Errorf("%s's version from the repaired store differs from the off-site copy", unit)
		}
	}

	// The other way round: a pack changed in the bucket is repaired from
	// the local store.
	ctx := context.Background()
	b := h.bucket("repair", "")
	var victim string
	var size int64
	err := b.List(ctx, "packs/", func(name string, n int64) error {
		if n > size {
			victim, size = name, n
		}
		return nil
	})
	if err != nil || victim == "" {
		t.Fatalf("no pack in the bucket: %v", err)
	}
	rc, err := b.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)/2:], bytes.Repeat([]byte{0xA5}, 64))
	if err := b.Put(ctx, victim, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	code, out, errs = h.main(ctx, cfg, "repair", "--from", "local")
	if code != exitOK || !strings.Contains(out, "DAMAGED "+victim) || !strings.Contains(out, "store offsite: repaired, every version is complete") || strings.Contains(out, "store local:") {
		t.Errorf("repair --from local: exit %d, want the off-site store repaired and the local one left alone\n%s%s", code, out, errs)
	}
	if _, err := b.Stat(ctx, victim); err == nil {
		t.Errorf("damaged pack %s still in the bucket", victim)
	}
	if out := h.mustMain(cfg, "check", "--read-data"); strings.Count(out, "no damage found") != 3 {
		t.Errorf("check after repairing the off-site store:\n%s", out)
	}
}

// The daemon records damage its reading finds; after a repair removed the
// pack, its next run (no reading due: today's part is read) drops the
// record, so status, metrics and pings stop reporting it.
func TestDaemonForgetsRepairedDamage(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), "[store.retention]", "verify_days = 1\n[store.retention]", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	repo := filepath.Join(filepath.Dir(cfg), "repo")
	pack := damageLargestPack(t, repo)
	loaded, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(loaded.StateDir, 0o755); err != nil { // piosnap run makes it
		t.Fatal(err)
	}
	a := &app{env: Env{Getenv: func(string) string { return "" }}, configPath: cfg, cfg: loaded, log: newLogger(&strings.Builder{}, func(string) string { return "" }, "text", "error")}
	d, err := newDaemon(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recorded := func() []store.Problem {
		t.Helper()
		sf, err := daemon.ReadStatusFile(filepath.Join(loaded.StateDir, daemon.StatusFileName))
		if err != nil || len(sf.Verified) != 1 {
			t.Fatalf("status file: %+v, %v; want one store's reading", sf, err)
		}
		return sf.Verified[0].Problems
	}
	if _, err := d.Job(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ps := recorded(); !slices.ContainsFunc(ps, func(p store.Problem) bool { return p.Object == pack }) {
		t.Fatalf("recorded problems %+v; want %s", ps, pack)
	}
	if code, out, errs := cliRun(t, cfg, "repair"); code != exitOK && code != exitDamaged {
		t.Fatalf("repair: exit %d\n%s%s", code, out, errs)
	}
	if _, err := d.Job(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ps := recorded(); len(ps) != 0 {
		t.Errorf("recorded problems after the repair and a run: %+v; want none", ps)
	}
	// That run stored the lost blobs again.
	if code, out, errs := cliRun(t, cfg, "check", "--read-data"); code != 0 {
		t.Errorf("check after the daemon's run: exit %d\n%s%s", code, out, errs)
	}
}
