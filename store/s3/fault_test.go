package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/piosnap/piosnap/store/storetest"
)

// fault is what the proxy does to one matching request.
type fault string

const (
	pass     fault = "pass"
	slowDown fault = "SlowDown"      // 503 SlowDown
	internal fault = "InternalError" // 500 InternalError
	denied   fault = "AccessDenied"  // 403 AccessDenied
	corrupt  fault = "corrupt"       // flip a body byte, then forward
	hangUp   fault = "hangup"        // close the connection without answering
)

// faultProxy is a real reverse proxy on loopback in front of MinIO. Each
// request matching its method and query applies the next planned fault;
// once the plan is used up requests pass through.
type faultProxy struct {
	method string
	query  string // a request matches if its raw query contains this
	mu     sync.Mutex
	plan   []fault
	seen   int
}

func (p *faultProxy) next(r *http.Request) fault {
	if r.Method != p.method || !strings.Contains(r.URL.RawQuery, p.query) {
		return pass
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen++
	if len(p.plan) == 0 {
		return pass
	}
	f := p.plan[0]
	p.plan = p.plan[1:]
	return f
}

func (p *faultProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen
}

// startProxy runs p in front of m and returns a config pointing at it.
func startProxy(t *testing.T, m *storetest.MinIO, cfg Config, p *faultProxy) Config {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: m.Endpoint}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
		r.Out.Host = r.In.Host // the client signed the proxy's host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f := p.next(r); f {
		case pass:
		case corrupt:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			if len(body) > 0 {
				body[len(body)/2] ^= 0xff
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		case hangUp:
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		default:
			status := map[fault]int{slowDown: 503, internal: 500, denied: 403}[f]
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected %s</Message></Error>`, f, f)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return cfg
}

func TestFaults(t *testing.T) {
	m, direct := newBucket(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	tests := []struct {
		name      string
		plan      []fault
		stream    bool   // hide Seek so the body is buffered
		wantErr   string // empty: Put must succeed
		wantPuts  int
		wantWarns int
	}{
		{"slowdown twice", []fault{slowDown, slowDown}, false, "", 3, 2},
		{"slowdown stream", []fault{slowDown, internal}, true, "", 3, 2},
		{"hang up", []fault{hangUp}, false, "", 2, 1},
		{"corrupt once", []fault{corrupt}, false, "", 2, 1},
		{"corrupt always", []fault{corrupt, corrupt, corrupt, corrupt, corrupt}, false, "BadDigest", 4, 3},
		{"internal always", []fault{internal, internal, internal, internal, internal}, false, "kept answering InternalError", 4, 3},
		{"access denied", []fault{denied}, false, "give these credentials list, get, put and delete rights", 1, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := &faultProxy{method: http.MethodPut, plan: tt.plan}
			cfg := startProxy(t, m, direct, p)
			cfg.Prefix = fmt.Sprintf("faults-%d", i)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			b, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var r io.Reader = bytes.NewReader(payload)
			if tt.stream {
				r = struct{ io.Reader }{r}
			}
			err = b.Put(context.Background(), "obj", r, int64(len(payload)))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Put: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Put = %v; want an error containing %q", err, tt.wantErr)
			}
			if got := p.count(); got != tt.wantPuts {
				t.Errorf("server saw %d PUTs, want %d", got, tt.wantPuts)
			}
			if got := strings.Count(logs.String(), "retrying s3 request"); got != tt.wantWarns {
				t.Errorf("logged %d retries, want %d:\n%s", got, tt.wantWarns, &logs)
			}
			if strings.Contains(logs.String()+fmt.Sprint(err), m.SecretKey) {
				t.Errorf("secret key leaked")
			}
			// What is stored is exactly the payload, or nothing.
			rc, getErr := b.Get(context.Background(), "obj")
			if tt.wantErr != "" {
				if getErr == nil {
					rc.Close()
					t.Errorf("failed Put left an object")
				}
				return
			}
			if getErr != nil {
				t.Fatal(getErr)
			}
			defer rc.Close()
			if got, _ := io.ReadAll(rc); !bytes.Equal(got, payload) {
				t.Errorf("stored %d bytes differ from the %d put", len(got), len(payload))
			}
		})
	}
}

// TestListResumes fails the second page of a listing: the retried
// listing resumes after the last name, so every name is seen once.
func TestListResumes(t *testing.T) {
	m, direct := newBucket(t)
	p := &faultProxy{method: http.MethodGet, query: "list-type=2"}
	cfg := startProxy(t, m, direct, p)
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.listPage = 2
	want := map[string]int64{}
	for i := range 7 {
		name := fmt.Sprintf("l/%02d", i)
		want[name] = int64(i)
		if err := b.Put(context.Background(), name, bytes.NewReader(make([]byte, i)), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	p.plan, p.seen = []fault{pass, internal, pass, slowDown}, 0
	p.mu.Unlock()
	got := map[string]int64{}
	err = b.List(context.Background(), "l/", func(name string, size int64) error {
		if _, dup := got[name]; dup {
			return fmt.Errorf("%s listed twice", name)
		}
		got[name] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if p.count() != 6 { // 4 pages of 2 keys, 2 of them failed once
		t.Errorf("server saw %d list requests, want 6", p.count())
	}

	// The callback's error is passed through, never retried.
	stop := errors.New("stop")
	if err := b.List(context.Background(), "l/", func(string, int64) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("List = %v, want the callback's error", err)
	}
}

// TestBreaker: once a request has used up its retries on a server that
// does not answer, later requests are tried once, without retries, and say
// why; the first answer from the server, even a refusal, restores retries.
func TestBreaker(t *testing.T) {
	m, direct := newBucket(t)
	payload := []byte("breaker")
	p := &faultProxy{method: http.MethodPut}
	cfg := startProxy(t, m, direct, p)
	cfg.Prefix = "breaker"
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	put := func(plan ...fault) error {
		p.mu.Lock()
		p.plan, p.seen = plan, 0
		p.mu.Unlock()
		return b.Put(context.Background(), "obj", bytes.NewReader(payload), int64(len(payload)))
	}
	down := []fault{internal, internal, internal, internal, internal, internal}
	if err := put(down...); err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("first Put against a failing server = %v; want it to give up after 4 attempts", err)
	}
	if err := put(down...); err == nil || !strings.Contains(err.Error(), "not retried: the server has not answered since") {
		t.Fatalf("second Put = %v; want a single attempt that says why it was not retried", err)
	}
	if n := p.count(); n != 1 {
		t.Errorf("second Put made %d attempts, want 1", n)
	}
	if err := put(denied); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("Put answered with AccessDenied = %v", err)
	}
	if err := put(internal, internal); err != nil {
		t.Fatalf("Put after the server answered again: %v; want it retried to success", err)
	}
	if n := p.count(); n != 3 {
		t.Errorf("Put after the server answered made %d attempts, want 3 (retries restored)", n)
	}
}
