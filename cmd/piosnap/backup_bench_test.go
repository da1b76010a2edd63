package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

// BenchmarkBackupCluster measures what issue 3 promises, on a simulated
// cluster (leader + 3 workers) whose leader database has
// $PIOSNAP_BENCH_DB bytes (default 256MiB; BENCHMARKS.md uses 1GiB). piosnap
// runs as a separate process so that its peak RSS is its own:
//
//	go test -run '^$' -bench BackupCluster -benchtime 1x ./cmd/piosnap
//
// Reported: unchanged-% and grown-% (bytes stored by a second backup of an
// unchanged cluster, and after the database grew by 1%, as a share of the
// cluster's content), peak-RSS-MiB of `piosnap backup` on the full cluster,
// and import-MB/s against unzip-MB/s: `piosnap import` and `unzip` of the
// same leader archive file. Needs GNU time (/usr/bin/time) and unzip.
func BenchmarkBackupCluster(b *testing.B) {
	size := int64(256 << 20)
	if s := os.Getenv("PIOSNAP_BENCH_DB"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "piosnap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	c, err := simulator.Start(ctx, simulator.Options{Dir: filepath.Join(dir, "cluster"), Workers: []string{"worker1", "worker2", "worker3"}, DBSize: size, ExportTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var addrs strings.Builder
	for u, a := range c.Addresses() {
		fmt.Fprintf(&addrs, "%s = %q\n", u, a)
	}
	cfg := filepath.Join(dir, "piosnap.toml")
	cfgText := fmt.Sprintf("zone = \"UTC\"\n[pioreactor]\nleader = %q\npull = \"per-unit\"\n[pioreactor.addresses]\n%s\n[[store]]\npath = %q\n", c.LeaderURL(), addrs.String(), filepath.Join(dir, "repo"))
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) (stdout []byte, rssMiB float64, took time.Duration) {
		start := time.Now()
		out, rss, err := runMeasured(b, nil, bin, append([]string{"-c", cfg}, args...)...)
		if err != nil {
			b.Fatalf("piosnap %v: %v", args, err)
		}
		return out, rss, time.Since(start)
	}
	stored := func(out []byte) (newBytes, total int64) {
		var rep struct {
			Hosts []struct {
				Size   int64 `json:"size_bytes"`
				Stores []struct {
					Stored int64 `json:"stored_bytes"`
				} `json:"stores"`
			} `json:"hosts"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			b.Fatal(err)
		}
		for _, h := range rep.Hosts {
			total += h.Size
			newBytes += h.Stores[0].Stored
		}
		return
	}
	b.ResetTimer()
	for range b.N {
		run("init")
		out, rss, took := run("backup", "--json")
		firstNew, total := stored(out)
		out, _, _ = run("backup", "--json")
		unchangedNew, _ := stored(out)
		if err := c.GrowDatabase(ctx, size/100); err != nil {
			b.Fatal(err)
		}
		out, _, _ = run("backup", "--json")
		grownNew, total2 := stored(out)
		b.ReportMetric(float64(total)/1e6, "cluster-MB")
		b.ReportMetric(float64(firstNew)/1e6, "first-stored-MB")
		b.ReportMetric(100*float64(unchangedNew)/float64(total), "unchanged-%")
		b.ReportMetric(100*float64(grownNew)/float64(total2), "grown-%")
		b.ReportMetric(float64(grownNew)/float64(size/100), "grown-stored/growth")
		b.ReportMetric(rss, "peak-RSS-MiB")
		b.ReportMetric(float64(total)/1e6/took.Seconds(), "backup-MB/s")

		// Processing throughput against unzip, on the same archive file.
		zipPath := filepath.Join(dir, "leader1.zip")
		resp, err := http.Get(c.LeaderURL() + "/unit_api/zipped_dot_pioreactor")
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(zipPath)
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		f.Close()
		leaderSize := int64(0)
		_ = filepath.WalkDir(c.Leader().Dir(), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".backup") {
				if fi, err := d.Info(); err == nil {
					leaderSize += fi.Size()
				}
			}
			return err
		})
		_, irss, itook := run("import", "--host", "leader1", zipPath)
		start := time.Now()
		uz := exec.Command("unzip", "-q", "-o", zipPath, "-d", filepath.Join(dir, "unzipped"))
		if out, err := uz.CombinedOutput(); err != nil {
			b.Fatalf("unzip: %v %s", err, out)
		}
		utook := time.Since(start)
		b.ReportMetric(float64(leaderSize)/1e6/itook.Seconds(), "import-MB/s")
		b.ReportMetric(float64(leaderSize)/1e6/utook.Seconds(), "unzip-MB/s")
		b.ReportMetric(irss, "import-peak-RSS-MiB")
	}
}

// runMeasured runs a command under GNU time and returns its standard output
// and peak RSS in MiB. The rusage of a child exec'd straight from the (large)
// benchmark process would report the benchmark's own peak instead: Linux
// carries the pre-exec high-water mark of the forking process over. env nil
// means the current environment.
func runMeasured(tb testing.TB, env []string, name string, args ...string) ([]byte, float64, error) {
	tb.Helper()
	timeOut := filepath.Join(tb.TempDir(), "time.out")
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", timeOut, name}, args...)...)
	cmd.Env = env
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, 0, fmt.Errorf("%w\n%s", err, errb.String())
	}
	kb, err := os.ReadFile(timeOut)
	if err != nil {
		return out, 0, err
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(kb)), 64)
	if err != nil {
		return out, 0, fmt.Errorf("/usr/bin/time output %q: %w", kb, err)
	}
	return out, n / 1024, nil
}

// parseSize reads "256MiB", "1GiB" or plain bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: write e.g. 256MiB or 1GiB", s)
	}
	return n * mult, nil
}
