package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// benchVersions fills a new repository at dir with n versions: four units
// backed up once a day, each version changing one calibration, the
// leader's database growing by 16 KiB a day.
func benchVersions(b *testing.B, dir string, n int) {
	b.Helper()
	ctx := context.Background()
	be, err := local.Create(dir)
	if err != nil {
		b.Fatal(err)
	}
	repo, err := store.Init(ctx, be)
	if err != nil {
		b.Fatal(err)
	}
	hosts := []string{"leader1", "worker1", "worker2", "worker3"}
	days := n / len(hosts)
	start := time.Now().UTC().AddDate(0, 0, -days)
	w, err := store.NewWriter(ctx, repo)
	if err != nil {
		b.Fatal(err)
	}
	db := bytes.Repeat([]byte("pioreactor od reading 0.0421 "), 2048)
	for d := range days {
		db = append(db, bytes.Repeat([]byte(fmt.Sprintf("day %d reading ", d)), 1024)...)
		for _, h := range hosts {
			p := w.Begin(h)
			at := start.AddDate(0, 0, d).Add(time.Hour)
			files := map[string][]byte{"config.ini": []byte("[cluster.topology]\nleader_hostname = leader1\n")}
			for c := range 12 {
				files[fmt.Sprintf("storage/calibrations/od90/cal%02d.yaml", c)] = []byte(fmt.Sprintf("curve_data_: [%d, %d]\n", c, d*(c%3)/2))
			}
			if h == "leader1" {
				files["storage/pioreactor.sqlite"] = db
			}
			for _, name := range slices.Sorted(maps.Keys(files)) {
				if _, err := p.Add(ctx, name, 0o644, at, bytes.NewReader(files[name])); err != nil {
					b.Fatal(err)
				}
			}
			for _, r := range p.Commit(ctx, store.Version{Time: at, Zone: "UTC", Kind: store.KindBackup, Source: "pioreactor", AppVersion: "26.7.2"}) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
	}
}

// BenchmarkWebPages measures the web application's pages with 1,000
// versions in a local repository, served by the daemon itself:
//
//	go test -run '^$' -bench WebPages -benchtime 20x ./cmd/piosnap
//
// Reported per page: ttfb-ms (time to the first byte of the response),
// page-KiB (the HTML or JSON) and gzip-KiB (what a browser downloads);
// ns/op is the whole response. The first request of all ("cold") reads the 1,000 manifests;
// later ones read only the list of version names.
func BenchmarkWebPages(b *testing.B) {
	dir := b.TempDir()
	benchVersions(b, filepath.Join(dir, "repo"), 1000)
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "piosnap.toml")
	cfg := fmt.Sprintf("zone = \"UTC\"\nschedule = \"@yearly\"\nstate_dir = %q\n[log]\nlevel = \"error\"\n[pioreactor]\nleader = \"127.0.0.1:1\"\n[[store]]\nname = \"local\"\ntype = \"local\"\npath = %q\n[web]\nlisten = \"127.0.0.1:0\"\n",
		state, filepath.Join(dir, "repo"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	env := Env{Stdin: strings.NewReader(webPassword + "\n"), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if code := Main(context.Background(), []string{"-c", cfgPath, "web", "passwd", "--stdin"}, env); code != 0 {
		b.Fatalf("web passwd: exit %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"-c", cfgPath, "run"}, env) }()
	defer func() { cancel(); <-done }()
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the daemon did not start")
		}
		if sf, err := daemon.ReadStatusFile(filepath.Join(state, daemon.StatusFileName)); err == nil && sf.WebAddr != "" {
			base = "http://" + sf.WebAddr
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	page := get(b, c, base+"/login", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		b.Fatal("no login token")
	}
	resp, err := c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "password": {webPassword}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()

	var ttfb time.Duration
	start := time.Now()
	get(b, c, base+"/", &ttfb)
	b.Logf("cold overview (reads 1,000 manifests): ttfb %v, total %v", ttfb.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, p := range []struct{ name, path string }{
		{"overview", "/"},
		{"unit", "/units/worker1"},
		{"restore", "/units/worker1/restore"},
		{"status-json", "/api/status"},
		{"versions-json", "/api/versions"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var sum time.Duration
			var body []byte
			for b.Loop() {
				var t time.Duration
				body = get(b, c, base+p.path, &t)
				sum += t
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				b.Fatalf("%s is not gzip-compressed: %v", p.path, err)
			}
			page, err := io.ReadAll(zr)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(sum.Microseconds())/1000/float64(b.N), "ttfb-ms")
			b.ReportMetric(float64(len(page))/1024, "page-KiB")
			b.ReportMetric(float64(len(body))/1024, "gzip-KiB")
		})
	}
}

// get fetches u as a browser does (gzip accepted) and returns the body as
// sent; ttfb, if not nil, receives the time to the response's first byte.
func get(b *testing.B, c *http.Client, u string, ttfb *time.Duration) []byte {
	b.Helper()
	start := time.Now()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() {
			if ttfb != nil {
				*ttfb = time.Since(start)
			}
		},
	}))
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s %v\n%.500s", u, resp.Status, err, body)
	}
	return body
}
