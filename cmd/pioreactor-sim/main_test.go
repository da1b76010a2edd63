package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"200MiB", 200 << 20, true},
		{"1.5GiB", 3 << 29, true},
		{"10MB", 10_000_000, true},
		{"512k", 512 << 10, true},
		{"4096", 4096, true},
		{"2 GiB", 2 << 30, true},
		{"", 0, false},
		{"-1MiB", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"dir", "keep", "units", "leader", "db-size", "app-version", "export-timeout", "import-timeout",
		"unit-timeout", "reboot-delay", "reboot-downtime", "basic-auth", "log-level", "age-nights", "age-seed", "tmp-size"} {
		if !strings.Contains(out.String(), "  -"+f) {
			t.Errorf("--help does not document -%s", f)
		}
	}
	if !strings.Contains(out.String(), "INCLUDING the leader") {
		t.Error("--help does not say --units counts the leader")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--units", "0"}, {"--db-size", "big"}, {"--basic-auth", "nocolon"}, {"--log-level", "loud"}, {"extra"}, {"--nope"}, {"--age-nights", "-1"}, {"--tmp-size", "lots"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--units", "3", "--db-size", "1MiB", "--dir", t.TempDir(), "--basic-auth", "u:p"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var lines []string
	for len(lines) < 4 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "leader leader1 http://127.0.0.1:") ||
		!strings.HasPrefix(lines[3], "unit worker2 http://127.0.0.1:") {
		t.Fatalf("printed %q", lines)
	}
	url := strings.Fields(lines[0])[2]
	req, _ := http.NewRequest(http.MethodGet, url+"/api/units", nil)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var units []map[string]string
	json.NewDecoder(resp.Body).Decode(&units)
	resp.Body.Close()
	if len(units) != 3 {
		t.Errorf("/api/units = %v, want leader + 2 workers", units)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestAgeNights(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--units", "2", "--db-size", "2MiB", "--dir", t.TempDir(), "--age-nights", "2", "--age-seed", "5"}, pw, &logs)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	sc.Scan() // the leader's line comes after the nights
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := logs.String()
	for _, want := range []string{"aged the leader database night=1", "aged the leader database night=2", "updated_rows="} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
