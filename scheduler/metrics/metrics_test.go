package metrics

import (
	"bytes"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestExpositionGolden(t *testing.T) {
	r := NewRegistry()
	last, err := r.NewGauge("piosnap_last_success_timestamp_seconds", "Time of the newest version.", "host", "store")
	if err != nil {
		t.Fatal(err)
	}
	up, err := r.NewGauge("piosnap_up", "Help with a \\ backslash\nand a newline.")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := r.NewGauge("piosnap_empty", "Never set, so not written.", "x")
	if err != nil {
		t.Fatal(err)
	}
	_ = empty
	odd, err := r.NewGauge("piosnap_odd_values", "Special values and escapes.", "label")
	if err != nil {
		t.Fatal(err)
	}
	last.Set(1.7e9, "worker2", "local")
	last.Set(1700000000.5, "leader1", "s3")
	last.Set(1700000001, "leader1", "local")
	last.Set(3, "gone", "local")
	last.Delete("gone", "local")
	up.Set(1)
	odd.Set(math.Inf(1), "plus")
	odd.Set(math.Inf(-1), "minus")
	odd.Set(math.NaN(), "nan")
	odd.Set(-0.25, `quote " backslash \ newline`+"\n")

	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "exposition.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("exposition differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
	}
	if v, ok := last.Get("leader1", "s3"); !ok || v != 1700000000.5 {
		t.Errorf("Get = %v, %v", v, ok)
	}
	if _, ok := last.Get("gone", "local"); ok {
		t.Error("Get found a deleted value")
	}
}

func TestNewGaugeErrors(t *testing.T) {
	r := NewRegistry()
	if _, err := r.NewGauge("dup", "h"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   string
	}{
		{"dup", nil, "already registered"},
		{"1bad", nil, "metric name"},
		{"has-dash", nil, "metric name"},
		{"ok", []string{"a-b"}, "label name"},
		{"ok", []string{"__reserved"}, "label name"},
		{"ok", []string{"a", "a"}, "listed twice"},
	} {
		_, err := r.NewGauge(tc.name, "h", tc.labels...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewGauge(%q, %q) = %v, want an error containing %q", tc.name, tc.labels, err, tc.want)
		}
	}
}

func TestSetWrongLabelCountPanics(t *testing.T) {
	r := NewRegistry()
	g, err := r.NewGauge("g", "h", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "g has labels") {
			t.Errorf("panic %v, want one naming the metric", p)
		}
	}()
	g.Set(1, "only-one")
}

func TestEachAndReset(t *testing.T) {
	r := NewRegistry()
	g, _ := r.NewGauge("g", "h", "a")
	h, _ := r.NewGauge("h", "h", "a")
	g.Set(1, "x")
	g.Set(2, "y")
	g.Each(func(l []string, v float64) { h.Set(v*10, l...) }) // may call the registry
	if v, _ := h.Get("y"); v != 20 {
		t.Errorf("h{a=y} = %v, want 20", v)
	}
	g.Reset()
	n := 0
	g.Each(func([]string, float64) { n++ })
	if n != 0 {
		t.Errorf("%d values after Reset", n)
	}
}

func TestServeHTTP(t *testing.T) {
	r := NewRegistry()
	g, _ := r.NewGauge("piosnap_up", "Up.")
	g.Set(1)
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, tc := range []struct {
		method   string
		status   int
		wantBody string
	}{
		{http.MethodGet, 200, "piosnap_up 1\n"},
		{http.MethodHead, 200, ""},
		{http.MethodPost, 405, "only GET and HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.wantBody) {
			t.Errorf("%s: %d %q", tc.method, resp.StatusCode, body)
		}
		if tc.status == 200 && resp.Header.Get("Content-Type") != ContentType {
			t.Errorf("%s: Content-Type %q", tc.method, resp.Header.Get("Content-Type"))
		}
	}
}

func BenchmarkWriteTo(b *testing.B) {
	r := NewRegistry()
	g, _ := r.NewGauge("piosnap_last_success_timestamp_seconds", "h", "host", "store")
	for h := range 50 {
		for _, s := range []string{"local", "s3"} {
			g.Set(1.7e9, "worker"+string(rune('a'+h%26))+string(rune('a'+h/26)), s)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.WriteTo(io.Discard)
	}
}
