package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type hit struct{ method, path, contentType, body string }

// server is a real HTTP server that records requests and answers status.
func server(t *testing.T, status int, delay time.Duration) (*httptest.Server, func() []hit) {
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(status)
		io.WriteString(w, "answer text")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), hits...)
	}
}

func TestHealthchecksPings(t *testing.T) {
	ctx := context.Background()
	srv, hits := server(t, 200, 0)
	hc := &Healthchecks{URL: srv.URL + "/ping/uuid-1234/"}
	if err := hc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hc.Success(ctx, "2 hosts backed up"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", MaxReason+500)
	if err := hc.Fail(ctx, "worker1: connection refused\n"+long); err != nil {
		t.Fatal(err)
	}
	got := hits()
	want := []struct{ path, bodyPrefix string }{
		{"/ping/uuid-1234/start", ""},
		{"/ping/uuid-1234", "2 hosts backed up"},
		{"/ping/uuid-1234/fail", "worker1: connection refused\nxxx"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d pings, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].method != http.MethodPost || got[i].path != w.path || !strings.HasPrefix(got[i].body, w.bodyPrefix) {
			t.Errorf("ping %d = %s %s %q, want POST %s %q…", i, got[i].method, got[i].path, got[i].body, w.path, w.bodyPrefix)
		}
	}
	if n := len(got[2].body); n != MaxReason {
		t.Errorf("failure body is %d bytes, want it cut to %d", n, MaxReason)
	}
}

func TestWebhookBody(t *testing.T) {
	srv, hits := server(t, 204, 0)
	ev := Event{
		RunID: "ab12cd34", Time: time.Date(2026, 5, 1, 2, 30, 0, 0, time.UTC), Duration: 12.5, Result: "partial",
		Hosts: []HostResult{
			{Host: "leader1", OK: true, Stores: []StoreResult{{Store: "local", Version: "0123abcd", StoredBytes: 4096}}},
			{Host: "worker1", Error: "connection refused"},
		},
	}
	if err := (&Webhook{URL: srv.URL + "/hook"}).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	got := hits()
	if len(got) != 1 || got[0].path != "/hook" || got[0].contentType != "application/json" {
		t.Fatalf("requests %+v", got)
	}
	var back Event
	if err := json.Unmarshal([]byte(got[0].body), &back); err != nil {
		t.Fatal(err)
	}
	if back.RunID != ev.RunID || !back.Time.Equal(ev.Time) || back.Result != "partial" || len(back.Hosts) != 2 || back.Hosts[1].Error != "connection refused" || back.Hosts[0].Stores[0].StoredBytes != 4096 {
		t.Errorf("decoded %+v", back)
	}
	for _, key := range []string{`"run_id"`, `"time"`, `"duration_seconds"`, `"result"`, `"hosts"`, `"stored_bytes"`} {
		if !strings.Contains(got[0].body, key) {
			t.Errorf("body lacks %s: %s", key, got[0].body)
		}
	}
}

func TestFailures(t *testing.T) {
	bad, _ := server(t, 500, 0)
	slow, _ := server(t, 200, time.Hour)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		name string
		send func() error
		want []string
	}{
		{"server error", func() error {
			return (&Healthchecks{URL: bad.URL + "/secret-uuid"}).Fail(context.Background(), "x")
		}, []string{"healthchecks ping/fail", "500", "answer text"}},
		{"timeout", func() error {
			return (&Healthchecks{URL: slow.URL + "/secret-uuid", Timeout: 100 * time.Millisecond}).Start(context.Background())
		}, []string{"healthchecks ping/start", "failed", "check the URL"}},
		{"refused", func() error {
			return (&Webhook{URL: closedURL + "/secret-uuid"}).Send(context.Background(), Event{RunID: "r"})
		}, []string{"webhook", "refused"}},
		{"webhook error status", func() error {
			return (&Webhook{URL: bad.URL + "/secret-uuid"}).Send(context.Background(), Event{})
		}, []string{"webhook", "500"}},
		{"bad URL", func() error {
			return (&Healthchecks{URL: "http://[::1"}).Start(context.Background())
		}, []string{"healthchecks ping", "URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.send()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-uuid") {
				t.Errorf("error %q leaks the ping URL's path", err)
			}
			// Below DefaultTimeout: a hung request was cut by the 100 ms
			// timeout, whatever the machine's load.
			if took := time.Since(start); took > DefaultTimeout-time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}
