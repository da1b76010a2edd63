package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

// BenchmarkNightly is issue 10's benchmark: a simulated cluster (leader and
// 3 workers) whose leader database ages night by night like a real one
// (simulator.Cluster.AgeNight: +1 % appended, 0.1 % of rows updated in
// place, index inserts among older entries, now and then a deleted range),
// backed up every night by the piosnap binary. It takes long, so it runs
// only when asked:
//
//	PIOSNAP_NIGHTLY=quick go test -run '^$' -bench '^BenchmarkNightly$' -benchtime 1x -timeout 0 -v ./cmd/piosnap
//
// or, with restic 0.18.1 installed for the comparison, scripts/bench-nightly.sh.
// PIOSNAP_NIGHTLY=quick is a 30 MiB database and 5 nights; full is 300 MiB
// and 30 nights; PIOSNAP_NIGHTLY_DB (e.g. 2GiB) and PIOSNAP_NIGHTLY_NIGHTS
// override either, and PIOSNAP_NIGHTLY_GROWTH and PIOSNAP_NIGHTLY_UPDATES
// the night's shares (simulator.Night's Growth and Updates) to stress a
// store with more change than the workload. RESTIC names a restic binary to compare with;
// PIOSNAP_NIGHTLY_OUT a file that receives the report as Markdown.
//
// Per night it records: bytes the backup stored, the limit (the night's
// changed pages of the leader database, found by comparing the file with
// the previous night's page by page and zstd-compressed together as one
// stream at the store's zstd level), objects written into the repository, the
// backup's wall time and its peak RSS (GNU time). After the last night it
// compares the repository's size with one export ZIP per host per night
// and with restic backing up the same unzipped trees every night.
func BenchmarkNightly(b *testing.B) {
	cfg, err := nightlyConfig()
	if err != nil {
		b.Fatal(err)
	}
	if cfg == nil {
		b.Skip("set PIOSNAP_NIGHTLY=quick (30 MiB, 5 nights) or full (300 MiB, 30 nights); see scripts/bench-nightly.sh")
	}
	for range b.N {
		runNightly(b, *cfg)
	}
}

type nightlyCfg struct {
	dbSize int64
	nights int
	night  simulator.Night // Seed, Growth, Updates; Number is set per night
	restic string
	out    string
}

func nightlyConfig() (*nightlyCfg, error) {
	var c nightlyCfg
	switch m := os.Getenv("PIOSNAP_NIGHTLY"); m {
	case "":
		return nil, nil
	case "quick":
		c.dbSize, c.nights = 30<<20, 5
	case "full":
		c.dbSize, c.nights = 300<<20, 30
	default:
		return nil, fmt.Errorf("PIOSNAP_NIGHTLY=%q: want quick or full", m)
	}
	if s := os.Getenv("PIOSNAP_NIGHTLY_DB"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return nil, fmt.Errorf("PIOSNAP_NIGHTLY_DB: %w", err)
		}
		c.dbSize = n
	}
	if s := os.Getenv("PIOSNAP_NIGHTLY_NIGHTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("PIOSNAP_NIGHTLY_NIGHTS=%q: want a number of nights, 1 or more", s)
		}
		c.nights = n
	}
	c.night.Seed = 1
	for env, f := range map[string]*float64{"PIOSNAP_NIGHTLY_GROWTH": &c.night.Growth, "PIOSNAP_NIGHTLY_UPDATES": &c.night.Updates} {
		if s := os.Getenv(env); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v <= 0 || v >= 1 {
				return nil, fmt.Errorf("%s=%q: want a share between 0 and 1, such as 0.01 for 1 %%", env, s)
			}
			*f = v
		}
	}
	c.restic = os.Getenv("RESTIC")
	c.out = os.Getenv("PIOSNAP_NIGHTLY_OUT")
	return &c, nil
}

// nightRow is one night's line of the report.
type nightRow struct {
	night          int
	dbBytes        int64
	diff           simulator.PageDiff
	limit          int64 // zstd of the changed pages
	dbZstd         int64 // zstd of the whole database
	stored         int64 // bytes the backup stored, all hosts
	objects        int   // files new in the repository
	took           time.Duration
	rssMiB         float64
	zipBytes       int64 // the night's export ZIPs, all hosts
	resticAdded    int64
	aging          simulator.NightReport
	repoAfter      int64
	resticRepoSize int64
}

func runNightly(b *testing.B, cfg nightlyCfg) {
	ctx := context.Background()
	dir := b.TempDir()
	bin := filepath.Join(dir, "piosnap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	start := time.Now()
	c, err := simulator.Start(ctx, simulator.Options{Dir: filepath.Join(dir, "cluster"), Workers: []string{"worker1", "worker2", "worker3"}, DBSize: cfg.dbSize, ExportTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Logf("seeded a %d MiB leader database in %s", fileSize(b, c.DatabasePath())>>20, time.Since(start).Round(time.Second))

	var addrs strings.Builder
	for u, a := range c.Addresses() {
		fmt.Fprintf(&addrs, "%s = %q\n", u, a)
	}
	repo := filepath.Join(dir, "repo")
	conf := filepath.Join(dir, "piosnap.toml")
	text := fmt.Sprintf("zone = \"UTC\"\n[pioreactor]\nleader = %q\npull = \"per-unit\"\n[pioreactor.addresses]\n%s\n[[store]]\npath = %q\n", c.LeaderURL(), addrs.String(), repo)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	if _, _, err := runMeasured(b, nil, bin, "-c", conf, "init"); err != nil {
		b.Fatal(err)
	}
	var restic *resticRepo
	if cfg.restic != "" {
		if restic, err = newResticRepo(cfg.restic, filepath.Join(dir, "restic")); err != nil {
			b.Fatal(err)
		}
	}
	prev := filepath.Join(dir, "previous.sqlite")
	trees := filepath.Join(dir, "trees")
	var rows []nightRow
	for night := 0; night <= cfg.nights; night++ {
		r := nightRow{night: night}
		if night > 0 {
			if err := copyFileTo(c.DatabasePath(), prev); err != nil {
				b.Fatal(err)
			}
			n := cfg.night
			n.Number = night
			if r.aging, err = c.AgeNight(ctx, n); err != nil {
				b.Fatal(err)
			}
			if r.diff, r.limit, err = changedPagesZstd(prev, c.DatabasePath()); err != nil {
				b.Fatal(err)
			}
		}
		r.dbBytes = fileSize(b, c.DatabasePath())
		if r.dbZstd, err = zstdSize(c.DatabasePath()); err != nil {
			b.Fatal(err)
		}
		before, _, err := repoFiles(repo)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		out, rss, err := runMeasured(b, nil, bin, "-c", conf, "backup", "--json")
		if err != nil {
			b.Fatalf("night %d: piosnap backup: %v", night, err)
		}
		r.took, r.rssMiB = time.Since(t0), rss
		if r.stored, err = storedBytes(out); err != nil {
			b.Fatal(err)
		}
		after, size, err := repoFiles(repo)
		if err != nil {
			b.Fatal(err)
		}
		r.repoAfter = size
		for p := range after {
			if !before[p] {
				r.objects++
			}
		}
		if r.zipBytes, err = exportTrees(c, dir, trees); err != nil {
			b.Fatal(err)
		}
		if restic != nil {
			if r.resticAdded, r.resticRepoSize, err = restic.backup(trees); err != nil {
				b.Fatal(err)
			}
		}
		rows = append(rows, r)
		b.Logf("night %d: db %.1f MiB, %.1f %% pages changed, limit %s, stored %s, %d objects, %s, %.1f MiB RSS",
			night, mib(r.dbBytes), 100*r.diff.Fraction(), mb(r.limit), mb(r.stored), r.objects, r.took.Round(10*time.Millisecond), r.rssMiB)
	}
	report := nightlyReport(cfg, rows, restic != nil)
	b.Log("\n" + report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	last := rows[len(rows)-1]
	var zips int64
	maxRatio, maxRSS := 0.0, 0.0
	for _, r := range rows {
		zips += r.zipBytes
		if r.night > 0 && r.limit > 0 {
			maxRatio = max(maxRatio, float64(r.stored)/float64(r.limit))
		}
		maxRSS = max(maxRSS, r.rssMiB)
	}
	b.ReportMetric(float64(last.repoAfter)/1e6, "repo-MB")
	b.ReportMetric(float64(last.repoAfter)/float64(zips), "repo/zip-per-night")
	if restic != nil {
		b.ReportMetric(float64(last.repoAfter)/float64(last.resticRepoSize), "repo/restic")
	}
	b.ReportMetric(maxRatio, "max-night/limit")
	b.ReportMetric(maxRSS, "peak-RSS-MiB")
}

func nightlyReport(cfg nightlyCfg, rows []nightRow, withRestic bool) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Leader database %s to start, leader + 3 workers, %d nights (night 0 is the first, full backup); each night appends %.2g %% and updates %.2g %% of rows.\n\n",
		mibString(rows[0].dbBytes), cfg.nights, 100*orDefault(cfg.night.Growth, simulator.DefaultNightGrowth), 100*orDefault(cfg.night.Updates, simulator.DefaultNightUpdates))
	sb.WriteString("| night | DB MiB | pages changed | limit (zstd of changed pages) | stored | stored / limit | stored / zstd of DB | repository grew by | objects written | backup s | peak RSS MiB |")
	if withRestic {
		sb.WriteString(" restic added |")
	}
	sb.WriteString("\n|---|---|---|---|---|---|---|---|---|---|---|")
	if withRestic {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	var zips, stored, limits, repoBefore int64
	for _, r := range rows {
		ratio := "–"
		changed := "–"
		limit := "–"
		if r.night > 0 {
			changed = fmt.Sprintf("%d + %d new (%.1f %%)", r.diff.Changed, r.diff.Added, 100*r.diff.Fraction())
			if r.aging.DeletedTable != "" {
				changed += ", range of " + r.aging.DeletedTable + " deleted"
			}
			limit = mb(r.limit)
			if r.limit > 0 {
				ratio = fmt.Sprintf("%.2f", float64(r.stored)/float64(r.limit))
			}
			stored += r.stored
			limits += r.limit
		}
		fmt.Fprintf(&sb, "| %d | %.1f | %s | %s | %s | %s | %.2f | %s | %d | %.1f | %.1f |", r.night, mib(r.dbBytes), changed, limit, mb(r.stored), ratio,
			float64(r.stored)/float64(r.dbZstd), mb(r.repoAfter-repoBefore), r.objects, r.took.Seconds(), r.rssMiB)
		repoBefore = r.repoAfter
		if withRestic {
			fmt.Fprintf(&sb, " %s |", mb(r.resticAdded))
		}
		sb.WriteString("\n")
		zips += r.zipBytes
	}
	last := rows[len(rows)-1]
	fmt.Fprintf(&sb, "\nNights 1-%d together: stored %s against a limit of %s (%.2f ×).\n\n", cfg.nights, mb(stored), mb(limits), float64(stored)/float64(max(limits, 1)))
	fmt.Fprintf(&sb, "| after %d nights | bytes | piosnap repository / this |\n|---|---|---|\n", cfg.nights)
	fmt.Fprintf(&sb, "| piosnap repository | %s | |\n", mb(last.repoAfter))
	fmt.Fprintf(&sb, "| one export ZIP per host per night | %s | %.2f |\n", mb(zips), float64(last.repoAfter)/float64(zips))
	if withRestic {
		fmt.Fprintf(&sb, "| restic 0.18.1 repository (same unzipped trees every night) | %s | %.2f |\n", mb(last.resticRepoSize), float64(last.repoAfter)/float64(last.resticRepoSize))
	}
	return sb.String()
}

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func mibString(n int64) string { return fmt.Sprintf("%.0f MiB", mib(n)) }

// mb prints bytes in MB with enough digits for small nights.
func mb(n int64) string {
	switch {
	case n >= 100e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
}

func copyFileTo(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// countWriter counts what is written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// newStoreEncoder is a zstd encoder with the store's settings (keep in
// step with newRepository in store/repo.go: zstd's fastest level).
func newStoreEncoder(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
}

// changedPagesZstd compares two versions of the database page by page and
// returns the difference and the size of its changed pages compressed
// together as one zstd stream: the least a night can cost without deltas.
func changedPagesZstd(prev, cur string) (simulator.PageDiff, int64, error) {
	var cw countWriter
	enc, err := newStoreEncoder(&cw)
	if err != nil {
		return simulator.PageDiff{}, 0, err
	}
	d, err := simulator.DiffPages(prev, cur, enc)
	if err != nil {
		return d, 0, err
	}
	if err := enc.Close(); err != nil {
		return d, 0, err
	}
	return d, cw.n, nil
}

// zstdSize is the size of a whole file compressed like the store does.
func zstdSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var cw countWriter
	enc, err := newStoreEncoder(&cw)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(enc, f); err != nil {
		return 0, err
	}
	if err := enc.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// storedBytes sums stored_bytes over the hosts of `backup --json`.
func storedBytes(out []byte) (int64, error) {
	var rep struct {
		Hosts []struct {
			Stores []struct {
				Stored int64 `json:"stored_bytes"`
			} `json:"stores"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return 0, fmt.Errorf("backup --json: %w\n%s", err, out)
	}
	var n int64
	for _, h := range rep.Hosts {
		for _, s := range h.Stores {
			n += s.Stored
		}
	}
	return n, nil
}

// repoFiles lists a local repository's files and sums their sizes.
func repoFiles(root string) (map[string]bool, int64, error) {
	files := make(map[string]bool)
	var size int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files[p] = true
		size += fi.Size()
		return nil
	})
	return files, size, err
}

// exportTrees fetches every unit's export ZIP, as a lab keeping one ZIP per
// host per night would, and unzips each into trees/<host> for restic. It
// returns the ZIPs' total size.
func exportTrees(c *simulator.Cluster, dir, trees string) (int64, error) {
	var total int64
	for _, name := range c.Units() {
		zipPath := filepath.Join(dir, name+".zip")
		resp, err := http.Get(c.Unit(name).URL() + "/unit_api/zipped_dot_pioreactor")
		if err != nil {
			return 0, err
		}
		f, err := os.Create(zipPath)
		if err != nil {
			resp.Body.Close()
			return 0, err
		}
		n, err := io.Copy(f, resp.Body)
		resp.Body.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("export of %s: status %d, %v", name, resp.StatusCode, err)
		}
		total += n
		hostDir := filepath.Join(trees, name)
		if err := os.RemoveAll(hostDir); err != nil {
			return 0, err
		}
		if err := os.MkdirAll(hostDir, 0o755); err != nil {
			return 0, err
		}
		if out, err := exec.Command("unzip", "-q", "-o", zipPath, "-d", hostDir).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("unzip %s: %v\n%s", zipPath, err, out)
		}
		os.Remove(zipPath)
	}
	return total, nil
}

// resticRepo is a restic repository the benchmark backs the trees up to.
type resticRepo struct {
	bin, repo string
	env       []string
}

func newResticRepo(bin, repo string) (*resticRepo, error) {
	r := &resticRepo{bin: bin, repo: repo, env: append(os.Environ(), "RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY="+repo, "RESTIC_CACHE_DIR="+repo+"-cache")}
	if out, err := r.run("init"); err != nil {
		return nil, fmt.Errorf("restic init: %v\n%s", err, out)
	}
	return r, nil
}

func (r *resticRepo) run(args ...string) ([]byte, error) {
	cmd := exec.Command(r.bin, args...)
	cmd.Env = r.env
	return cmd.CombinedOutput()
}

// backup backs trees up with restic and returns the bytes it added and the
// repository's size after.
func (r *resticRepo) backup(trees string) (added, size int64, err error) {
	_, before, err := repoFiles(r.repo)
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(r.bin, "backup", "--quiet", "--host", "bench", ".")
	cmd.Dir, cmd.Env = trees, r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("restic backup: %v\n%s", err, out)
	}
	_, size, err = repoFiles(r.repo)
	return size - before, size, err
}
