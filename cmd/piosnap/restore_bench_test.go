package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/store/storetest"
)

// BenchmarkRestoreLeaderDB restores the leader of a simulated cluster whose
// database is $PIOSNAP_BENCH_DB_MIB MiB (default 1024) and compares, pair by
// pair in turn, piosnap's upload (restore --no-wait --no-safety-snapshot,
// with --stored and with --compress) with `curl -F archive=@file.zip` to
// the same leader endpoint of the unit's own export (leader.zip, DEFLATE
// level 6, as a user would send it) and of the archives piosnap sends
// (`export --stored` and `export`). Then it times
// $PIOSNAP_BENCH_FULL (default 1) full default restores (safety snapshot,
// upload, reboot wait, verification), and their upload step: from the end
// of the safety snapshot to the end of the upload, against curl of the
// archive the default sends. Reported: medians of each, the ratios of the
// medians, piosnap's peak heap and peak RSS during the upload-only
// restores. The simulator runs in its own process (cmd/pioreactor-sim), so
// its memory is not counted; it shares the machine's cores with piosnap.
//
//	PIOSNAP_BENCH_DB_MIB=64 go test ./cmd/piosnap -run '^$' -bench RestoreLeaderDB -benchtime 5x
func BenchmarkRestoreLeaderDB(b *testing.B) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatal("curl not found: install it (apt-get install curl) to compare the upload with curl -F")
		}
		b.Skip("curl not found: install it (apt-get install curl) to run this benchmark")
	}
	dbMiB := 1024
	if s := os.Getenv("PIOSNAP_BENCH_DB_MIB"); s != "" {
		if dbMiB, err = strconv.Atoi(s); err != nil {
			b.Fatalf("PIOSNAP_BENCH_DB_MIB=%q: %v", s, err)
		}
	}
	dir := b.TempDir()
	sim := filepath.Join(dir, "pioreactor-sim")
	if out, err := exec.Command("go", "build", "-o", sim, "github.com/piosnap/piosnap/cmd/pioreactor-sim").CombinedOutput(); err != nil {
		b.Fatalf("build pioreactor-sim: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, sim, "--units", "1", "--db-size", fmt.Sprintf("%dMiB", dbMiB),
		"--dir", filepath.Join(dir, "cluster"), "--reboot-delay", "100ms", "--reboot-downtime", "1s", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	leaderURL := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "leader" {
			leaderURL = f[2]
			break
		}
	}
	if leaderURL == "" {
		b.Fatal("pioreactor-sim printed no leader address")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	cfgPath := filepath.Join(dir, "piosnap.toml")
	cfg := fmt.Sprintf("zone = \"UTC\"\nstate_dir = %q\n[log]\nlevel = \"warn\"\n[pioreactor]\nleader = %q\nreboot_timeout = \"5m\"\n[pioreactor.addresses]\nleader1 = %q\n[[store]]\nname = \"local\"\npath = %q\n",
		filepath.Join(dir, "state"), leaderURL, strings.TrimPrefix(leaderURL, "http://"), filepath.Join(dir, "repo"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) string {
		var out, errw bytes.Buffer
		code := Main(ctx, append([]string{"-c", cfgPath}, args...), Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errw, Getenv: os.Getenv})
		if code != exitOK {
			b.Fatalf("piosnap %v: exit %d\n%s\n%s", args, code, out.String(), errw.String())
		}
		return out.String()
	}
	run("init")
	run("backup")
	storedPath := filepath.Join(dir, "stored.zip")
	run("export", "--stored", "--host", "leader1", "--at", "latest", "-o", storedPath)
	deflatePath := filepath.Join(dir, "deflate.zip") // what restore --compress sends
	run("export", "--host", "leader1", "--at", "latest", "-o", deflatePath)
	cl, err := pioreactor.New(pioreactor.Config{Leader: leaderURL, Addresses: map[string]string{"leader1": strings.TrimPrefix(leaderURL, "http://")}})
	if err != nil {
		b.Fatal(err)
	}
	// leader.zip: the unit's own export, as a user would download it.
	zipPath := filepath.Join(dir, "leader.zip")
	exp, err := cl.ExportUnit(ctx, "leader1")
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(zipPath)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, exp.Body); err != nil {
		b.Fatal(err)
	}
	exp.Body.Close()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	zipSize, storedSize := fileSize(b, zipPath), fileSize(b, storedPath)
	settle := func() {
		// The import runs and the unit reboots after the 202; wait for both.
		deadline := time.Now().Add(10 * time.Minute)
		down := false
		for time.Now().Before(deadline) {
			_, err := cl.Health(ctx, "leader1")
			if err != nil {
				down = true
			} else if down && cl.Probe(ctx, "leader1") == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		b.Fatal("leader1 did not reboot after the import within 10 minutes")
	}
	curlUpload := func(path string) time.Duration {
		start := time.Now()
		out, err := exec.CommandContext(ctx, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
			"-F", "archive=@"+path, leaderURL+"/api/units/leader1/import_zipped_dot_pioreactor").CombinedOutput()
		d := time.Since(start)
		if err != nil || string(out) != "202" {
			b.Fatalf("curl upload of %s: %v, HTTP %s", path, err, out)
		}
		settle()
		return d
	}

	uploadRE := regexp.MustCompile(`uploaded .* in (\S+) \(`)
	var restoreTimes, uploadTimes, compressTimes, curlTimes, curlStoredTimes, curlDeflateTimes []time.Duration
	var peakHeap, peakRSS float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		stop := storetest.SamplePeaks()
		b.StartTimer()
		start := time.Now()
		out := run("restore", "--host", "leader1", "--yes", "--no-safety-snapshot", "--no-wait", "--stored")
		restoreTimes = append(restoreTimes, time.Since(start))
		b.StopTimer()
		heap, _, rss := stop()
		peakHeap, peakRSS = max(peakHeap, heap), max(peakRSS, rss)
		m := uploadRE.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("no upload time in:\n%s", out)
		}
		d, _ := time.ParseDuration(m[1])
		uploadTimes = append(uploadTimes, d)
		settle()
		start = time.Now()
		run("restore", "--host", "leader1", "--yes", "--no-safety-snapshot", "--no-wait", "--compress")
		compressTimes = append(compressTimes, time.Since(start))
		settle()
		curlTimes = append(curlTimes, curlUpload(zipPath))
		curlStoredTimes = append(curlStoredTimes, curlUpload(storedPath))
		curlDeflateTimes = append(curlDeflateTimes, curlUpload(deflatePath))
		b.StartTimer()
	}
	b.StopTimer()
	nFull := 1
	if s := os.Getenv("PIOSNAP_BENCH_FULL"); s != "" {
		if nFull, err = strconv.Atoi(s); err != nil {
			b.Fatalf("PIOSNAP_BENCH_FULL=%q: %v", s, err)
		}
	}
	// In a full default restore the archive is compressed while the unit
	// takes the safety snapshot; its upload step runs from the snapshot's
	// end (the line saying so) to the end of the upload, so it includes any
	// wait for the compression to finish.
	var fullTimes, fullUploadTimes []time.Duration
	for range nFull {
		var lines timedLines
		start := time.Now()
		code := Main(ctx, []string{"-c", cfgPath, "restore", "--host", "leader1", "--yes"}, Env{Stdin: strings.NewReader(""), Stdout: &lines, Stderr: &lines, Getenv: os.Getenv})
		fullTimes = append(fullTimes, time.Since(start))
		if code != exitOK {
			b.Fatalf("piosnap restore: exit %d\n%s", code, lines.text())
		}
		safety, uploaded := lines.at("safety snapshot of "), lines.at("uploaded ")
		if safety.IsZero() || uploaded.IsZero() {
			b.Fatalf("no safety snapshot or upload line in:\n%s", lines.text())
		}
		fullUploadTimes = append(fullUploadTimes, uploaded.Sub(safety))
	}
	med := func(ds []time.Duration) float64 {
		if len(ds) == 0 {
			return 0
		}
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2].Seconds()
	}
	b.ReportMetric(float64(zipSize)/(1<<20), "leader.zip-MiB")
	b.ReportMetric(float64(storedSize)/(1<<20), "stored.zip-MiB")
	b.ReportMetric(med(restoreTimes), "restore-s")
	b.ReportMetric(med(uploadTimes), "upload-s")
	b.ReportMetric(med(compressTimes), "restore-compress-s")
	b.ReportMetric(med(curlTimes), "curl-s")
	b.ReportMetric(med(curlStoredTimes), "curl-stored-s")
	b.ReportMetric(med(restoreTimes)/med(curlTimes), "restore/curl")
	b.ReportMetric(med(restoreTimes)/med(curlStoredTimes), "restore/curl-stored")
	b.ReportMetric(med(curlDeflateTimes), "curl-deflate-s")
	b.ReportMetric(med(compressTimes)/med(curlDeflateTimes), "restore-compress/curl-deflate")
	if nFull > 0 {
		// The full restore sends what the default chooses: STORED up to
		// restore.DefaultDeflateAbove, DEFLATE above.
		upload, curlSame := restoreTimes, curlStoredTimes
		if storedSize > restore.DefaultDeflateAbove {
			upload, curlSame = compressTimes, curlDeflateTimes
		}
		b.ReportMetric(med(fullTimes), "full-s")
		b.ReportMetric(med(fullTimes)/med(upload), "full/upload-default")
		b.ReportMetric(med(fullUploadTimes), "full-upload-step-s")
		b.ReportMetric(med(fullUploadTimes)/med(curlSame), "full-upload-step/curl-same")
	}
	b.ReportMetric(peakHeap, "peak-heap-MiB")
	b.ReportMetric(peakRSS, "peak-RSS-MiB")
}

// timedLines collects what a command writes, with the time each write
// arrived, so that a benchmark can time the steps a restore reports.
type timedLines struct {
	mu     sync.Mutex
	writes []timedWrite
}

type timedWrite struct {
	at   time.Time
	text string
}

func (l *timedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, timedWrite{time.Now(), string(p)})
	return len(p), nil
}

// at returns when the first write holding a line that starts with prefix
// arrived, or the zero time.
func (l *timedLines) at(prefix string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.writes {
		for _, line := range strings.Split(w.text, "\n") {
			if strings.HasPrefix(line, prefix) {
				return w.at
			}
		}
	}
	return time.Time{}
}

func (l *timedLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, w := range l.writes {
		sb.WriteString(w.text)
	}
	return sb.String()
}
